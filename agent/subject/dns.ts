/**
 * A DNS message parser for subject capture (RFC 1035 section 4): the header and the first
 * question, nothing else. Bounds-checked on every read, loop-safe on compression pointers, and
 * never throws: anything malformed is `undefined`.
 */

export interface DnsMessage {
  id: number
  /** QR bit: a response. */
  response: boolean
  opcode: number
  /** RCODE (4 bits of the header; extended RCODEs in OPT are not read). */
  rcode: number
  /** The first question's name, lower case, dot-separated, without the final dot ('.' for the root). */
  name: string
  qtype: number
}

const HEADER = 12
/** RFC 1035: a name is at most 255 octets on the wire. */
const MAX_NAME_OCTETS = 255
/** The text form of a name is cut at this length (escapes can make it longer than the wire form). */
export const MAX_NAME_CHARS = 255
/** Compression pointers followed for one name before it is declared a loop. */
const MAX_POINTERS = 32

const QTYPES = new Map<number, string>([
  [1, 'A'],
  [2, 'NS'],
  [5, 'CNAME'],
  [6, 'SOA'],
  [12, 'PTR'],
  [15, 'MX'],
  [16, 'TXT'],
  [28, 'AAAA'],
  [33, 'SRV'],
  [64, 'SVCB'],
  [65, 'HTTPS'],
  [255, 'ANY'],
])

const RCODES = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'YXDOMAIN',
  'YXRRSET',
  'NXRRSET',
  'NOTAUTH',
  'NOTZONE',
] as const

/** A, AAAA, ... or TYPEnnn (RFC 3597) for the others. */
export function qtypeName(qtype: number): string {
  return QTYPES.get(qtype) ?? `TYPE${qtype}`
}

/** NOERROR, NXDOMAIN, ... or RCODEnn for the others. */
export function rcodeName(rcode: number): string {
  return RCODES[rcode] ?? `RCODE${rcode}`
}

function labelText(b: Uint8Array, start: number, length: number): string {
  let out = ''
  for (let i = start; i < start + length; i++) {
    let c = b[i] as number
    if (c >= 0x41 && c <= 0x5a) c += 0x20 // A-Z: names are case-insensitive (and 0x20-mixed)
    if (c === 0x2e || c === 0x5c) out += `\\${String.fromCharCode(c)}`
    else if (c > 0x20 && c < 0x7f) out += String.fromCharCode(c)
    else out += `\\${c.toString().padStart(3, '0')}`
  }
  return out
}

/**
 * Reads the name at `pos` of the message `b[start..end)`. Returns the name and the position
 * after it (after the first pointer, if any), or undefined. Pointers must point backwards and
 * at most MAX_POINTERS are followed, so a loop cannot hang it.
 */
export function readName(
  b: Uint8Array,
  start: number,
  end: number,
  pos: number,
): { name: string; next: number } | undefined {
  /** Where each label of the name starts (its length byte), in order. */
  const labels: number[] = []
  let p = pos
  let next = -1
  let pointers = 0
  let octets = 1
  for (;;) {
    if (p < start || p >= end) return undefined
    const length = b[p] as number
    if (length === 0) break
    if ((length & 0xc0) === 0xc0) {
      const target = ++pointers > MAX_POINTERS ? undefined : pointerTarget(b, start, end, p)
      if (target === undefined) return undefined
      if (next < 0) next = p + 2
      p = target
      continue
    }
    octets += length + 1
    // 0x40 and 0x80: extended and reserved label types (RFC 6891), not in questions.
    if ((length & 0xc0) !== 0 || p + 1 + length > end || octets > MAX_NAME_OCTETS) {
      return undefined
    }
    labels.push(p)
    p += 1 + length
  }
  return { name: nameOf(b, labels), next: next < 0 ? p + 1 : next }
}

/** The dotted name of these labels, cut at MAX_NAME_CHARS; '.' for the root. */
function nameOf(b: Uint8Array, labels: readonly number[]): string {
  let name = ''
  for (const at of labels) {
    if (name.length >= MAX_NAME_CHARS) break
    name += `${name === '' ? '' : '.'}${labelText(b, at + 1, b[at] as number)}`
  }
  if (name === '') return '.'
  return name.length > MAX_NAME_CHARS ? name.slice(0, MAX_NAME_CHARS) : name
}

/** Where the compression pointer at `p` leads, if it is whole and points backwards. */
function pointerTarget(b: Uint8Array, start: number, end: number, p: number): number | undefined {
  if (p + 1 >= end) return undefined
  const target = start + ((((b[p] as number) & 0x3f) << 8) | (b[p + 1] as number))
  return target < p ? target : undefined
}

/** Parses the DNS message at `b[offset .. offset+length)` (clamped to the buffer). */
export function parseDns(b: Uint8Array, offset: number, length: number): DnsMessage | undefined {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) {
    return undefined
  }
  const end = Math.min(offset + length, b.length)
  if (offset + HEADER > end) return undefined
  const u16 = (i: number) => ((b[i] as number) << 8) | (b[i + 1] as number)
  const flags = u16(offset + 2)
  const qdcount = u16(offset + 4)
  if (qdcount === 0) return undefined
  const question = readName(b, offset, end, offset + HEADER)
  if (question === undefined || question.next + 4 > end) return undefined
  return {
    id: u16(offset),
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0x0f,
    rcode: flags & 0x0f,
    name: question.name,
    qtype: u16(question.next),
  }
}
