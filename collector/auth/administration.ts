/**
 * Role administration under separation of duties (docs/privacy.md "Roles and who grants them").
 *
 * - A user, or a role for a user, is proposed by one administrator of a side and takes effect
 *   only when a different administrator of the same side confirms it. ITSD's administrators hold
 *   `admin`; OIOS's hold `oios_chief`. Each side's roles are granted by that side only (SIDE_OF),
 *   and each records its administration in its own register: ITSD's in the ITSD register,
 *   OIOS's in the OIOS register only.
 * - A new user's token comes in two parts, one to the proposer and one to the confirmer, so no
 *   administrator ever holds a working token of someone they made.
 * - Conflicting roles (roles.ts CONFLICTS) are refused on proposal and again on confirmation.
 * - Each side has one founder, made by the collector at its first start: ITSD's admin
 *   (data_dir/admin.token) and OIOS's chief (a token handed out once, for OIOS). A founder may
 *   make exactly one more administrator of its side alone, once in the register's life; that
 *   token passed through the founder's hands, so it is provisional: it does nothing until its
 *   holder replaces it. Every later administrator is proposed and confirmed like anyone.
 * - Revocations take one administrator: taking power away needs no second person.
 *
 * Every step is appended to the side's register before it is written; if the register cannot
 * take it, the step does not happen.
 *
 * This class is the one entry point (app.ts, server.ts, tests); it takes the lock and hands each
 * step to the module of its concern: founders.ts, role-proposals.ts (proposals and their
 * confirmation), administration-rules.ts (sides and the conflict matrix), reconciliation.ts (the
 * store against the registers), administration-register.ts (the entries).
 */
import { isAbsolute, relative, resolve } from 'node:path'
import { Mutex } from '../../common/mutex.ts'
import type { Role } from '../../protocol/api/names.ts'
import type { Register } from '../register/register.ts'
import type { Store } from '../store/client.ts'
import { type AdministrationContext, KINDS, recordStep } from './administration-register.ts'
import { refuse, sideOf, visibleUser } from './administration-rules.ts'
import { adminTokenFileWorks, makeOiosFounder, renewItsdFounder } from './founders.ts'
import { type Proposal, type ProposalState, ProposalsRepository } from './proposals-repository.ts'
import { reconcileRoles } from './reconciliation.ts'
import {
  confirm,
  type ProposalAnswer,
  type ProposalInput,
  proposalSide,
  propose,
  reject,
} from './role-proposals.ts'
import { SIDE_OF } from './roles.ts'
import { issueSecret, tokenKeyOf } from './tokens.ts'
import { type AuthenticatedUser, listUsers, type UserRecord } from './users.ts'
import { UsersRepository } from './users-repository.ts'

export { KINDS, type Proposal, type ProposalAnswer }

export class RoleAdministration {
  readonly #ctx: AdministrationContext
  /** One administration step at a time: a confirmation must see the proposal it confirms. */
  readonly #lock = new Mutex()

