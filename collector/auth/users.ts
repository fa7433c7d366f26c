/** People who call the API, each with a bearer token and roles. */
import { readStateFile, writeFileAtomic } from '../../common/atomic-file.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import type { Role } from './roles.ts'
import { issueSecret, newId, secretId, secretMatches } from './tokens.ts'

export interface User {
  user_id: string
  name: string
  roles: Role[]
}

export interface UserRecord extends User {
  created_by: string
  created_at: string
  revoked: boolean
}

interface UserRow extends User {
  token_sha256: string
  version: number
  created_by: string
  created_at: number
  revoked: number
}

const USER_COLUMNS = `user_id, name, roles, token_sha256, created_by,
  toUnixTimestamp64Milli(created_at) AS created_at, revoked_at IS NOT NULL AS revoked, version`

export async function createUser(
  store: Store,
  name: string,
  roles: Role[],
  createdBy: string,
  now = Date.now(),
): Promise<{ user: User; token: string }> {
  const issued = issueSecret('u', newId('u'))
  const user: User = { user_id: issued.id, name, roles: [...new Set(roles)] }
  await insertRows(store, 'tally.users', [
    {
      ...user,
      token_sha256: issued.sha256,
      created_by: createdBy,
      created_at: now,
      revoked_at: null,
      version: now,
    },
  ])
  return { user, token: issued.secret }
}

export async function authenticateUser(store: Store, token: string): Promise<User | undefined> {
  const userId = secretId('u', token)
  if (userId === undefined) return undefined
  const [row] = await selectRows<UserRow>(
    store,
    `SELECT ${USER_COLUMNS} FROM tally.users FINAL WHERE user_id = {id:String}`,
    { id: userId },
  )
  if (row === undefined || row.revoked || !secretMatches(token, row.token_sha256)) return undefined
  return { user_id: row.user_id, name: row.name, roles: row.roles }
}

export async function listUsers(store: Store): Promise<UserRecord[]> {
  const rows = await selectRows<UserRow>(
    store,
    `SELECT ${USER_COLUMNS} FROM tally.users FINAL ORDER BY created_at`,
  )
  return rows.map((r) => ({
    user_id: r.user_id,
    name: r.name,
    roles: r.roles,
    created_by: r.created_by,
    created_at: new Date(r.created_at).toISOString(),
    revoked: Boolean(r.revoked),
  }))
}

export async function revokeUser(store: Store, userId: string, now = Date.now()): Promise<boolean> {
  const [row] = await selectRows<UserRow>(
    store,
    `SELECT ${USER_COLUMNS} FROM tally.users FINAL WHERE user_id = {id:String}`,
    { id: userId },
  )
  if (row === undefined) return false
  if (row.revoked) return true
  const { revoked: _revoked, ...kept } = row
  // A later version must win even if this clock is behind the one that wrote the row.
  await insertRows(store, 'tally.users', [
    { ...kept, revoked_at: now, version: Math.max(now, Number(row.version) + 1) },
  ])
  return true
}

/**
 * Makes sure the admin token file holds a working admin token: on first start, or when the file
 * is missing or its token no longer works (the database was reset), a new admin is created. The
 * file holds the bearer token and nothing else, readable by its owner only.
 */
/**
 * Keeps the admin token file if its token is an admin's, else makes a new admin and writes the
 * file (atomically). An empty or unreadable file stops the collector with one line naming it:
 * something went wrong there, and silently minting a new admin would hide it.
 */
export async function ensureAdminToken(store: Store, file: string): Promise<'kept' | 'created'> {
  const token = readStateFile(file, {
    parse: (data) => {
      const text = data.toString('utf8').trim()
      if (!/^tly_u_[A-Za-z0-9._-]+$/.test(text)) throw new Error('not a user token (tly_u_...)')
      return text
    },
    remedy: 'remove it and restart: the collector then makes a new admin token',
  })
  if (token !== undefined) {
    const user = await authenticateUser(store, token)
    if (user?.roles.includes('admin')) return 'kept'
  }
  const created = await createUser(store, 'admin', ['admin'], 'collector bootstrap')
  writeFileAtomic(file, `${created.token}\n`, 0o600)
  return 'created'
}

/** The roles of a user who is not revoked, or undefined. */
export async function rolesOf(store: Store, userId: string): Promise<Role[] | undefined> {
  const [row] = await selectRows<{ roles: Role[] }>(
    store,
    'SELECT roles FROM tally.users FINAL WHERE user_id = {id:String} AND revoked_at IS NULL',
    { id: userId },
  )
  return row?.roles
}
