/**
 * Web destinations for subject capture: the server name of a TLS ClientHello (SNI, RFC 6066
 * section 3) and the Host header of an HTTP/1.x request. Both parsers read only what they
 * need, check every read against the bytes they have, and never throw.
 */

/**
 * Byte `i` of a stream, or -1 when it is not (yet) available: past what was captured, or in a
 * gap between captured segments.
 */
export type ByteAt = (i: number) => number

export type SniResult =
  | { kind: 'sni'; name: string }
  /** Not a ClientHello, malformed, or a ClientHello without a host_name. */
  | { kind: 'none' }
  /** A ClientHello so far, but the bytes needed next are missing: more segments may help. */
  | { kind: 'more' }

const NONE: SniResult = { kind: 'none' }
const MORE: SniResult = { kind: 'more' }

const TLS_HANDSHAKE = 22
const HANDSHAKE_CLIENT_HELLO = 1
const EXTENSION_SERVER_NAME = 0
const NAME_TYPE_HOST = 0
/** RFC 8446 5.1: a record is at most 2^14 bytes (+2048 for ciphertext; be lenient). */
const MAX_RECORD = 16_384 + 2_048
export const MAX_NAME_CHARS = 255

/** A ByteAt over `b[offset .. offset+length)` (clamped to the buffer). */
export function bytesAt(b: Uint8Array, offset: number, length: number): ByteAt {
  const end = Math.min(offset + length, b.length)
  return (i) => {
    if (!Number.isInteger(i) || i < 0 || offset + i >= end) return -1
    return b[offset + i] as number
  }
}

/** Quick test on the first bytes: could this stream be a TLS ClientHello? */
export function looksLikeClientHello(at: ByteAt): boolean {
  const major = at(1)
  return (
    at(0) === TLS_HANDSHAKE &&
    major === 3 &&
    at(2) >= 0 &&
    at(2) <= 4 &&
    (at(5) === HANDSHAKE_CLIENT_HELLO || at(5) === -1)
  )
}

/** Hostname bytes: visible ASCII, lower-cased; undefined for anything else. */
function nameText(at: ByteAt, start: number, length: number): string | undefined {
  if (length === 0 || length > MAX_NAME_CHARS) return undefined
  let out = ''
  for (let i = start; i < start + length; i++) {
    let c = at(i)
    if (c <= 0x20 || c >= 0x7f) return undefined
    if (c >= 0x41 && c <= 0x5a) c += 0x20
    out += String.fromCharCode(c)
  }
  return out
}

/**
 * The SNI host_name of the TLS ClientHello at the start of a client's byte stream. Reads the
 * first record only (a ClientHello fragmented over several records is followed as far as the
 * first record goes).
 */
export function parseClientHello(at: ByteAt): SniResult {
  try {
    return walkClientHello(at)
  } catch {
    return NONE // not reached: reads are bounds-checked; a guard all the same
  }
}

function walkClientHello(at: ByteAt): SniResult {
  // Record header (5) and handshake header (4) must be there to say anything.
  for (let i = 0; i < 9; i++) if (at(i) < 0) return MORE
  if (!looksLikeClientHello(at)) return NONE
  const recordLength = (at(3) << 8) | at(4)
  const handshakeLength = (at(6) << 16) | (at(7) << 8) | at(8)
  if (recordLength < 4 || recordLength > MAX_RECORD) return NONE
  // Everything we read must lie inside the handshake message and inside the first record.
  const limit = Math.min(5 + recordLength, 9 + handshakeLength)
  const read = boundedReader(at, limit)
  const extensions = extensionsAt(read, limit)
  if (typeof extensions !== 'number') return extensions
  return findServerName(read, at, extensions, limit)
}

type Read = (p: number, n: number) => number

/** Reads `n` bytes big-endian at `p`: -1 when missing (more may come), -2 past the limit. */
function boundedReader(at: ByteAt, limit: number): Read {
  return (p, n) => {
    if (p + n > limit) return -2
    let v = 0
    for (let i = 0; i < n; i++) {
      const c = at(p + i)
      if (c < 0) return -1
      v = v * 256 + c
    }
    return v
  }
}

/** What a failed read means: more bytes may come (-1), or the hello is not one (-2). */
function shortRead(value: number): SniResult {
  return value === -1 ? MORE : NONE
}

/** Where the extensions block starts, past the hello's fixed part; or why there is none. */
function extensionsAt(read: Read, limit: number): number | SniResult {
  let p = 9 + 2 + 32 // client version, random
  const sessionId = read(p, 1)
  if (sessionId < 0) return shortRead(sessionId)
  if (sessionId > 32) return NONE
  p += 1 + sessionId
  const suites = read(p, 2)
  if (suites < 0) return shortRead(suites)
  if (suites < 2 || suites % 2 !== 0) return NONE
  p += 2 + suites
  const compression = read(p, 1)
  if (compression < 0) return shortRead(compression)
  if (compression < 1) return NONE
  p += 1 + compression
  if (p === limit) return NONE // no extensions at all
  return p
}