  constructor(store: Store, register: Register, now: () => number = Date.now) {
    this.#ctx = {
      store,
      users: new UsersRepository(store),
      proposals: new ProposalsRepository(store),
      register,
      now,
    }
  }

  // --- Founders ---------------------------------------------------------------------------------

  /**
   * Keeps the admin token file when its token is an admin's. Otherwise the ITSD founder gets a
   * new token (the same person: never a second admin), or is made on the very first start.
   * 'none' when the founder was revoked: the other admins administer, nobody is minted.
   */
  async ensureItsdFounder(file: string): Promise<'kept' | 'created' | 'reissued' | 'none'> {
    if (await adminTokenFileWorks(this.#ctx, file)) return 'kept'
    return this.#lock.run(() => renewItsdFounder(this.#ctx, file))
  }

  /**
   * Makes OIOS's founder chief on the first start and returns its token, once: written to
   * `file` when given (a path outside the data directory, OIOS's), else for the caller to show.
   * The token is provisional: OIOS replaces it on receipt, so a copy kept by whoever started
   * the collector stops working, and a token already replaced tells OIOS someone was first.
   * Never made again, whatever happens to the file.
   */
  ensureOiosFounder(
    file?: string,
  ): Promise<{ state: 'exists' } | { state: 'created'; token: string; file?: string }> {
    return this.#lock.run(() => makeOiosFounder(this.#ctx, file))
  }

  // --- Proposals --------------------------------------------------------------------------------

  /** A new user with roles, or more roles for an existing user, proposed by `actor`. */
  async propose(actor: AuthenticatedUser, input: ProposalInput): Promise<ProposalAnswer> {
    const side = proposalSide(actor, input.roles)
    return this.#lock.run(() => propose(this.#ctx, actor, side, input))
  }

  /**
   * Confirms a proposal: `actor` must be another administrator of the proposal's side than the
   * proposer, and not the user it names. Answers the second token part of a new user.
   */
  async confirm(
    actor: AuthenticatedUser,
    proposalId: string,
  ): Promise<{ proposal: Proposal; token_part?: string }> {
    const side = sideOf(actor)
    return this.#lock.run(() => confirm(this.#ctx, actor, side, proposalId))
  }

  /** Rejects a proposal (either administrator may); a proposed new user never comes to exist. */
  async reject(actor: AuthenticatedUser, proposalId: string): Promise<Proposal> {
    const side = sideOf(actor)
    return this.#lock.run(() => reject(this.#ctx, actor, side, proposalId))
  }

  // --- Revocations: one administrator, taking power away needs no second person ------------------

  async revokeRole(actor: AuthenticatedUser, userId: string, role: Role): Promise<Role[]> {
    const side = sideOf(actor)
    if (SIDE_OF[role] !== side) {
      refuse('forbidden', 'forbidden', `the role ${role} is not ${side}'s to revoke`)
    }
    return this.#lock.run(async () => {
      const user = await visibleUser(this.#ctx.users, side, userId, [role])
      if (!user.roles.includes(role)) {
        refuse('conflict', 'conflict', `the user ${userId} does not hold ${role}`)
      }
      await recordStep(this.#ctx, side, KINDS.roleRevoked, actor.user_id, { user_id: userId, role })
      const roles = user.roles.filter((r) => r !== role)
      await this.#ctx.users.update(user, { roles }, this.#ctx.now())
      return roles
    })
  }

  async revokeUser(actor: AuthenticatedUser, userId: string): Promise<void> {
    const side = sideOf(actor)
    await this.#lock.run(async () => {
      const user = await this.#ctx.users.find(userId)
      if (user === undefined || user.side !== side) {
        return refuse('not_found', 'not_found', `no user ${userId}`)
      }
      if (user.revoked) return
      await recordStep(this.#ctx, side, KINDS.userRevoked, actor.user_id, { user_id: userId })
      await this.#ctx.users.update(user, { revoked_at: this.#ctx.now() }, this.#ctx.now())
    })
  }

  /**
   * The user replaces their own token with one only they see. The way out of a provisional
   * token, and for anyone whose token may have been seen.
   */
  async replaceToken(user: AuthenticatedUser): Promise<string> {
    return this.#lock.run(async () => {
      const row = await this.#ctx.users.find(user.user_id)
      if (row === undefined || row.revoked) return refuse('not_found', 'not_found', 'no such user')
      const issued = issueSecret(tokenKeyOf(this.#ctx.store), 'u', user.user_id)
      await recordStep(this.#ctx, row.side, KINDS.tokenReplaced, user.user_id, {
        user_id: user.user_id,
        was_provisional: Boolean(row.provisional),
      })
      await this.#ctx.users.update(
        row,
        { token_sha256: issued.hash, provisional: 0 },
        this.#ctx.now(),
      )
      return issued.secret
    })
  }

  // --- Reading ----------------------------------------------------------------------------------

  /** The users of `actor`'s side; the other side's roles are left out of what ITSD sees. */
  async users(actor: AuthenticatedUser): Promise<UserRecord[]> {
    const side = sideOf(actor)
    const all = await listUsers(this.#ctx.store)
    if (side === 'itsd') {
      return all
        .filter((u) => u.side === 'itsd')
        .map((u) => ({ ...u, roles: u.roles.filter((r) => SIDE_OF[r] === 'itsd') }))
    }
    return all.filter((u) => u.side === 'oios' || u.roles.includes('oios_designee'))
  }

  proposals(actor: AuthenticatedUser, state?: ProposalState): Promise<Proposal[]> {
    return this.#ctx.proposals.list(sideOf(actor), state)
  }

  // --- The store against the registers ----------------------------------------------------------

  /**
   * Takes away every role the store holds without a register entry granting it
   * (reconciliation.ts): roles written straight into the store do not survive a start.
   */
  reconcile(): Promise<{ user_id: string; removed: Role[] }[]> {
    return this.#lock.run(() => reconcileRoles(this.#ctx))
  }
}

/** Whether `file` lies inside `dir` (where a holder of the data directory would find it). */
export function isInside(file: string, dir: string): boolean {
  const rel = relative(resolve(dir), resolve(file))
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}
