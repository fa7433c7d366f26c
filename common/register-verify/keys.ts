/**
 * Ed25519 on WebCrypto: the register key, countersigners' keys, and signature checks. Node 24
 * and current browsers (Chromium 137 and later, Firefox, Safari) verify Ed25519 in
 * crypto.subtle; a key or signature WebCrypto refuses is simply "does not verify".
 */
import { canonicalJson, fromBase64, sha256, toBase64Url, utf8 } from './bytes.ts'

/** A public key as the register's users give it: a JWK, a PEM (SPKI), or a bare JWK `x`. */
export type VerifierKeyInput = { kty?: string; crv?: string; x?: string } | string

const ED25519 = { name: 'Ed25519' }

/** Whether this runtime's WebCrypto verifies Ed25519. */
export async function ed25519Supported(): Promise<boolean> {
  try {
    await globalThis.crypto.subtle.importKey(
      'jwk',
      { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' },
      ED25519,
      false,
      ['verify'],
    )
    return true
  } catch {
    return false
  }
}

/** The key for WebCrypto, or undefined when the input is no Ed25519 public key. */
export async function ed25519Key(
  input: VerifierKeyInput | undefined,
): Promise<CryptoKey | undefined> {
  const subtle = globalThis.crypto.subtle
  try {
    if (typeof input === 'string' && input.includes('-----BEGIN')) {
      const body = input.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
      return await subtle.importKey('spki', fromBase64(body), ED25519, false, ['verify'])
    }
    const jwk = typeof input === 'string' ? { x: input } : (input ?? {})
    return await subtle.importKey(
      'jwk',
      { kty: jwk.kty ?? 'OKP', crv: jwk.crv ?? 'Ed25519', x: jwk.x ?? '' },
      ED25519,
      false,
      ['verify'],
    )
  } catch {
    return undefined
  }
}

/** Whether `signature` (base64url) is `key`'s over `bytes`; false for no key or a bad one. */
export async function ed25519Valid(
  key: CryptoKey | undefined,
  signature: string,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  if (key === undefined) return false
  try {
    return await globalThis.crypto.subtle.verify(ED25519, key, fromBase64(signature), bytes)
  } catch {
    return false
  }
}

/** RFC 7638 thumbprint of an Ed25519 public JWK, base64url: the register's key id. */
export async function jwkThumbprint(jwk: {
  crv?: string
  kty?: string
  x?: string
}): Promise<string> {
  return toBase64Url(await sha256(utf8(canonicalJson({ crv: jwk.crv, kty: jwk.kty, x: jwk.x }))))
}

/** Keys imported once per verification: a countersigner's key recurs on every checkpoint. */
export class KeyRing {
  readonly #cache = new Map<string, Promise<CryptoKey | undefined>>()

  of(input: VerifierKeyInput | undefined): Promise<CryptoKey | undefined> {
    const id = typeof input === 'string' ? input : canonicalJson(input ?? null)
    let key = this.#cache.get(id)
    if (key === undefined) {
      key = ed25519Key(input)
      this.#cache.set(id, key)
    }
    return key
  }
}
