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
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import { KINDS } from './administration.ts'
import { isLegacyHash, type TokenKey } from './tokens.ts'

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

/** What to convert, per table: the column, the scope and id of each stored hash. */
interface UserHashRow {
  user_id: string
  token_sha256: string
}

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
    converted = await convertLegacyHashes(store, key, now)
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
    refused: await legacyRows(store),
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
  const rows = await selectRows<{ seq: number }>(
    store,
    `SELECT DISTINCT seq FROM tally.register_entries
     WHERE register = {name:String} AND kind = {kind:String} ORDER BY seq`,
    { name, kind },
  )
  const out: RegisterEntry[] = []
  for (const { seq } of rows) {
    const page = await register.trustedEntriesPage(name, { from: Number(seq), limit: 1 })
    out.push(...page.entries.filter((e) => e.seq === Number(seq) && e.kind === kind))
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
  store: Store,
  key: TokenKey,
  now: () => number,
): Promise<number> {
  const version = (row: { version: number }) => Math.max(now(), Number(row.version) + 1)
  const users = await selectRows<UserHashRow & Record<string, unknown> & { version: number }>(
    store,
    `SELECT user_id, name, roles, side, token_sha256, created_by, provisional, version,
            toUnixTimestamp64Milli(created_at) AS created_at,
            toUnixTimestamp64Milli(revoked_at) AS revoked_at
     FROM tally.users FINAL`,
  )
  const userRows = users
    .filter((u) => keyedUserHash(key, u.user_id, u.token_sha256) !== u.token_sha256)
    .map((u) => ({
      ...u,
      token_sha256: keyedUserHash(key, u.user_id, u.token_sha256),
      version: version(u),
    }))
  const agents = await selectRows<{ agent_id: string; credential_sha256: string; version: number }>(
    store,
    `SELECT agent_id, site, host, credential_sha256, enroll_token_id, version,
            toUnixTimestamp64Milli(enrolled_at) AS enrolled_at,
            toUnixTimestamp64Milli(revoked_at) AS revoked_at
     FROM tally.agents FINAL`,
  )
  const agentRows = agents
    .filter((a) => isLegacyHash(a.credential_sha256))
    .map((a) => ({
      ...a,
      credential_sha256: key.bind('agent', a.agent_id, a.credential_sha256),
      version: version(a),
    }))
  const tokens = await selectRows<{ token_id: string; secret_sha256: string; version: number }>(
    store,
    `SELECT token_id, site, secret_sha256, created_by, max_uses, version,
            toUnixTimestamp64Milli(created_at) AS created_at,
            toUnixTimestamp64Milli(expires_at) AS expires_at,
            toUnixTimestamp64Milli(revoked_at) AS revoked_at
     FROM tally.enroll_tokens FINAL`,
  )
  const tokenRows = tokens
    .filter((t) => isLegacyHash(t.secret_sha256))
    .map((t) => ({
      ...t,
      secret_sha256: key.bind('enroll-token', t.token_id, t.secret_sha256),
      version: version(t),
    }))
  // Enrollment uses (append-only) keep their instance hashes: a replay through a use from
  // before the binding is refused, and needs a new enrollment token (they last a day).
  await insertRows(store, 'tally.users', userRows)
  await insertRows(store, 'tally.agents', agentRows)
  await insertRows(store, 'tally.enroll_tokens', tokenRows)
  return userRows.length + agentRows.length + tokenRows.length
}

/** Rows whose stored hash is a plain SHA-256 (in any part): no token matches them. */
async function legacyRows(store: Store): Promise<TokenHashesAtStart['refused']> {
  const users = await selectRows<UserHashRow>(
    store,
    'SELECT user_id, token_sha256 FROM tally.users FINAL WHERE revoked_at IS NULL',
  )
  const agents = await selectRows<{ agent_id: string; credential_sha256: string }>(
    store,
    'SELECT agent_id, credential_sha256 FROM tally.agents FINAL WHERE revoked_at IS NULL',
  )
  const tokens = await selectRows<{ token_id: string; secret_sha256: string }>(
    store,
    'SELECT token_id, secret_sha256 FROM tally.enroll_tokens FINAL WHERE revoked_at IS NULL',
  )
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
  const provisional = await selectRows<
    UserHashRow & Record<string, unknown> & { side: 'itsd' | 'oios'; version: number }
  >(
    store,
    `SELECT user_id, name, roles, side, token_sha256, created_by, provisional, version,
            toUnixTimestamp64Milli(created_at) AS created_at,
            toUnixTimestamp64Milli(revoked_at) AS revoked_at
     FROM tally.users FINAL WHERE provisional = 1 AND revoked_at IS NULL AND token_sha256 != ''`,
  )
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
    await insertRows(store, 'tally.users', [
      { ...user, token_sha256: '', version: Math.max(now(), Number(user.version) + 1) },
    ])
    restored.push(user.user_id)
  }
  return restored
}
