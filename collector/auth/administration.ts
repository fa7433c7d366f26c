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
 */
import { isAbsolute, relative, resolve } from 'node:path'
import { writeFileAtomic } from '../../common/atomic-file.ts'
import { Mutex } from '../../common/mutex.ts'
import { DomainError, type Failure } from '../errors.ts'
import type {
  EntriesPage,
  JsonValue,
  Register,
  RegisterEntry,
  RegisterName,
} from '../register/register.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import {
  ADMINISTRATOR,
  administeredSide,
  conflictsIn,
  type Role,
  SIDE_OF,
  type Side,
} from './roles.ts'
import { issueSecret, newId, tokenKeyOf } from './tokens.ts'
import {
  type AuthenticatedUser,
  authenticateUser,
  findUser,
  ITSD_FOUNDER,
  listUsers,
  newPart,
  OIOS_FOUNDER,
  partHashes,
  readAdminTokenFile,
  secondPartHash,
  USER_COLUMNS,
  type UserRecord,
  type UserRow,
  updateUser,
  writeUser,
} from './users.ts'

/** Refuses an administration step: nothing of it is recorded or written. */
const refuse = (failure: Failure, code: string, message: string): never => {
  throw new DomainError(failure, code, message)
}

export interface Proposal {
  proposal_id: string
  side: Side
  user_id: string
  roles: Role[]
  new_user: boolean
  proposed_by: string
  proposed_at: string
  state: 'proposed' | 'confirmed' | 'rejected'
  decided_by: string
}

interface ProposalRow extends Omit<Proposal, 'new_user' | 'proposed_at'> {
  new_user: number
  proposed_at: number
  version: number
}

/** What a proposal answers: the first token part for a new user, or a whole provisional token. */
export interface ProposalAnswer {
  proposal_id: string | null
  user_id: string
  name: string
  roles: Role[]
  state: 'proposed' | 'active'
  /** The proposer's part of a new user's token (the confirmer gets the other). */
  token_part?: string
  /** A provisional token: the founder's one extra administrator, to be replaced by its holder. */
  token?: string
  provisional?: boolean
}

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

const PROPOSAL_COLUMNS = `proposal_id, side, user_id, roles, new_user, proposed_by,
  toUnixTimestamp64Milli(proposed_at) AS proposed_at, state, decided_by, version`

export class RoleAdministration {
  readonly #store: Store
  readonly #register: Register
  readonly #now: () => number
  /** One administration step at a time: a confirmation must see the proposal it confirms. */
  readonly #lock = new Mutex()

  constructor(store: Store, register: Register, now: () => number = Date.now) {
    this.#store = store
    this.#register = register
    this.#now = now
  }

