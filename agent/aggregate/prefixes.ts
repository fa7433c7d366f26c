/**
 * Address prefixes (CIDR) matched against addresses that stay in the capture buffer: the
 * aggregator classifies an address and forgets it, never copying it out.
 */
import { isIPv4, isIPv6 } from 'node:net'

export interface Prefix {
  version: 4 | 6
  /** Network bytes (4 or 16). */
  network: Uint8Array
  bits: number
}

export class PrefixError extends Error {
  override name = 'PrefixError'
}

export function parseAddressBytes(text: string): Uint8Array {
  if (isIPv4(text)) return Uint8Array.from(text.split('.').map(Number))
  if (!isIPv6(text)) throw new PrefixError(`${text} is not an IP address`)
  const [head = '', tail] = text.split('::')
  const groups = (part: string) => (part === '' ? [] : part.split(':'))
  let left = groups(head)
  let right = tail === undefined ? [] : groups(tail)
  // An embedded IPv4 tail (::ffff:10.0.0.1) is two groups.
  const expand = (list: string[]) =>
    list.flatMap((g) => {
      if (!g.includes('.')) return [g]
      const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number)
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)]
    })
  left = expand(left)
  right = expand(right)
  const missing = 8 - left.length - right.length
  const all = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right]
  const bytes = new Uint8Array(16)
  all.forEach((g, i) => {
    const value = Number.parseInt(g, 16)
    bytes[i * 2] = value >> 8
    bytes[i * 2 + 1] = value & 0xff
  })
  return bytes
}

export function parsePrefix(cidr: string): Prefix {
  const [address = '', length] = cidr.split('/')
  const network = parseAddressBytes(address)
  const version = network.length === 4 ? 4 : 6
  const max = version === 4 ? 32 : 128
  const bits = length === undefined ? max : Number(length)
  if (!Number.isInteger(bits) || bits < 0 || bits > max) {
    throw new PrefixError(`${cidr}: prefix length must be 0 to ${max}`)
  }
  for (let i = 0; i < network.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8))
    network[i] = (network[i] ?? 0) & ((0xff << (8 - keep)) & 0xff)
  }
  return { version, network, bits }
}

/** Whether the address at `buffer[offset..]` (4 or 16 bytes) lies in `prefix`. */
export function inPrefix(
  prefix: Prefix,
  version: 4 | 6,
  buffer: Uint8Array,
  offset: number,
): boolean {
  if (prefix.version !== version) return false
  const full = prefix.bits >> 3
  const network = prefix.network
  for (let i = 0; i < full; i++) if (buffer[offset + i] !== network[i]) return false
  const rest = prefix.bits & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return ((buffer[offset + full] ?? 0) & mask) === network[full]
}

export function inAny(
  prefixes: readonly Prefix[],
  version: 4 | 6,
  buffer: Uint8Array,
  offset: number,
): boolean {
  for (const prefix of prefixes) if (inPrefix(prefix, version, buffer, offset)) return true
  return false
}

/** Organisation-internal ranges by default: RFC 1918, shared address space, unique local IPv6. */
export const DEFAULT_ORGANISATION_PREFIXES = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  'fc00::/7',
]

/** Never leave the host or the link: loopback and link-local. */
export const LOCAL_SCOPE_PREFIXES: readonly Prefix[] = [
  '127.0.0.0/8',
  '169.254.0.0/16',
  '::1/128',
  'fe80::/10',
].map(parsePrefix)

export const MULTICAST_PREFIXES: readonly Prefix[] = [
  '224.0.0.0/4',
  '255.255.255.255/32',
  'ff00::/8',
].map(parsePrefix)
