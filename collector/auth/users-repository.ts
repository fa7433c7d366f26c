/**
 * tally.users: its SQL, its columns and its row schema. Rows come back checked; nothing here
 * judges a token or a role (users.ts and the administration modules do).
 */
import { z } from 'zod'
import { ROLES, type Role } from '../../protocol/api/names.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'
import type { Side } from './roles.ts'

const USERS = 'tally.users'

const COLUMNS = `user_id, name, roles, side, token_sha256, created_by, provisional,
  toUnixTimestamp64Milli(created_at) AS created_at,
  toUnixTimestamp64Milli(revoked_at) AS revoked_at, revoked_at IS NOT NULL AS revoked, version`

const SIDES = ['itsd', 'oios'] as const satisfies readonly Side[]

// 64-bit integers and DateTime64 milliseconds come back as JSON strings.
export const UserRow = z.object({
  user_id: z.string(),
  name: z.string(),
  roles: z.array(z.enum(ROLES)),
  side: z.enum(SIDES),
  /** The token's keyed hash, or each part's (tokens.ts; the column keeps its first name). */
  token_sha256: z.string(),
  created_by: z.string(),
  provisional: z.coerce.number(),
  created_at: z.coerce.number(),
  revoked_at: z.coerce.number().nullable(),
  revoked: z.coerce.number(),
  version: z.coerce.number(),
})
export type UserRow = z.output<typeof UserRow>

/** A row as written: `revoked` is the stored revoked_at, read back. */
export type NewUserRow = Omit<UserRow, 'revoked'>

const RolesRow = z.object({ roles: z.array(z.enum(ROLES)) })
const CountRow = z.object({ n: z.coerce.number() })

export class UsersRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  async find(userId: string): Promise<UserRow | undefined> {
    const [row] = await selectParsed(
      this.#store,
      UserRow,
      `SELECT ${COLUMNS} FROM ${USERS} FINAL WHERE user_id = {id:String}`,
      { id: userId },
    )
    return row
  }

  /** Every user (of one side), oldest first. */
  async list(side?: Side): Promise<UserRow[]> {
    return selectParsed(
      this.#store,
      UserRow,
      `SELECT ${COLUMNS} FROM ${USERS} FINAL
       ${side === undefined ? '' : 'WHERE side = {side:String}'} ORDER BY created_at`,
      { side: side ?? '' },
    )
  }

  /** The first user made by `createdBy` (a founder's marker). */
  async firstCreatedBy(createdBy: string): Promise<UserRow | undefined> {
    const [row] = await selectParsed(
      this.#store,
      UserRow,
      `SELECT ${COLUMNS} FROM ${USERS} FINAL
       WHERE created_by = {by:String} ORDER BY created_at LIMIT 1`,
      { by: createdBy },
    )
    return row
  }

  /** Provisional users who are not revoked and whose token still matches something. */
  async provisionalWithToken(): Promise<UserRow[]> {
    return selectParsed(
      this.#store,
      UserRow,
      `SELECT ${COLUMNS} FROM ${USERS} FINAL
       WHERE provisional = 1 AND revoked_at IS NULL AND token_sha256 != ''`,
    )
  }

  /** How many users of `side` hold `role`, revoked ones included. */
  async countHolding(side: Side, role: Role): Promise<number> {
    const [row] = await selectParsed(
      this.#store,
      CountRow,
      `SELECT count() AS n FROM ${USERS} FINAL
       WHERE side = {side:String} AND has(roles, {role:String})`,
      { side, role },
    )
    return row?.n ?? 0
  }

  /** The roles of a user who is not revoked, or undefined. */
  async activeRoles(userId: string): Promise<Role[] | undefined> {
    const [row] = await selectParsed(
      this.#store,
      RolesRow,
      `SELECT roles FROM ${USERS} FINAL WHERE user_id = {id:String} AND revoked_at IS NULL`,
      { id: userId },
    )
    return row?.roles
  }

  /** Writes rows as given (their version decides which one FINAL keeps). */
  async write(...rows: NewUserRow[]): Promise<void> {
    await insertRows(this.#store, USERS, rows)
  }

  /**
   * A new row for `row` with some fields changed, winning over it even behind a slower clock. A
   * revoked row stays revoked, as of `now`, unless the change says otherwise.
   */
  async update(
    row: UserRow,
    change: Partial<Omit<NewUserRow, 'version'>>,
    now = Date.now(),
  ): Promise<void> {
    const { revoked, ...kept } = row
    await this.write({
      ...kept,
      revoked_at: revoked ? now : null,
      ...change,
      version: Math.max(now, row.version + 1),
    })
  }
}
