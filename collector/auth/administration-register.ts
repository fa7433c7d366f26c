/**
 * What the registers hold of role administration: the entry kinds, appending a step, and
 * reading a side's steps back. Each side's administration is recorded in its own register
 * (ITSD's in the ITSD register, OIOS's in the OIOS register only).
 */

import type { EntriesPage, JsonValue, Register, RegisterEntry } from '../register/register.ts'
import { RegisterRepository } from '../register/repository.ts'
import type { Store } from '../store/client.ts'
import type { ProposalsRepository } from './proposals-repository.ts'
import type { Side } from './roles.ts'
import type { UsersRepository } from './users-repository.ts'

/** Register entry kinds of role administration, as the registers hold them. */
export const KINDS = {
  userCreated: 'user created',
  userProposed: 'user proposed',
  rolesProposed: 'roles proposed',
  rolesConfirmed: 'roles confirmed',
  proposalRejected: 'proposal rejected',
  roleRevoked: 'role revoked',
  userRevoked: 'user revoked',
  tokenReplaced: 'user token replaced',
  founderTokenReissued: 'founder token reissued',
  rolesRemoved: 'roles without a register entry removed',
} as const

/** What every administration step works with. */
export interface AdministrationContext {
  /** The store the token key is bound to (tokens.ts). */
  readonly store: Store
  readonly users: UsersRepository
  readonly proposals: ProposalsRepository
  readonly register: Register
  readonly now: () => number
}

/** Appends a step to the side's register: the step happens only if this succeeds. */
export function recordStep(
  ctx: AdministrationContext,
  side: Side,
  kind: string,
  actor: string,
  details: { [k: string]: JsonValue },
): Promise<RegisterEntry> {
  return ctx.register.append({ register: side, kind, actor, details })
}

/**
 * The side's administration entries: 'trusted', only those the collector wrote (what may
 * grant); 'all', every stored one (what may only ever refuse, like the founder's exception).
 */
export async function administrationEntries(
  register: Register,
  side: Side,
  which: 'trusted' | 'all',
): Promise<RegisterEntry[]> {
  const kinds = new Set<string>(Object.values(KINDS))
  const out: RegisterEntry[] = []
  let from: number | null = 1
  while (from !== null) {
    const page: EntriesPage =
      which === 'trusted'
        ? await register.trustedEntriesPage(side, { from, limit: 10_000 })
        : await register.entriesPage(side, { from, limit: 10_000 })
    out.push(...page.entries.filter((e) => kinds.has(e.kind)))
    from = page.next_from
  }
  return out
}

/**
 * Whether the side's register holds any administration entry, or any signed entry. Counted in
 * the register's table rather than read entry by entry: this runs at every start.
 */
export async function recordsAdministration(store: Store, side: Side): Promise<boolean> {
  const n = await new RegisterRepository(store).countOfKindsOrSigned(side, Object.values(KINDS))
  return n > 0
}
