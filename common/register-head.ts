/**
 * A register's signed tree head as the collector writes it: the canonical bytes it signs, the
 * register key, and the synchronous signature check a restarting register runs on its own
 * checkpoints. Whoever keeps a head and checks that a newer one extends it (an auditor, the
 * console, an agent) does so with common/register-verify/ (audit.ts headExtends), the one
 * verification of the register.
 */
import {
  createPublicKey,
  KeyObject,
  verify as verifySignatureBytes,
  type webcrypto,
} from 'node:crypto'
import canonicalizeModule from 'canonicalize'

// `canonicalize` is CommonJS (module.exports = serialize) but declares an ES default export, so
// under nodenext the default import is typed as the module object; at run time it is the function.
const canonicalizeFn = canonicalizeModule as unknown as (input: unknown) => string | undefined

/** RFC 8785 canonical JSON. */
export function canonicalJson(value: unknown): string {
  const text = canonicalizeFn(value)
  if (text === undefined) throw new TypeError('value has no JSON form')
  return text
}

/** What a checkpoint signs: which register, how many entries, their Merkle root, when. */
export interface TreeHead {
  register: string
  size: number
  /** Merkle root, hex. */
  root: string
  ts: string
}

export interface SignedTreeHead extends TreeHead {
  /** base64url Ed25519 signature over the canonical head. */
  signature: string
}

/** The bytes a checkpoint's signature and every countersignature cover. */
export function checkpointBytes(checkpoint: TreeHead): Buffer {
  const { register, size, root, ts } = checkpoint
  return Buffer.from(canonicalJson({ register, size, root, ts }), 'utf8')
}

export type PublicKeyInput = KeyObject | webcrypto.JsonWebKey | Record<string, string> | string

/** An Ed25519 public key from a KeyObject, a JWK, a PEM, or a bare JWK `x`. */
export function ed25519PublicKey(input: PublicKeyInput): KeyObject {
  let key: KeyObject
  if (typeof input === 'string') {
    key = input.includes('-----BEGIN')
      ? createPublicKey(input)
      : createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: input }, format: 'jwk' })
  } else if (input instanceof KeyObject) {
    key = input.type === 'private' ? createPublicKey(input) : input
  } else {
    const jwk = input as webcrypto.JsonWebKey
    key = createPublicKey({
      key: { kty: jwk.kty ?? 'OKP', crv: jwk.crv ?? 'Ed25519', x: jwk.x ?? '' },
      format: 'jwk',
    })
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new TypeError(`not an Ed25519 key: ${key.asymmetricKeyType}`)
  }
  return key
}

/** Whether `signature` (base64url) is `key`'s Ed25519 signature over the checkpoint's bytes. */
export function checkpointSignatureValid(
  checkpoint: TreeHead,
  signature: string,
  key: PublicKeyInput,
): boolean {
  try {
    return verifySignatureBytes(
      null,
      checkpointBytes(checkpoint),
      ed25519PublicKey(key),
      Buffer.from(signature, 'base64url'),
    )
  } catch {
    return false
  }
}
