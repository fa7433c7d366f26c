/**
 * Address prefixes (CIDR) matched against addresses that stay in the capture buffer: the
 * aggregator classifies an address and forgets it, never copying it out.
 */
import { isIPv6 } from 'node:net'
import { parseAddress } from '../decode/address.ts'

export interface Prefix {
  version: 4 | 6
  /** Network bytes (4 or 16). */
  network: Uint8Array
  bits: number
}

export class PrefixError extends Error {
  override name = 'PrefixError'
}

/**
 * The bytes of an IP address (4 or 16), read by the decoder's own parser. A zone id
 * (fe80::1%eth0) is ignored, as node:net's isIPv6 lets it through: prefixes are not per link.
 */
export function parseAddressBytes(text: string): Uint8Array {
  const zone = text.indexOf('%')
  const address = zone > 0 && isIPv6(text) ? text.slice(0, zone) : text
  try {
    return parseAddress(address)
  } catch {
    throw new PrefixError(`${text} is not an IP address`)
  }
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

/** What an address can be, as bits: an address may be several at once (the host is in the site). */
export const CLASS_HOST = 1
export const CLASS_SITE = 2
export const CLASS_LOCAL_SCOPE = 4
export const CLASS_MULTICAST = 8
export const CLASS_ORGANISATION = 16

const word = (bytes: Uint8Array, i: number) =>
  (((bytes[i] ?? 0) << 24) |
    ((bytes[i + 1] ?? 0) << 16) |
    ((bytes[i + 2] ?? 0) << 8) |
    (bytes[i + 3] ?? 0)) >>>
  0

const maskWord = (bits: number, wordIndex: number) => {
  const keep = Math.max(0, Math.min(32, bits - wordIndex * 32))
  return keep === 0 ? 0 : (0xffffffff << (32 - keep)) >>> 0
}

/**
 * Prefixes compiled into 32-bit mask-and-compare tables, one pass per address giving every
 * class it belongs to. The packet path calls it twice per packet, so it reads the address from
 * the capture buffer without copying it.
 */
export class AddressClassifier {
  readonly #v4Network: Uint32Array
  readonly #v4Mask: Uint32Array
  readonly #v4Class: Uint8Array
  readonly #v6Network: Uint32Array
  readonly #v6Mask: Uint32Array
  readonly #v6Class: Uint8Array

  constructor(entries: readonly { prefixes: readonly Prefix[]; addressClass: number }[]) {
    const v4 = entries.flatMap((e) =>
      e.prefixes.filter((p) => p.version === 4).map((p) => ({ p, c: e.addressClass })),
    )
    const v6 = entries.flatMap((e) =>
      e.prefixes.filter((p) => p.version === 6).map((p) => ({ p, c: e.addressClass })),
    )
    this.#v4Network = Uint32Array.from(v4, ({ p }) => word(p.network, 0))
    this.#v4Mask = Uint32Array.from(v4, ({ p }) => maskWord(p.bits, 0))
    this.#v4Class = Uint8Array.from(v4, ({ c }) => c)
    this.#v6Network = Uint32Array.from(
      v6.flatMap(({ p }) => [0, 1, 2, 3].map((w) => word(p.network, w * 4))),
    )
    this.#v6Mask = Uint32Array.from(
      v6.flatMap(({ p }) => [0, 1, 2, 3].map((w) => maskWord(p.bits, w))),
    )
    this.#v6Class = Uint8Array.from(v6, ({ c }) => c)
  }

  /** The classes of the address at `buffer[offset..]` (4 or 16 bytes), OR'ed together. */
  classify(version: 4 | 6, buffer: Uint8Array, offset: number): number {
    let classes = 0
    if (version === 4) {
      const address = word(buffer, offset)
      const networks = this.#v4Network
      const masks = this.#v4Mask
      for (let i = 0; i < networks.length; i++) {
        if ((address & (masks[i] ?? 0)) >>> 0 === networks[i]) classes |= this.#v4Class[i] ?? 0
      }
      return classes
    }
    const w0 = word(buffer, offset)
    const w1 = word(buffer, offset + 4)
    const w2 = word(buffer, offset + 8)
    const w3 = word(buffer, offset + 12)
    const networks = this.#v6Network
    const masks = this.#v6Mask
    for (let i = 0, j = 0; j < networks.length; i++, j += 4) {
      if (
        (w0 & (masks[j] ?? 0)) >>> 0 === networks[j] &&
        (w1 & (masks[j + 1] ?? 0)) >>> 0 === networks[j + 1] &&
        (w2 & (masks[j + 2] ?? 0)) >>> 0 === networks[j + 2] &&
        (w3 & (masks[j + 3] ?? 0)) >>> 0 === networks[j + 3]
      ) {
        classes |= this.#v6Class[i] ?? 0
      }
    }
    return classes
  }
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
