/**
 * Bearer secrets: enrollment tokens, agent credentials and user tokens, and how their hashes are
 * stored.
 *
 * A secret reads `tly_<kind>_<id>.<random>`: the id finds the stored record, the random part is
 * 32 bytes from the CSPRNG. The store keeps, per secret, HMAC-SHA256 under the token key
 * (`auth.token_key_file`, kept outside the data directory on a site) of the secret's SHA-256,
 * with the column it is stored in and the record's id: `hmac.<hex>`. A plain SHA-256 would let
 * whoever holds the data directory write the hash of a token of their own into anyone's row and
 * act as them; without the key they cannot make a hash the collector accepts, nor move one to
 * another row or column. A fast hash is enough because the secret is random, not a password.
 *
 * The HMAC is over the SHA-256 (not the secret) so that an install whose rows hold plain SHA-256
 * hashes can be converted once, at start, without anyone's token (token-hashes.ts). After that
 * conversion, and on any new install, a row in the old form is never accepted.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { readStateFile, writeFileAtomic } from '../../common/atomic-file.ts'
import type { Store } from '../store/client.ts'

export type SecretKind = 'e' | 'a' | 'u'

/**
 * Where a hash is stored: a hash made for one place never matches in another (a proposer's
 * first part of a user token is not a one-part token, an agent's credential is not a user's).
 */
export type HashScope =
  | 'user'
  | 'user-first-part'
  | 'user-second-part'
  | 'agent'
  | 'enroll-token'
  | 'enroll-instance'

export interface IssuedSecret {
  id: string
  secret: string
  /** What the store keeps: the secret's keyed hash. */
  hash: string
}

/** Where the token key lives when auth.token_key_file is not set. */
export const TOKEN_KEY_FILE = 'token-hash.key'

const KEY_BYTES = 32
const KEYED = /^hmac\.[0-9a-f]{64}$/
const LEGACY = /^[0-9a-f]{64}$/

/** The secret that binds stored token hashes; the store's rows are only valid under it. */
export class TokenKey {
  readonly #key: Buffer
  /** Names the key without revealing it (the register records which key hashes are bound to). */
  readonly id: string

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`a ${KEY_BYTES}-byte key is needed`)
    this.#key = Buffer.from(key)
    this.id = createHmac('sha256', this.#key)
      .update('tally token key id')
      .digest('hex')
      .slice(0, 16)
  }

  /** The stored form of a secret's SHA-256 (hex) at `scope` of the record `id`. */
  bind(scope: HashScope, id: string, secretSha256: string): string {
    const mac = createHmac('sha256', this.#key)
      .update(`tally token hash v1\n${scope}\n${id}\n${secretSha256}`)
      .digest('hex')
    return `hmac.${mac}`
  }

  /** The stored form of a secret. */
  hash(scope: HashScope, id: string, secret: string): string {
    return this.bind(scope, id, sha256Hex(secret))
  }

  /** Whether `stored` is the keyed hash of `secret`; a stored value in any other form is not. */
  matches(scope: HashScope, id: string, secret: string, stored: string): boolean {
    if (!KEYED.test(stored)) return false
    const given = Buffer.from(this.hash(scope, id, secret), 'utf8')
    const kept = Buffer.from(stored, 'utf8')
    return given.length === kept.length && timingSafeEqual(given, kept)
  }
}

/** A stored hash in the form from before hashes were keyed (a plain SHA-256). */
export const isLegacyHash = (stored: string): boolean => LEGACY.test(stored)

/**
 * Loads the token key, or makes one (32 random bytes, mode 0600, written atomically). An empty
 * or corrupt file stops the collector with one line naming it: a new key would make every
 * token, credential and enrollment token stop working.
 */
export function loadOrCreateTokenKey(file: string): TokenKey {
  const read = () =>
    readStateFile(file, {
      parse: (data) => {
        const key = Buffer.from(data.toString('utf8').trim(), 'base64')
        if (key.length !== KEY_BYTES) throw new Error(`a ${KEY_BYTES}-byte key in base64 is needed`)
        return new TokenKey(key)
      },
      remedy:
        'restore it from a backup (with a new key no token, agent credential or enrollment token works)',
    })
  const found = read()
  if (found !== undefined) return found
  const key = randomBytes(KEY_BYTES)
  writeFileAtomic(file, `${key.toString('base64')}\n`, 0o600)
  return new TokenKey(key)
}

/**
 * The token key of each store: the hashes a store holds are valid under one key, so whoever
 * opens the store for the collector binds it (server.ts at start, a test's harness), and every
 * function that issues or checks a secret on that store uses it.
 */
const keys = new WeakMap<Store, TokenKey>()

export function bindTokenKey(store: Store, key: TokenKey): void {
  keys.set(store, key)
}

/** The store's token key; bound from `file` (made there if missing) when it has none yet. */
export function ensureTokenKey(store: Store, file: string): TokenKey {
  const bound = keys.get(store)
  if (bound !== undefined) return bound
  const key = loadOrCreateTokenKey(file)
  keys.set(store, key)
  return key
}

export function tokenKeyOf(store: Store): TokenKey {
  const key = keys.get(store)
  // Never a fallback to an unkeyed hash: that is what a holder of the store could forge.
  if (key === undefined) throw new Error('no token key is bound to this store (bindTokenKey)')
  return key
}

export const newId = (prefix: string): string => `${prefix}-${randomBytes(8).toString('hex')}`

const SCOPE_OF: Record<SecretKind, HashScope> = { e: 'enroll-token', a: 'agent', u: 'user' }

export function issueSecret(key: TokenKey, kind: SecretKind, id: string): IssuedSecret {
  const secret = `tly_${kind}_${id}.${randomBytes(32).toString('base64url')}`
  return { id, secret, hash: key.hash(SCOPE_OF[kind], id, secret) }
}

export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex')

/** The id inside a secret of the expected kind, or undefined if it is not one. */
export function secretId(kind: SecretKind, secret: string): string | undefined {
  const match = new RegExp(`^tly_${kind}_([a-z0-9-]{1,64})\\.[A-Za-z0-9_-]{43}$`).exec(secret)
  return match?.[1]
}

/** Whether a one-part secret of `kind` (its id inside it) is the one `stored` was made from. */
export function secretMatches(
  key: TokenKey,
  kind: SecretKind,
  secret: string,
  stored: string,
): boolean {
  const id = secretId(kind, secret)
  return id !== undefined && key.matches(SCOPE_OF[kind], id, secret, stored)
}

/** Reads `Authorization: Bearer <secret>`; undefined when absent or of another scheme. */
export function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  return match?.[1]
}
