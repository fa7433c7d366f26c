// The register's bytes, hashes and signatures in the browser, with WebCrypto only: RFC 8785
// canonical JSON, SHA-256, RFC 6962 Merkle trees and consistency proofs, Ed25519. Each function
// is the browser's twin of the collector's own (common/register-head.ts, common/merkle.ts,
// collector/register/signing.ts), byte for byte, so that an auditor's browser recomputes what
// `tally register verify` recomputes.

const encoder = new TextEncoder()
const subtle = globalThis.crypto.subtle

/** RFC 8785 canonical JSON, as the `canonicalize` package writes it. */
export function canonicalJson(value) {
  const text = serialize(value)
  if (text === undefined) throw new TypeError('value has no JSON form')
  return text
}

function serialize(value) {
  if (typeof value === 'number' && Number.isNaN(value)) throw new Error('NaN is not allowed')
  if (typeof value === 'number' && !Number.isFinite(value))
    throw new Error('Infinity is not allowed')
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  if (typeof value.toJSON === 'function') return serialize(value.toJSON())
  if (Array.isArray(value)) {
    const items = value.map((v) => serialize(v === undefined || typeof v === 'symbol' ? null : v))
    return `[${items.join(',')}]`
  }
  const members = []
  for (const key of Object.keys(value).sort()) {
    const v = value[key]
    if (v === undefined || typeof v === 'symbol') continue
    members.push(`${serialize(key)}:${serialize(v)}`)
  }
  return `{${members.join(',')}}`
}

export const utf8 = (text) => encoder.encode(text)

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export async function sha256(...parts) {
  return new Uint8Array(await subtle.digest('SHA-256', concat(...parts)))
}

export const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')

export function fromHex(hex) {
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/**
 * base64 or base64url to bytes, leniently as Node's Buffer.from(text, 'base64url') reads it:
 * both alphabets, anything else skipped, stopping at padding.
 */
export function fromBase64(text) {
  const bytes = []
  let bits = 0
  let value = 0
  for (const ch of String(text)) {
    if (ch === '=') break
    let v = B64.indexOf(ch)
    if (ch === '+' || ch === '-') v = 62
    else if (ch === '/' || ch === '_') v = 63
    if (v < 0) continue
    value = (value << 6) | v
    bits += 6
    if (bits >= 8) {
      bits -= 8
      bytes.push((value >> bits) & 0xff)
    }
  }
  return new Uint8Array(bytes)
}

export function toBase64Url(bytes) {
  let out = ''
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0)
    const chars = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63].map((v) => `${B64}-_`[v])
    out += chars.slice(0, Math.min(4, bytes.length - i + 1)).join('')
  }
  return out
}

// --- Ed25519 ---------------------------------------------------------------------------------

