/**
 * Address text helpers, for use outside the packet hot path (configuration, tests, Tier I
 * records): IPv4 dotted quads and IPv6 in the RFC 5952 canonical form.
 */

/**
 * Formats the 4 (version 4) or 16 (version 6) bytes at `buf[offset..]`. IPv6 follows RFC 5952:
 * lower-case hex without leading zeros, the longest run (first on a tie) of two or more zero
 * groups shortened to `::`, and IPv4-mapped addresses as `::ffff:192.0.2.1`.
 * Throws a RangeError when the bytes are not all inside `buf`.
 */
export function formatAddress(buf: Uint8Array, offset: number, version: 4 | 6): string {
  const size = version === 4 ? 4 : 16
  if (!Number.isInteger(offset) || offset < 0 || offset + size > buf.length) {
    throw new RangeError(`address of ${size} bytes at ${offset} is outside the buffer`)
  }
  const byte = (i: number): number => buf[offset + i] ?? 0
  if (version === 4) return `${byte(0)}.${byte(1)}.${byte(2)}.${byte(3)}`

  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push((byte(i) << 8) | byte(i + 1))

  // IPv4-mapped (::ffff:0:0/96): RFC 5952 section 5 recommends the mixed notation.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${byte(12)}.${byte(13)}.${byte(14)}.${byte(15)}`
  }

  let bestStart = -1
  let bestLength = 0
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':')
  if (bestLength < 2) return hex(groups)
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`
}

const IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/
const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/

/** Parses a dotted quad into 4 bytes, or returns undefined. Octets with leading zeros are refused. */
function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  const bytes = new Uint8Array(4)
  for (let i = 0; i < 4; i++) {
    const part = parts[i] ?? ''
    if (!IPV4_OCTET.test(part)) return undefined
    const value = Number(part)
    if (value > 255) return undefined
    bytes[i] = value
  }
  return bytes
}

/** Parses the groups on one side of `::` (possibly ending in a dotted quad) into 16-bit words. */
function parseGroups(text: string, allowIpv4Tail: boolean): number[] | undefined {
  if (text === '') return []
  const parts = text.split(':')
  const words: number[] = []
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] ?? ''
    if (i === parts.length - 1 && allowIpv4Tail && part.includes('.')) {
      const v4 = parseIpv4(part)
      if (v4 === undefined) return undefined
      words.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0))
      continue
    }
    if (!IPV6_GROUP.test(part)) return undefined
    words.push(Number.parseInt(part, 16))
  }
  return words
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  let words: number[]
  if (halves.length === 2) {
    const head = parseGroups(halves[0] ?? '', false)
    const tail = parseGroups(halves[1] ?? '', true)
    // `::` stands for at least one zero group.
    if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
  } else {
    const all = parseGroups(text, true)
    if (all === undefined || all.length !== 8) return undefined
    words = all
  }
  const bytes = new Uint8Array(16)
  for (let i = 0; i < 8; i++) {
    const word = words[i] ?? 0
    bytes[2 * i] = word >> 8
    bytes[2 * i + 1] = word & 0xff
  }
  return bytes
}

/**
 * Parses an IPv4 dotted quad (4 bytes) or an IPv6 address (16 bytes, any valid RFC 4291 text
 * form, including `::` and a trailing dotted quad; no zone id or brackets). Throws a TypeError
 * on anything else.
 */
export function parseAddress(text: string): Uint8Array {
  const bytes = text.includes(':') ? parseIpv6(text) : parseIpv4(text)
  if (bytes === undefined) throw new TypeError(`not an IP address: ${JSON.stringify(text)}`)
  return bytes
}

/** Whether `buf` holds the address `address` (4 or 16 bytes) at `offset`. Allocates nothing. */
export function addressAt(address: Uint8Array, buf: Uint8Array, offset: number): boolean {
  if (offset + address.length > buf.length) return false
  for (let i = 0; i < address.length; i++) if (address[i] !== buf[offset + i]) return false
  return true
}
