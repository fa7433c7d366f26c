/**
 * The stored token hashes against the token key, checked once at every start, before any
 * request (docs/privacy.md "Who can reach what").
 *
 * - **Bound once.** Stores from before hashes were keyed hold plain SHA-256 hashes. The first
 *   start with a token key converts each one to the keyed form (HMAC over that SHA-256, so no
 *   token is needed and nobody re-issues one), then records "token hashes bound to the token
 *   key" on the ITSD register. A new install records it at its first start, with nothing to
 *   convert. Only an entry the collector wrote counts (its signature verifies): once it is
 *   there, no row is ever converted again, so a plain SHA-256 written into the store later (the
 *   hash of a token of the writer's own) is refused like any wrong hash, and told here.
 * - **The key on record.** The entry names the key (an id that does not reveal it). A start
 *   with another key (a file lost, or not mounted) matches no stored hash: it is told and
 *   recorded, so that nobody mistakes it for tokens that stopped working by themselves.
 * - **Provisional tokens are replaced once.** A provisional token (the founder's extra
 *   administrator, OIOS's bootstrap chief) passed through someone else's hands and only ever
 *   gets replaced. A user still provisional though the register records their replacement is
 *   an old row written back into the store (its old token may be the one the founder saw): its
 *   token is refused from this start on.
 */
import type { Register, RegisterEntry, RegisterName } from '../register/register.ts'
import { RegisterRepository } from '../register/repository.ts'
import type { Store } from '../store/client.ts'
import { KINDS } from './administration-register.ts'
import { AgentsRepository } from './agents-repository.ts'
import { EnrollmentRepository } from './enrollment-repository.ts'
import { isLegacyHash, type TokenKey } from './tokens.ts'
import { UsersRepository } from './users-repository.ts'

export const TOKEN_HASHES_BOUND = 'token hashes bound to the token key'

export interface TokenHashesAtStart {
  /** Rows converted at this start (only the start that records the binding converts). */
  converted: number
  /** Recorded at this start: the first binding, or the key changed since the last one. */
  recorded: 'bound' | 'key changed' | undefined
  /** The key id the register held when it is not this key's. */
  previousKeyId?: string
  /** Ids whose stored hash is still (or again) in the old form after the binding: refused. */
  refused: { users: string[]; agents: string[]; enroll_tokens: string[] }
  /** Provisional users whose replacement the register records: an old row written back. */
  restoredProvisional: string[]
}

/** The three tables that hold hashes of secrets, each through its repository. */
interface HashTables {
  users: UsersRepository
  agents: AgentsRepository
  enrollment: EnrollmentRepository
}

const tablesOf = (store: Store): HashTables => ({
  users: new UsersRepository(store),
  agents: new AgentsRepository(store),
  enrollment: new EnrollmentRepository(store),
})

export async function checkTokenHashes(
  store: Store,
  register: Register,
  key: TokenKey,
  now: () => number = Date.now,
): Promise<TokenHashesAtStart> {
  const bound = await latestBinding(store, register)
  let converted = 0
  let recorded: TokenHashesAtStart['recorded']
  let previousKeyId: string | undefined
  if (bound === undefined) {
    // Rows first, the entry after: a start cut short converts the rest at the next one.
    converted = await convertLegacyHashes(tablesOf(store), key, now)
    await register.append({
      register: 'itsd',
      kind: TOKEN_HASHES_BOUND,
      actor: 'collector',
      details: { key_id: key.id, converted },
    })
    recorded = 'bound'
  } else if (bound.details.key_id !== key.id) {
    previousKeyId = String(bound.details.key_id)
    await register.append({
      register: 'itsd',
      kind: TOKEN_HASHES_BOUND,
      actor: 'collector',
      details: { key_id: key.id, previous_key_id: previousKeyId, converted: 0 },
    })
    recorded = 'key changed'
  }
  return {
    converted,
    recorded,
    ...(previousKeyId === undefined ? {} : { previousKeyId }),
    refused: await legacyRows(tablesOf(store)),
    restoredProvisional: await refuseRestoredProvisional(store, register, now),
  }
}

/**
 * The entries of one kind that the collector wrote, in seq order: the stored rows of that kind
 * found by the column, each then read as the register trusts it (its signature verifies).
 */