  async #record(
    side: Side,
    kind: string,
    actor: string,
    details: { [k: string]: JsonValue },
  ): Promise<RegisterEntry> {
    return this.#register.append({ register: side, kind, actor, details })
  }

  // --- Founders ---------------------------------------------------------------------------------

  /**
   * Keeps the admin token file when its token is an admin's. Otherwise the ITSD founder gets a
   * new token (the same person: never a second admin), or is made on the very first start.
   * 'none' when the founder was revoked: the other admins administer, nobody is minted.
   */
  async ensureItsdFounder(file: string): Promise<'kept' | 'created' | 'reissued' | 'none'> {
    const token = readAdminTokenFile(file)
    if (token !== undefined) {
      const user = await authenticateUser(this.#store, token)
      if (user?.roles.includes('admin')) return 'kept'
    }
    return this.#lock.run(async () => {
      const founder = await this.#founder('itsd')
      if (founder !== undefined) {
        if (Number(founder.revoked)) return 'none'
        const issued = issueSecret(tokenKeyOf(this.#store), 'u', founder.user_id)
        await this.#record('itsd', KINDS.founderTokenReissued, 'collector', {
          user_id: founder.user_id,
        })
        await updateUser(this.#store, founder, { token_sha256: issued.hash }, this.#now())
        writeFileAtomic(file, `${issued.secret}\n`, 0o600)
        return 'reissued'
      }
      const issued = issueSecret(tokenKeyOf(this.#store), 'u', newId('u'))
      await this.#createFounder('itsd', issued, 'admin', ['admin'], false)
      writeFileAtomic(file, `${issued.secret}\n`, 0o600)
      return 'created'
    })
  }

  /**
   * Makes OIOS's founder chief on the first start and returns its token, once: written to
   * `file` when given (a path outside the data directory, OIOS's), else for the caller to show.
   * The token is provisional: OIOS replaces it on receipt, so a copy kept by whoever started
   * the collector stops working, and a token already replaced tells OIOS someone was first.
   * Never made again, whatever happens to the file.
   */
  async ensureOiosFounder(
    file?: string,
  ): Promise<{ state: 'exists' } | { state: 'created'; token: string; file?: string }> {
    return this.#lock.run(async () => {
      if ((await this.#founder('oios')) !== undefined) return { state: 'exists' as const }
      const issued = issueSecret(tokenKeyOf(this.#store), 'u', newId('u'))
      await this.#createFounder('oios', issued, 'OIOS chief (bootstrap)', ['oios_chief'], true)
      if (file !== undefined) writeFileAtomic(file, `${issued.secret}\n`, 0o600)
      return { state: 'created' as const, token: issued.secret, ...(file ? { file } : {}) }
    })
  }

  async #founder(side: Side): Promise<UserRow | undefined> {
    const [row] = await selectRows<UserRow>(
      this.#store,
      `SELECT ${USER_COLUMNS} FROM tally.users FINAL
       WHERE created_by = {by:String} ORDER BY created_at LIMIT 1`,
      { by: side === 'itsd' ? ITSD_FOUNDER : OIOS_FOUNDER },
    )
    return row
  }

  async #createFounder(
    side: Side,
    issued: { id: string; hash: string },
    name: string,
    roles: Role[],
    provisional: boolean,
  ): Promise<void> {
    const now = this.#now()
    await this.#record(side, KINDS.userCreated, 'collector', {
      user_id: issued.id,
      name,
      roles,
      founder: true,
      provisional,
    })
    await writeUser(this.#store, {
      user_id: issued.id,
      name,
      roles,
      side,
      token_sha256: issued.hash,
      created_by: side === 'itsd' ? ITSD_FOUNDER : OIOS_FOUNDER,
      created_at: now,
      revoked_at: null,
      provisional: provisional ? 1 : 0,
      version: now,
    })
  }

  // --- Proposals --------------------------------------------------------------------------------

  /** A new user with roles, or more roles for an existing user, proposed by `actor`. */
  async propose(
    actor: AuthenticatedUser,
    input: { name?: string; user_id?: string; roles: Role[] },
  ): Promise<ProposalAnswer> {
    const side = sideOf(actor)
    const roles = [...new Set(input.roles)]
    if (roles.length === 0)
      refuse('unprocessable', 'invalid_roles', 'at least one role is required')
    for (const role of roles) {
      if (SIDE_OF[role] !== side) {
        refuse(
          'forbidden',
          'forbidden',
          `the role ${role} is granted by ${SIDE_OF[role] === 'oios' ? 'OIOS (an OIOS chief)' : 'ITSD (an admin)'} only`,
        )
      }
    }
    return this.#lock.run(async () => {
      if (input.user_id === undefined) {
        if (input.name === undefined)
          refuse('unprocessable', 'invalid_request', 'a new user needs a name')
        return this.#proposeUser(actor, side, input.name as string, roles)
      }
      return this.#proposeRoles(actor, side, input.user_id, roles)
    })
  }

  async #proposeUser(
    actor: AuthenticatedUser,
    side: Side,
    name: string,
    roles: Role[],
  ): Promise<ProposalAnswer> {
    const conflicts = conflictsIn(roles)
    if (conflicts.length > 0) refuseConflicts(conflicts)
    const now = this.#now()
    const userId = newId('u')
    if (
      roles.length === 1 &&
      roles[0] === ADMINISTRATOR[side] &&
      (await this.#exceptionOpen(side))
    ) {
      // The founder's one extra administrator: it exists at once, with a provisional token.
      const issued = issueSecret(tokenKeyOf(this.#store), 'u', userId)
      await this.#record(side, KINDS.userCreated, actor.user_id, {
        user_id: userId,
        name,
        roles,
        unconfirmed_administrator: true,
        provisional: true,
      })
      await writeUser(this.#store, {
        user_id: userId,
        name,
        roles,
        side,
        token_sha256: issued.hash,
        created_by: actor.user_id,
        created_at: now,
        revoked_at: null,
        provisional: 1,
        version: now,
      })
      return {
        proposal_id: null,
        user_id: userId,
        name,
        roles,
        state: 'active',
        token: issued.secret,
        provisional: true,
      }
    }
    const proposalId = newId('p')
    const first = `tly_u_${userId}.${newPart()}`
    await this.#record(side, KINDS.userProposed, actor.user_id, {
      proposal_id: proposalId,
      user_id: userId,
      name,
      roles,
    })
    await writeUser(this.#store, {
      user_id: userId,
      name,
      roles: [],
      side,
      token_sha256: partHashes(this.#store, userId, first),
      created_by: actor.user_id,
      created_at: now,
      revoked_at: null,
      provisional: 0,
      version: now,
    })
    await this.#writeProposal({
      proposal_id: proposalId,
      side,
      user_id: userId,
      roles,
      new_user: 1,
      proposed_by: actor.user_id,
      proposed_at: now,
      state: 'proposed',
      decided_by: '',
      version: now,
    })
    return {
      proposal_id: proposalId,
      user_id: userId,
      name,
      roles,
      state: 'proposed',
      token_part: first,
    }
  }

  async #proposeRoles(
    actor: AuthenticatedUser,
    side: Side,
    userId: string,
    roles: Role[],
  ): Promise<ProposalAnswer> {
    if (userId === actor.user_id)
      refuse('forbidden', 'forbidden', 'nobody proposes roles for themselves')
    const user = await this.#visibleUser(side, userId, roles)
    if (Number(user.revoked)) refuse('conflict', 'conflict', `the user ${userId} is revoked`)
    const added = roles.filter((r) => !user.roles.includes(r))
    if (added.length === 0)
      refuse('conflict', 'conflict', `the user ${userId} holds these roles already`)
    const conflicts = conflictsIn([...user.roles, ...added])
    if (conflicts.length > 0) refuseConflicts(conflicts)
    const now = this.#now()
    const proposalId = newId('p')
    await this.#record(side, KINDS.rolesProposed, actor.user_id, {
      proposal_id: proposalId,
      user_id: userId,
      roles: added,
    })
    await this.#writeProposal({
      proposal_id: proposalId,
      side,
      user_id: userId,
      roles: added,
      new_user: 0,
      proposed_by: actor.user_id,
      proposed_at: now,
      state: 'proposed',
      decided_by: '',
      version: now,
    })
    return {
      proposal_id: proposalId,
      user_id: userId,
      name: user.name,
      roles: added,
      state: 'proposed',
    }
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
    return this.#lock.run(async () => {
      const proposal = await this.#proposal(side, proposalId)
      if (proposal.state !== 'proposed') {
        refuse('conflict', 'conflict', `the proposal ${proposalId} was ${proposal.state} already`)
      }
      if (proposal.proposed_by === actor.user_id) {
        refuse(
          'forbidden',
          'second_person_required',
          'a proposal is confirmed by another administrator than the one who proposed it',
        )
      }
      if (proposal.user_id === actor.user_id) {
        refuse('forbidden', 'forbidden', 'nobody confirms their own roles')
      }
      const user = await findUser(this.#store, proposal.user_id)
      if (user === undefined || Number(user.revoked)) {
        refuse('conflict', 'conflict', `the user ${proposal.user_id} is revoked`)
      }
      const row = user as UserRow
      const roles = [...new Set([...row.roles, ...proposal.roles])]
      const conflicts = conflictsIn(roles)
      if (conflicts.length > 0) refuseConflicts(conflicts)
      const now = this.#now()
      await this.#record(side, KINDS.rolesConfirmed, actor.user_id, {
        proposal_id: proposalId,
        user_id: proposal.user_id,
        roles: proposal.roles,
        proposed_by: proposal.proposed_by,
        new_user: proposal.new_user,
      })
      let second: string | undefined
      const change: Partial<UserRow> = { roles }
      if (proposal.new_user) {
        second = newPart()
        change.token_sha256 = `${row.token_sha256.split(':')[0]}:${secondPartHash(this.#store, row.user_id, second)}`
      }
      await updateUser(this.#store, row, change, now)
      await this.#decide(proposal, 'confirmed', actor.user_id, now)
      return {
        proposal: { ...proposal, state: 'confirmed' as const, decided_by: actor.user_id },
        ...(second === undefined ? {} : { token_part: second }),
      }
    })
  }

  /** Rejects a proposal (either administrator may); a proposed new user never comes to exist. */
  async reject(actor: AuthenticatedUser, proposalId: string): Promise<Proposal> {
    const side = sideOf(actor)
    return this.#lock.run(async () => {
      const proposal = await this.#proposal(side, proposalId)
      if (proposal.state !== 'proposed') {
        refuse('conflict', 'conflict', `the proposal ${proposalId} was ${proposal.state} already`)
      }
      const now = this.#now()
      await this.#record(side, KINDS.proposalRejected, actor.user_id, {
        proposal_id: proposalId,
        user_id: proposal.user_id,
      })
      if (proposal.new_user) {
        const user = await findUser(this.#store, proposal.user_id)
        if (user !== undefined) await updateUser(this.#store, user, { revoked_at: now }, now)
      }
      await this.#decide(proposal, 'rejected', actor.user_id, now)
      return { ...proposal, state: 'rejected' as const, decided_by: actor.user_id }
    })
  }

  // --- Revocations ------------------------------------------------------------------------------

  async revokeRole(actor: AuthenticatedUser, userId: string, role: Role): Promise<Role[]> {
    const side = sideOf(actor)
    if (SIDE_OF[role] !== side)
      refuse('forbidden', 'forbidden', `the role ${role} is not ${side}'s to revoke`)
    return this.#lock.run(async () => {
      const user = await this.#visibleUser(side, userId, [role])
      if (!user.roles.includes(role))
        refuse('conflict', 'conflict', `the user ${userId} does not hold ${role}`)
      await this.#record(side, KINDS.roleRevoked, actor.user_id, { user_id: userId, role })
      const roles = user.roles.filter((r) => r !== role)
      await updateUser(this.#store, user, { roles }, this.#now())
      return roles
    })
  }

  async revokeUser(actor: AuthenticatedUser, userId: string): Promise<void> {
    const side = sideOf(actor)
    await this.#lock.run(async () => {
      const user = await findUser(this.#store, userId)
      if (user === undefined || user.side !== side)
        refuse('not_found', 'not_found', `no user ${userId}`)
      const row = user as UserRow
      if (Number(row.revoked)) return
      await this.#record(side, KINDS.userRevoked, actor.user_id, { user_id: userId })
      await updateUser(this.#store, row, { revoked_at: this.#now() }, this.#now())
    })
  }

  /**
   * The user replaces their own token with one only they see. The way out of a provisional
   * token, and for anyone whose token may have been seen.
   */
  async replaceToken(user: AuthenticatedUser): Promise<string> {
    return this.#lock.run(async () => {
      const row = await findUser(this.#store, user.user_id)
      if (row === undefined || Number(row.revoked)) refuse('not_found', 'not_found', 'no such user')
      const issued = issueSecret(tokenKeyOf(this.#store), 'u', user.user_id)
      await this.#record(row?.side ?? 'itsd', KINDS.tokenReplaced, user.user_id, {
        user_id: user.user_id,
        was_provisional: Boolean(Number(row?.provisional)),
      })
      await updateUser(
        this.#store,
        row as UserRow,
        { token_sha256: issued.hash, provisional: 0 },
        this.#now(),
      )
      return issued.secret
    })
  }

  // --- Reading ----------------------------------------------------------------------------------

  /** The users of `actor`'s side; the other side's roles are left out of what ITSD sees. */
  async users(actor: AuthenticatedUser): Promise<UserRecord[]> {
    const side = sideOf(actor)
    const all = await listUsers(this.#store)
    if (side === 'itsd') {
      return all
        .filter((u) => u.side === 'itsd')
        .map((u) => ({ ...u, roles: u.roles.filter((r) => SIDE_OF[r] === 'itsd') }))
    }
    return all.filter((u) => u.side === 'oios' || u.roles.includes('oios_designee'))
  }

  async proposals(actor: AuthenticatedUser, state?: Proposal['state']): Promise<Proposal[]> {
    const side = sideOf(actor)
    const rows = await selectRows<ProposalRow>(
      this.#store,
      `SELECT ${PROPOSAL_COLUMNS} FROM tally.role_proposals FINAL
       WHERE side = {side:String} ${state === undefined ? '' : 'AND state = {state:String}'}
       ORDER BY proposed_at`,
      { side, state: state ?? '' },
    )
    return rows.map(proposalOf)
  }

  // --- The store against the registers ----------------------------------------------------------

  /**
   * Takes away every role the store holds without a register entry granting it: roles written
   * straight into the store (by whoever holds it) do not survive the collector's start. Only
   * entries the collector wrote count (their signature verifies, or a signed checkpoint covers
   * them from before entries were signed): a "roles confirmed" appended to the register's tail
   * by whoever holds the store grants nothing. Each removal is itself a register entry. A
   * register that never recorded any administration (a store from before it was recorded, with
   * no signed entry at all) gets its users recorded as they are, once, instead.
   */
  async reconcile(): Promise<{ user_id: string; removed: Role[] }[]> {
    return this.#lock.run(async () => {
      const granted = new Map<string, Set<Role>>()
      let recorded = false
      for (const side of ['itsd', 'oios'] as const) {
        // Any administration entry, trusted or not, or any signed entry at all, means the
        // register has recorded administration: forged or broken entries never make the store's
        // users count as recorded.
        if (await this.#recordsAdministration(side)) recorded = true
        for (const entry of await this.#administrationEntries(side, 'trusted')) {
          const d = entry.details as Record<string, JsonValue>
          const userId = String(d.user_id ?? '')
          const held = granted.get(userId) ?? new Set<Role>()
          granted.set(userId, held)
          if (entry.kind === KINDS.userCreated || entry.kind === KINDS.rolesConfirmed) {
            for (const r of (d.roles as Role[] | undefined) ?? []) held.add(r)
          } else if (entry.kind === KINDS.roleRevoked) {
            held.delete(d.role as Role)
          } else if (entry.kind === KINDS.rolesRemoved) {
            for (const r of (d.roles as Role[] | undefined) ?? []) held.delete(r)
          }
        }
      }
      const users = (await listUsers(this.#store)).filter((u) => !u.revoked && u.roles.length > 0)
      if (!recorded) {
        for (const u of users) {
          await this.#record(u.side, KINDS.userCreated, 'collector', {
            user_id: u.user_id,
            name: u.name,
            roles: u.roles,
            recorded_at_upgrade: true,
          })
        }
        return []
      }
      const removed: { user_id: string; removed: Role[] }[] = []
      for (const u of users) {
        const held = granted.get(u.user_id) ?? new Set<Role>()
        const extra = u.roles.filter((r) => !held.has(r))
        if (extra.length === 0) continue
        const side: RegisterName = SIDE_OF[extra[0] as Role]
        await this.#record(side, KINDS.rolesRemoved, 'collector', {
          user_id: u.user_id,
          roles: extra,
        })
        const row = await findUser(this.#store, u.user_id)
        if (row !== undefined) {
          await updateUser(
            this.#store,
            row,
            { roles: u.roles.filter((r) => held.has(r)) },
            this.#now(),
          )
        }
        removed.push({ user_id: u.user_id, removed: extra })
      }
      return removed
    })
  }

  /**
   * The side's administration entries: 'trusted', only those the collector wrote (what may
   * grant); 'all', every stored one (what may only ever refuse, like the founder's exception).
   */
  async #administrationEntries(side: Side, which: 'trusted' | 'all'): Promise<RegisterEntry[]> {
    const kinds = new Set<string>(Object.values(KINDS))
    const out: RegisterEntry[] = []
    let from: number | null = 1
    while (from !== null) {
      const page: EntriesPage =
        which === 'trusted'
          ? await this.#register.trustedEntriesPage(side, { from, limit: 10_000 })
          : await this.#register.entriesPage(side, { from, limit: 10_000 })
      out.push(...page.entries.filter((e) => kinds.has(e.kind)))
      from = page.next_from
    }
    return out
  }

  /** Whether the side's register holds any administration entry, or any signed entry. */
  async #recordsAdministration(side: Side): Promise<boolean> {
    const [row] = await selectRows<{ n: number }>(
      this.#store,
      `SELECT count() AS n FROM tally.register_entries
       WHERE register = {side:String} AND (kind IN {kinds:Array(String)} OR signature != '')`,
      { side, kinds: Object.values(KINDS) },
    )
    return Number(row?.n ?? 0) > 0
  }

  /**
   * The founder's one unconfirmed administrator is still to be made: no administrator of the
   * side exists but the founder (in the store), and the register never recorded one made so.
   */
  async #exceptionOpen(side: Side): Promise<boolean> {
    const [row] = await selectRows<{ n: number }>(
      this.#store,
      `SELECT count() AS n FROM tally.users FINAL
       WHERE side = {side:String} AND has(roles, {role:String})`,
      { side, role: ADMINISTRATOR[side] },
    )
    if (Number(row?.n) > 1) return false
    const [proposed] = await selectRows<{ n: number }>(
      this.#store,
      `SELECT count() AS n FROM tally.role_proposals FINAL
       WHERE side = {side:String} AND has(roles, {role:String})`,
      { side, role: ADMINISTRATOR[side] },
    )
    if (Number(proposed?.n) > 0) return false
    // Every stored entry, trusted or not: one can only close the exception, never open it.
    const entries = await this.#administrationEntries(side, 'all')
    return !entries.some(
      (e) =>
        (e.kind === KINDS.userCreated && e.details.unconfirmed_administrator === true) ||
        ((e.kind === KINDS.userProposed || e.kind === KINDS.rolesProposed) &&
          Array.isArray(e.details.roles) &&
          e.details.roles.includes(ADMINISTRATOR[side])),
    )
  }

  /** A user `side` may administer for `roles`; the other side's users do not exist for it. */
  async #visibleUser(side: Side, userId: string, roles: Role[]): Promise<UserRow> {
    const user = await findUser(this.#store, userId)
    const crossing = side === 'oios' && roles.every((r) => r === 'oios_designee')
    if (user === undefined || (user.side !== side && !crossing)) {
      refuse('not_found', 'not_found', `no user ${userId}`)
    }
    return user as UserRow
  }

  async #proposal(side: Side, proposalId: string): Promise<Proposal> {
    const [row] = await selectRows<ProposalRow>(
      this.#store,
      `SELECT ${PROPOSAL_COLUMNS} FROM tally.role_proposals FINAL
       WHERE proposal_id = {id:String} AND side = {side:String}`,
      { id: proposalId, side },
    )
    if (row === undefined) refuse('not_found', 'not_found', `no proposal ${proposalId}`)
    return proposalOf(row as ProposalRow)
  }

  async #writeProposal(
    row: Omit<ProposalRow, 'proposed_at' | 'decided_at'> & {
      proposed_at: number
      decided_at?: number | null
    },
  ): Promise<void> {
    await insertRows(this.#store, 'tally.role_proposals', [{ decided_at: null, ...row }])
  }

  async #decide(
    proposal: Proposal,
    state: 'confirmed' | 'rejected',
    by: string,
    now: number,
  ): Promise<void> {
    const [row] = await selectRows<{ version: number }>(
      this.#store,
      'SELECT version FROM tally.role_proposals FINAL WHERE proposal_id = {id:String}',
      { id: proposal.proposal_id },
    )
    await this.#writeProposal({
      proposal_id: proposal.proposal_id,
      side: proposal.side,
      user_id: proposal.user_id,
      roles: proposal.roles,
      new_user: proposal.new_user ? 1 : 0,
      proposed_by: proposal.proposed_by,
      proposed_at: Date.parse(proposal.proposed_at),
      state,
      decided_by: by,
      decided_at: now,
      version: Math.max(now, Number(row?.version ?? 0) + 1),
    })
  }
}

function sideOf(actor: AuthenticatedUser): Side {
  const side = administeredSide(actor.roles)
  if (side === undefined) {
    return refuse(
      'forbidden',
      'forbidden',
      'role administration needs the admin or oios_chief role',
    )
  }
  return side
}

function refuseConflicts(conflicts: [Role, Role][]): never {
  return refuse(
    'unprocessable',
    'conflicting_roles',
    `one person may not hold both ${conflicts.map(([a, b]) => `${a} and ${b}`).join(', nor ')}`,
  )
}

function proposalOf(row: ProposalRow): Proposal {
  return {
    proposal_id: row.proposal_id,
    side: row.side,
    user_id: row.user_id,
    roles: row.roles,
    new_user: Boolean(Number(row.new_user)),
    proposed_by: row.proposed_by,
    proposed_at: new Date(Number(row.proposed_at)).toISOString(),
    state: row.state,
    decided_by: row.decided_by,
  }
}

/** Whether `file` lies inside `dir` (where a holder of the data directory would find it). */
export function isInside(file: string, dir: string): boolean {
  const rel = relative(resolve(dir), resolve(file))
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}
