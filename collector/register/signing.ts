/**
 * Canonical bytes, hashes and signatures of entries and checkpoints: pure functions, shared with
 * the auditor's side, and the register's own key.
 */
import {
  createPublicKey,
  type KeyObject,
  sign as signBytes,
  verify as verifyBytes,
  type webcrypto,
} from 'node:crypto'
import { leafHashOfBytes, sha256 } from '../../common/merkle.ts'
import {
  canonicalJson,
  checkpointBytes,
  ed25519PublicKey,
  type PublicKeyInput,
} from '../../common/register-head.ts'
import { entryBody, type RegisterEntry, type SignedCheckpoint } from './model.ts'

const HEX64 = /^[0-9a-f]{64}$/

/** SHA-256(prev_hash bytes || canonical entry without `hash` and `signature`), hex. */
export function entryHash(entry: Omit<RegisterEntry, 'hash'> & { hash?: string }): string {
  const { hash: _hash, signature: _signature, ...unsigned } = entry
  const prev = HEX64.test(entry.prev_hash)
    ? Buffer.from(entry.prev_hash, 'hex')
    : Buffer.from(entry.prev_hash, 'utf8')
  return sha256(prev, Buffer.from(canonicalJson(unsigned), 'utf8')).toString('hex')
}

/** RFC 6962 leaf hash of an entry: SHA-256(0x00 || canonical entry, `hash` included). */
export function leafHash(entry: RegisterEntry): Buffer {
  return leafHashOfText(canonicalJson(entryBody(entry)))
}

/** The leaf hash of an entry's canonical JSON as stored. */
export const leafHashOfText = (canonical: string): Buffer =>
  leafHashOfBytes(Buffer.from(canonical, 'utf8'))

const ENTRY_SIGNATURE_CONTEXT = 'tally-register-entry:v1\n'

/**
 * What an entry's signature covers: a context string, then the canonical entry with its seq,
 * prev_hash and hash (its signature left out). The context keeps an entry's signature from
 * ever being taken for a checkpoint's, though both come from the register key.
 */
export function entrySignedBytes(entry: RegisterEntry): Buffer {
  return Buffer.from(`${ENTRY_SIGNATURE_CONTEXT}${canonicalJson(entryBody(entry))}`, 'utf8')
}

export function signEntry(entry: RegisterEntry, privateKey: KeyObject): string {
  return signBytes(null, entrySignedBytes(entry), privateKey).toString('base64url')
}

/** Whether the entry carries `key`'s signature over its own bytes (false when it has none). */
export function entrySignatureValid(entry: RegisterEntry, key: PublicKeyInput): boolean {
  if (typeof entry.signature !== 'string' || entry.signature === '') return false
  try {
    return verifyBytes(
      null,
      entrySignedBytes(entry),
      ed25519PublicKey(key),
      Buffer.from(entry.signature, 'base64url'),
    )
  } catch {
    return false
  }
}

/** RFC 7638 thumbprint of an Ed25519 public JWK, base64url. */
export function jwkThumbprint(jwk: { crv?: string; kty?: string; x?: string }): string {
  return sha256(
    Buffer.from(canonicalJson({ crv: jwk.crv, kty: jwk.kty, x: jwk.x }), 'utf8'),
  ).toString('base64url')
}

export type JsonWebKey = webcrypto.JsonWebKey

export function signCheckpointBytes(
  checkpoint: Pick<SignedCheckpoint, 'register' | 'size' | 'root' | 'ts'>,
  privateKey: KeyObject,
): string {
  return signBytes(null, checkpointBytes(checkpoint), privateKey).toString('base64url')
}

/** The register's Ed25519 key pair, and the forms of its public half that others are given. */
export class RegisterKey {
  readonly private: KeyObject
  readonly public: KeyObject
  /** The public JWK with alg, use and kid, as served at /v1/register/public-key. */
  readonly publicJwk: Readonly<Record<string, string>>
  /** RFC 7638 thumbprint of the public key: the checkpoints' key_id. */
  readonly id: string

  constructor(signingKey: KeyObject) {
    if (signingKey.type !== 'private' || signingKey.asymmetricKeyType !== 'ed25519') {
      throw new TypeError('the register signing key must be an Ed25519 private key')
    }
    this.private = signingKey
    this.public = createPublicKey(signingKey)
    const jwk: Record<string, string> = {}
    for (const [k, v] of Object.entries(this.public.export({ format: 'jwk' }))) {
      if (typeof v === 'string') jwk[k] = v
    }
    this.id = jwkThumbprint(jwk)
    this.publicJwk = { ...jwk, alg: 'EdDSA', use: 'sig', kid: this.id }
  }
}