/** Whether this browser's WebCrypto verifies Ed25519 (Chromium 137 and later, Firefox, Safari). */
export async function ed25519Supported() {
  try {
    await subtle.importKey(
      'jwk',
      { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' },
      { name: 'Ed25519' },
      false,
      ['verify'],
    )
    return true
  } catch {
    return false
  }
}

/**
 * An Ed25519 public key for WebCrypto from a JWK, a PEM (SPKI) or a bare JWK `x`, as
 * common/register-head.ts's ed25519PublicKey takes them; undefined when it is none.
 */
export async function ed25519Key(input) {
  try {
    if (typeof input === 'string' && input.includes('-----BEGIN')) {
      const body = input.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
      return await subtle.importKey('spki', fromBase64(body), { name: 'Ed25519' }, false, [
        'verify',
      ])
    }
    const jwk = typeof input === 'string' ? { x: input } : (input ?? {})
    return await subtle.importKey(
      'jwk',
      { kty: jwk.kty ?? 'OKP', crv: jwk.crv ?? 'Ed25519', x: jwk.x ?? '' },
      { name: 'Ed25519' },
      false,
      ['verify'],
    )
  } catch {
    return undefined
  }
}

/** Whether `signature` (base64url) is `key`'s over `bytes`; false for no key or a bad one. */
export async function ed25519Valid(key, signature, bytes) {
  if (key === undefined) return false
  try {
    return await subtle.verify({ name: 'Ed25519' }, key, fromBase64(signature), bytes)
  } catch {
    return false
  }
}

/** RFC 7638 thumbprint of an Ed25519 public JWK, base64url: the register's key id. */
export async function jwkThumbprint(jwk) {
  return toBase64Url(await sha256(utf8(canonicalJson({ crv: jwk.crv, kty: jwk.kty, x: jwk.x }))))
}

// --- RFC 6962 Merkle trees -----------------------------------------------------------------------

const LEAF = new Uint8Array([0])
const NODE = new Uint8Array([1])

export const leafHashOfBytes = (data) => sha256(LEAF, data)
export const nodeHash = (left, right) => sha256(NODE, left, right)

let emptyRoot
/** The root of an empty tree: SHA-256 of nothing. */
export async function EMPTY_ROOT() {
  emptyRoot ??= toHex(await sha256())
  return emptyRoot
}

const isPowerOfTwo = (x) => x >= 1 && 2 ** Math.round(Math.log2(x)) === x

function splitPoint(n) {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

/** An RFC 6962 tree over leaf hashes, kept as its aligned perfect subtrees (common/merkle.ts). */
export class MerkleTree {
  #levels = [[]]

  static async of(leaves) {
    const tree = new MerkleTree()
    for (const leaf of leaves) await tree.push(leaf)
    return tree
  }

  get size() {
    return this.#levels[0].length
  }

  async push(leaf) {
    let hash = leaf
    for (let j = 0; ; j++) {
      this.#levels[j] ??= []
      const level = this.#levels[j]
      level.push(hash)
      if (level.length % 2 === 1) return
      hash = await nodeHash(level[level.length - 2], hash)
    }
  }

  /** The root of the first `n` leaves (all by default), hex. */
  async root(n = this.size) {
    if (!Number.isInteger(n) || n < 0 || n > this.size)
      throw new RangeError(`tree has ${this.size} leaves, no prefix of ${n}`)
    return n === 0 ? EMPTY_ROOT() : toHex(await this.#rangeHash(0, n))
  }

  async #rangeHash(start, end) {
    const n = end - start
    if (n === 1) return this.#levels[0][start]
    if (isPowerOfTwo(n)) {
      const stored = this.#levels[Math.round(Math.log2(n))]?.[start / n]
      if (stored !== undefined) return stored
    }
    const k = splitPoint(n)
    return nodeHash(await this.#rangeHash(start, start + k), await this.#rangeHash(start + k, end))
  }
}

const HEX32 = /^[0-9a-f]{64}$/
const odd = (x) => x % 2 === 1
const half = (x) => Math.floor(x / 2)

/**
 * Whether `proof` shows the tree of size m (root mRoot) is a prefix of the tree of size n (root
 * nRoot): RFC 9162 2.1.4.2, the verification of RFC 6962's consistency proofs.
 */
export async function verifyConsistency(m, n, mRoot, nRoot, proof) {
  if (!Number.isSafeInteger(m) || !Number.isSafeInteger(n) || m < 0 || m > n) return false
  if (!HEX32.test(mRoot) || !HEX32.test(nRoot) || !proof.every((p) => HEX32.test(p))) return false
  if (m === 0) return proof.length === 0 && mRoot === (await EMPTY_ROOT())
  if (m === n) return proof.length === 0 && mRoot === nRoot
  if (proof.length === 0) return false
  const path = proof.map(fromHex)
  if (isPowerOfTwo(m)) path.unshift(fromHex(mRoot))
  let fn = m - 1
  let sn = n - 1
  while (odd(fn)) {
    fn = half(fn)
    sn = half(sn)
  }
  let fr = path[0]
  let sr = path[0]
  for (const c of path.slice(1)) {
    if (sn === 0) return false
    if (odd(fn) || fn === sn) {
      fr = await nodeHash(c, fr)
      sr = await nodeHash(c, sr)
      while (!odd(fn) && fn !== 0) {
        fn = half(fn)
        sn = half(sn)
      }
    } else {
      sr = await nodeHash(sr, c)
    }
    fn = half(fn)
    sn = half(sn)
  }
  return sn === 0 && toHex(fr) === mRoot && toHex(sr) === nRoot
}
