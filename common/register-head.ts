/**
 * A register's signed tree head, and the check that a newer head extends one kept earlier.
 *
 * Whoever keeps a head (an auditor's state file, an agent's state dir) can later demand an RFC
 * 6962 consistency proof from it to the current head. A register truncated below the kept size,
 * or whose kept prefix was rewritten, cannot give one, even when the new head is validly signed
 * (by a stolen key, say). Shared by the collector, the auditor's CLI and the agent, which must
 * not import the collector.
 */
import {
  createPublicKey,
  KeyObject,
  verify as verifySignatureBytes,
  type webcrypto,
} from 'node:crypto'
import canonicalizeModule from 'canonicalize'
import { verifyConsistency } from './merkle.ts'

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

export type HeadCheck =
  | { ok: true }
  | {
      ok: false
      /** bad-signature: the new head is not the key's; rolled-back: it is smaller than the
       * kept one; inconsistent: no valid proof that it extends the kept one (a rewrite). */
      problem: 'bad-signature' | 'rolled-back' | 'inconsistent'
      message: string
    }

/**
 * Whether `next` is a head signed by `key` that extends `kept` (a head verified earlier), as
 * `proof` (RFC 6962 PROOF(kept.size, next)) shows. Without a kept head, only the signature.
 */
export function checkHeadExtends(
  kept: TreeHead | undefined,
  next: SignedTreeHead,
  proof: readonly string[],
  key: PublicKeyInput,
): HeadCheck {
  if (!checkpointSignatureValid(next, next.signature, key)) {
    return {
      ok: false,
      problem: 'bad-signature',
      message: `the head at size ${next.size} is not signed by the register key`,
    }
  }
  if (kept === undefined) return { ok: true }
  if (kept.register !== next.register) {
    return {
      ok: false,
      problem: 'inconsistent',
      message: `the kept head is of register ${kept.register}, not ${next.register}`,
    }
  }
  if (next.size < kept.size) {
    return {
      ok: false,
      problem: 'rolled-back',
      message:
        `the register has ${next.size} entries, fewer than the ${kept.size} of the head kept ` +
        `from ${kept.ts}: entries were removed`,
    }
  }
  if (!verifyConsistency(kept.size, next.size, kept.root, next.root, proof)) {
    return {
      ok: false,
      problem: 'inconsistent',
      message:
        `no valid consistency proof from the head kept at size ${kept.size} (${kept.ts}) to ` +
        `the head at size ${next.size}: the first ${kept.size} entries were rewritten or removed`,
    }
  }
  return { ok: true }
}
