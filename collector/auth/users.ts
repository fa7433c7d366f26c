/**
 * People who call the API, each with a bearer token and roles: how they are stored and how a
 * token is checked. Who may create them and grant roles is administration.ts.
 *
 * A user token reads `tly_u_<id>.<A>` (one part, 43 characters after the dot) or
 * `tly_u_<id>.<A><B>` (two parts). A user whose creation was confirmed by a second
 * administrator has a two-part token: the proposing administrator got the first part, the
 * confirming one the second, so neither holds a working token alone; the person joins them.
 * The store keeps the keyed hash of the token, or of each part (tokens.ts), never a token or a
 * part; the column keeps the name it had when it held plain SHA-256 hashes.
 */

import { randomBytes } from 'node:crypto'
import { readStateFile } from '../../common/atomic-file.ts'
import type { Role } from '../../protocol/api/names.ts'
import type { Store } from '../store/client.ts'
import type { Side } from './roles.ts'
import { issueSecret, newId, tokenKeyOf } from './tokens.ts'
import { UsersRepository } from './users-repository.ts'

export interface User {
  user_id: string
  name: string
  roles: Role[]
}

/** A user as a token authenticates them. */
export interface AuthenticatedUser extends User {
  side: Side
  /** The token passed through someone else's hands: it may only be replaced. */
  provisional: boolean
}

export interface UserRecord extends User {
  side: Side
  created_by: string
  created_at: string
  revoked: boolean
  /** Proposed and not yet confirmed: no token works yet. */
  pending: boolean
  provisional: boolean
}

/** The created_by of the ITSD founder, the admin the collector makes at its first start. */
export const ITSD_FOUNDER = 'collector bootstrap'
/** The created_by of OIOS's founder, the chief whose token the collector hands out once. */
export const OIOS_FOUNDER = 'collector bootstrap (OIOS)'

const TOKEN = /^tly_u_([a-z0-9-]{1,64})\.([A-Za-z0-9_-]{43})([A-Za-z0-9_-]{43})?$/

/** A fresh second part (what the confirming administrator hands over). */
export const newPart = (): string => randomBytes(32).toString('base64url')

/** The keyed hash of a two-part token's first part (`tly_u_<id>.<A>`). */
export const firstPartHash = (store: Store, userId: string, first: string): string =>
  tokenKeyOf(store).hash('user-first-part', userId, first)

/** The keyed hash of a two-part token's second part (`<B>`). */
export const secondPartHash = (store: Store, userId: string, second: string): string =>
  tokenKeyOf(store).hash('user-second-part', userId, second)

/**
 * What token_sha256 holds for a two-part token: both halves' hashes, colon separated (the
 * second empty until the proposal is confirmed).
 */
export const partHashes = (store: Store, userId: string, first: string, second?: string): string =>
  `${firstPartHash(store, userId, first)}:${second === undefined ? '' : secondPartHash(store, userId, second)}`

/**
 * Writes a user with roles straight into the store, with a one-part token: what the collector
 * does for its founders, and what only a holder of the store could do otherwise (its roles then
 * have no register entry, and the collector's start takes them away: reconciliation.ts).
 */
export async function createUser(
  store: Store,
  name: string,
  roles: Role[],
  createdBy: string,
  now = Date.now(),
  options: { side?: Side; provisional?: boolean } = {},
): Promise<{ user: User; token: string }> {
  const issued = issueSecret(tokenKeyOf(store), 'u', newId('u'))
  const user: User = { user_id: issued.id, name, roles: [...new Set(roles)] }
  await new UsersRepository(store).write({
    ...user,
    side: options.side ?? 'itsd',
    token_sha256: issued.hash,
    created_by: createdBy,
    created_at: now,
    revoked_at: null,
    provisional: options.provisional ? 1 : 0,
    version: now,
  })
  return { user, token: issued.secret }
}

/**
 * Whether `token` is the one `stored` was made from (either form), under the store's token key.
 * A stored value in the old, unkeyed form matches nothing (token-hashes.ts converts those once).
 */
function tokenMatches(store: Store, token: string, stored: string): boolean {
  const match = TOKEN.exec(token)
  if (match === null || match[1] === undefined || match[2] === undefined) return false
  const [, id, first, second] = match
  const key = tokenKeyOf(store)
  if (!stored.includes(':')) return second === undefined && key.matches('user', id, token, stored)
  const [firstHash, secondHash] = stored.split(':')
  if (second === undefined || !secondHash || firstHash === undefined) return false
  // Both compared, whatever the first answers: no early exit to time.
  const firstOk = key.matches('user-first-part', id, `tly_u_${id}.${first}`, firstHash)
  const secondOk = key.matches('user-second-part', id, second, secondHash)
  return firstOk && secondOk
}

export async function authenticateUser(
  store: Store,
  token: string,
): Promise<AuthenticatedUser | undefined> {
  const match = TOKEN.exec(token)
  if (match === null || match[1] === undefined) return undefined
  const row = await new UsersRepository(store).find(match[1])
  if (row === undefined || row.revoked || !tokenMatches(store, token, row.token_sha256)) {
    return undefined
  }
  return {
    user_id: row.user_id,
    name: row.name,
    roles: row.roles,
    side: row.side,
    provisional: Boolean(row.provisional),
  }
}

export async function listUsers(store: Store, side?: Side): Promise<UserRecord[]> {
  const rows = await new UsersRepository(store).list(side)
  return rows.map((r) => ({
    user_id: r.user_id,
    name: r.name,
    roles: r.roles,
    side: r.side,
    created_by: r.created_by,
    created_at: new Date(r.created_at).toISOString(),
    revoked: Boolean(r.revoked),
    pending: r.token_sha256.endsWith(':'),
    provisional: Boolean(r.provisional),
  }))
}

export async function revokeUser(store: Store, userId: string, now = Date.now()): Promise<boolean> {
  const users = new UsersRepository(store)
  const row = await users.find(userId)
  if (row === undefined) return false
  if (row.revoked) return true
  await users.update(row, { revoked_at: now }, now)
  return true
}

/**
 * The ITSD founder's token file: kept when its token is an admin's. An empty or unreadable file
 * stops the collector with one line naming it (silently minting a new admin would hide it).
 */
export function readAdminTokenFile(file: string): string | undefined {
  return readStateFile(file, {
    parse: (data) => {
      const text = data.toString('utf8').trim()
      if (!/^tly_u_[A-Za-z0-9._-]+$/.test(text)) throw new Error('not a user token (tly_u_...)')
      return text
    },
    remedy: 'remove it and restart: the collector then gives the founder admin a new token',
  })
}

/** The roles of a user who is not revoked, or undefined. */
export function rolesOf(store: Store, userId: string): Promise<Role[] | undefined> {
  return new UsersRepository(store).activeRoles(userId)
}