function findServerName(read: Read, at: ByteAt, start: number, limit: number): SniResult {
  const extensionsLength = read(start, 2)
  if (extensionsLength < 0) return shortRead(extensionsLength)
  let p = start + 2
  const extensionsEnd = p + extensionsLength
  if (extensionsEnd > limit) return NONE
  while (p + 4 <= extensionsEnd) {
    const type = read(p, 2)
    const length = read(p + 2, 2)
    if (type === -1 || length === -1) return MORE
    if (type < 0 || length < 0) return NONE
    p += 4
    if (p + length > extensionsEnd) return NONE
    if (type === EXTENSION_SERVER_NAME) return serverName(read, at, p, p + length)
    p += length
  }
  return NONE
}

function serverName(read: Read, at: ByteAt, start: number, end: number): SniResult {
  const listLength = read(start, 2)
  if (listLength === -1) return MORE
  if (listLength < 0 || start + 2 + listLength > end) return NONE
  let p = start + 2
  const listEnd = p + listLength
  while (p + 3 <= listEnd) {
    const nameType = read(p, 1)
    const length = read(p + 1, 2)
    if (nameType === -1 || length === -1) return MORE
    if (nameType < 0 || length < 0) return NONE
    p += 3
    if (p + length > listEnd) return NONE
    if (nameType === NAME_TYPE_HOST) {
      for (let i = p; i < p + length; i++) if (at(i) < 0) return MORE
      const name = nameText(at, p, length)
      return name === undefined ? NONE : { kind: 'sni', name }
    }
    p += length
  }
  return NONE
}

const METHODS = new Set([
  'GET',
  'POST',
  'HEAD',
  'PUT',
  'DELETE',
  'OPTIONS',
  'PATCH',
  'CONNECT',
  'TRACE',
])
/** Request line and headers are scanned this far at most. */
const MAX_HEAD = 16_384

/**
 * The Host header of the HTTP/1.x request starting at `b[offset]` (within `length` bytes,
 * clamped to the buffer), lower case, without a port; undefined when these bytes do not start
 * a request, or its Host header is not among the bytes there are.
 */
export function parseHttpHost(b: Uint8Array, offset: number, length: number): string | undefined {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) {
    return undefined
  }
  const end = Math.min(offset + length, b.length, offset + MAX_HEAD)
  // Method: upper-case letters, then a space.
  let p = offset
  while (p < end && p - offset < 8 && (b[p] as number) >= 0x41 && (b[p] as number) <= 0x5a) p++
  if (p >= end || b[p] !== 0x20) return undefined
  if (!METHODS.has(ascii(b, offset, p))) return undefined
  // Request line ends in " HTTP/1.x".
  const lineEnd = indexOfNewline(b, p, end)
  if (lineEnd < 0) return undefined
  const contentEnd = lineEnd > p && b[lineEnd - 1] === 0x0d ? lineEnd - 1 : lineEnd
  if (contentEnd - 9 < p || ascii(b, contentEnd - 9, contentEnd - 1) !== ' HTTP/1.')
    return undefined
  p = lineEnd + 1
  while (p < end) {
    const eol = indexOfNewline(b, p, end)
    if (eol < 0) return undefined // header line cut off
    const stop = eol > p && b[eol - 1] === 0x0d ? eol - 1 : eol
    if (stop === p) return undefined // end of headers, no Host
    if (stop - p >= 5 && ascii(b, p, p + 5).toLowerCase() === 'host:') {
      return hostValue(b, p + 5, stop)
    }
    p = eol + 1
  }
  return undefined
}

function ascii(b: Uint8Array, start: number, end: number): string {
  let out = ''
  for (let i = start; i < end; i++) out += String.fromCharCode(b[i] as number)
  return out
}

function indexOfNewline(b: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) if (b[i] === 0x0a) return i
  return -1
}

function hostValue(b: Uint8Array, start: number, end: number): string | undefined {
  let s = start
  let e = end
  while (s < e && (b[s] === 0x20 || b[s] === 0x09)) s++
  while (e > s && (b[e - 1] === 0x20 || b[e - 1] === 0x09)) e--
  if (s === e || e - s > MAX_NAME_CHARS + 6) return undefined
  const text = lowerCaseVisible(b, s, e)
  const host = text === undefined ? undefined : withoutPort(text)
  if (host === undefined || host === '' || host.length > MAX_NAME_CHARS) return undefined
  return host
}

/** The bytes as lower-case text, or undefined if any is a control, space or non-ASCII byte. */
function lowerCaseVisible(b: Uint8Array, start: number, end: number): string | undefined {
  let text = ''
  for (let i = start; i < end; i++) {
    let c = b[i] as number
    if (c <= 0x20 || c >= 0x7f) return undefined
    if (c >= 0x41 && c <= 0x5a) c += 0x20
    text += String.fromCharCode(c)
  }
  return text
}

/** The host without its port: "name:8080" or "[v6]:8080"; undefined if the port is not one. */
function withoutPort(text: string): string | undefined {
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return undefined
    const rest = text.slice(close + 1)
    if (rest !== '' && !/^:[0-9]*$/.test(rest)) return undefined
    return text.slice(0, close + 1)
  }
  const colon = text.lastIndexOf(':')
  if (colon < 0) return text
  if (!/^[0-9]*$/.test(text.slice(colon + 1))) return undefined
  return text.slice(0, colon)
}