async function trustedOfKind(
  store: Store,
  register: Register,
  name: RegisterName,
  kind: string,
): Promise<RegisterEntry[]> {
  const seqs = await new RegisterRepository(store).seqsOfKind(name, kind)
  const out: RegisterEntry[] = []
  for (const seq of seqs) {
    const page = await register.trustedEntriesPage(name, { from: seq, limit: 1 })
    out.push(...page.entries.filter((e) => e.seq === seq && e.kind === kind))
  }
  return out
}

/** The latest binding entry the collector wrote, or undefined when there is none. */
async function latestBinding(store: Store, register: Register): Promise<RegisterEntry | undefined> {
  return (await trustedOfKind(store, register, 'itsd', TOKEN_HASHES_BOUND)).at(-1)
}

/** A user's token_sha256 with every plain SHA-256 in it keyed; unchanged when none is. */
function keyedUserHash(key: TokenKey, userId: string, stored: string): string {
  if (!stored.includes(':')) {
    return isLegacyHash(stored) ? key.bind('user', userId, stored) : stored
  }
  const [first = '', second = ''] = stored.split(':')
  const firstKeyed = isLegacyHash(first) ? key.bind('user-first-part', userId, first) : first
  const secondKeyed = isLegacyHash(second) ? key.bind('user-second-part', userId, second) : second
  return `${firstKeyed}:${secondKeyed}`
}

async function convertLegacyHashes(
  tables: HashTables,
  key: TokenKey,
  now: () => number,
): Promise<number> {
  const version = (row: { version: number }) => Math.max(now(), row.version + 1)
  const userRows = (await tables.users.list())
    .filter((u) => keyedUserHash(key, u.user_id, u.token_sha256) !== u.token_sha256)
    .map(({ revoked: _, ...u }) => ({
      ...u,
      token_sha256: keyedUserHash(key, u.user_id, u.token_sha256),
      version: version(u),
    }))
  const agentRows = (await tables.agents.all())
    .filter((a) => isLegacyHash(a.credential_sha256))
    .map(({ revoked: _, ...a }) => ({
      ...a,
      credential_sha256: key.bind('agent', a.agent_id, a.credential_sha256),
      version: version(a),
    }))
  const tokenRows = (await tables.enrollment.allTokens())
    .filter((t) => isLegacyHash(t.secret_sha256))
    .map((t) => ({
      ...t,
      secret_sha256: key.bind('enroll-token', t.token_id, t.secret_sha256),
      version: version(t),
    }))
  // Enrollment uses (append-only) keep their instance hashes: a replay through a use from
  // before the binding is refused, and needs a new enrollment token (they last a day).
  await tables.users.write(...userRows)
  await tables.agents.write(...agentRows)
  await tables.enrollment.writeTokens(...tokenRows)
  return userRows.length + agentRows.length + tokenRows.length
}

/** Rows not revoked whose stored hash is a plain SHA-256 (in any part): no token matches them. */
async function legacyRows(tables: HashTables): Promise<TokenHashesAtStart['refused']> {
  const users = (await tables.users.list()).filter((u) => !u.revoked)
  const agents = (await tables.agents.all()).filter((a) => !a.revoked)
  const tokens = (await tables.enrollment.allTokens()).filter((t) => t.revoked_at === null)
  return {
    users: users.filter((u) => u.token_sha256.split(':').some(isLegacyHash)).map((u) => u.user_id),
    agents: agents.filter((a) => isLegacyHash(a.credential_sha256)).map((a) => a.agent_id),
    enroll_tokens: tokens.filter((t) => isLegacyHash(t.secret_sha256)).map((t) => t.token_id),
  }
}

/** Refuses, from now on, the token of a provisional user whose replacement is on record. */
async function refuseRestoredProvisional(
  store: Store,
  register: Register,
  now: () => number,
): Promise<string[]> {
  const users = new UsersRepository(store)
  const provisional = await users.provisionalWithToken()
  const restored: string[] = []
  const replacedOn = new Map<RegisterName, Set<string>>()
  for (const user of provisional) {
    let replaced = replacedOn.get(user.side)
    if (replaced === undefined) {
      const entries = await trustedOfKind(store, register, user.side, KINDS.tokenReplaced)
      replaced = new Set(entries.map((e) => String(e.details.user_id)))
      replacedOn.set(user.side, replaced)
    }
    if (!replaced.has(user.user_id)) continue
    // No token matches an empty hash; the row stays, for whoever looks into it.
    const { revoked: _, ...row } = user
    await users.write({ ...row, token_sha256: '', version: Math.max(now(), user.version + 1) })
    restored.push(user.user_id)
  }
  return restored
}
