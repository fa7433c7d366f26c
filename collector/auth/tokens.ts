/**
 * Bearer secrets: enrollment tokens, agent credentials and user tokens.
 *
 * A secret reads `tly_<kind>_<id>.<random>`: the id finds the stored record, the random part is
 * 32 bytes from the CSPRNG. Only its SHA-256 is stored, so a copy of the database cannot
 * impersonate anyone; a fast hash is enough because the secret is random, not a password.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

export type SecretKind = 'e' | 'a' | 'u'

export interface IssuedSecret {
  id: string
  secret: string
  sha256: string
}

export const newId = (prefix: string): string => `${prefix}-${randomBytes(8).toString('hex')}`

export function issueSecret(kind: SecretKind, id: string): IssuedSecret {
  const secret = `tly_${kind}_${id}.${randomBytes(32).toString('base64url')}`
  return { id, secret, sha256: sha256Hex(secret) }
}

export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex')

/** The id inside a secret of the expected kind, or undefined if it is not one. */
export function secretId(kind: SecretKind, secret: string): string | undefined {
  const match = new RegExp(`^tly_${kind}_([a-z0-9-]{1,64})\\.[A-Za-z0-9_-]{43}$`).exec(secret)
  return match?.[1]
}

export function secretMatches(secret: string, storedSha256: string): boolean {
  const given = Buffer.from(sha256Hex(secret), 'hex')
  const stored = Buffer.from(storedSha256, 'hex')
  return given.length === stored.length && timingSafeEqual(given, stored)
}

/** Reads `Authorization: Bearer <secret>`; undefined when absent or of another scheme. */
export function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  return match?.[1]
}
