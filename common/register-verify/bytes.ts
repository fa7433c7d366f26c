/**
 * The register's bytes on WebCrypto alone (no Node import), so that the same file runs in the
 * CLI and, served by the console, in an auditor's browser: RFC 8785 canonical JSON, SHA-256,
 * hex and base64url.
 */

const encoder = new TextEncoder()

type Json = unknown

/**
 * RFC 8785 canonical JSON, byte for byte as the `canonicalize` package writes it (the collector
 * hashes and signs with that package; a browser cannot load it).
 */
export function canonicalJson(value: Json): string {
  const text = serialize(value)
  if (text === undefined) throw new TypeError('value has no JSON form')
  return text
}

function serialize(value: Json): string | undefined {
  if (typeof value === 'number' && Number.isNaN(value)) throw new Error('NaN is not allowed')
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new Error('Infinity is not allowed')
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  const withToJson = value as { toJSON?: unknown }
  if (typeof withToJson.toJSON === 'function') {
    return serialize((withToJson.toJSON as () => Json).call(value))
  }
  if (Array.isArray(value)) {
    const items = value.map((v: Json) =>
      serialize(v === undefined || typeof v === 'symbol' ? null : v),
    )
    return `[${items.join(',')}]`
  }
  const record = value as Record<string, Json>
  const members: string[] = []
  for (const key of Object.keys(record).sort()) {
    const v = record[key]
    if (v === undefined || typeof v === 'symbol') continue
    members.push(`${serialize(key)}:${serialize(v)}`)
  }
  return `{${members.join(',')}}`
}

export const utf8 = (text: string): Uint8Array<ArrayBuffer> => encoder.encode(text)

export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', concat(...parts)))
}

export const toHex = (bytes: Uint8Array): string =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')

/** Hex to bytes; callers check the text is hex first. */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/**
 * base64 or base64url to bytes, leniently as Node's Buffer.from(text, 'base64url') reads it
 * (both alphabets, anything else skipped, stopping at padding): a signature the collector's
 * Node accepted is the signature checked here.
 */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const bytes: number[] = []
  let bits = 0
  let value = 0
  for (const ch of String(text)) {
    if (ch === '=') break
    let v = B64.indexOf(ch)
    if (ch === '+' || ch === '-') v = 62
    else if (ch === '/' || ch === '_') v = 63
    if (v < 0) continue
    value = ((value << 6) | v) & 0xffffff
    bits += 6
    if (bits >= 8) {
      bits -= 8
      bytes.push((value >> bits) & 0xff)
    }
  }
  return new Uint8Array(bytes)
}

export function toBase64Url(bytes: Uint8Array): string {
  const alphabet = `${B64}-_`
  let out = ''
  for (let i = 0; i < bytes.length; i += 3) {
    const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0)
    const chars = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63].map((v) => alphabet[v])
    out += chars.slice(0, Math.min(4, bytes.length - i + 1)).join('')
  }
  return out
}
