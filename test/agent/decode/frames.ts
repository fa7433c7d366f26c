/**
 * A small builder of link frames for the decoder tests: every length field is computed from
 * what is really there, and every field can be overridden to make a malformed frame.
 */
import { parseAddress } from '../../../agent/decode/address.ts'

export function concat(...parts: Uint8Array[]): Uint8Array {
  let size = 0
  for (const part of parts) size += part.length
  const out = new Uint8Array(size)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

export function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values)
}

function put16(buf: Uint8Array, at: number, value: number): void {
  buf[at] = (value >> 8) & 0xff
  buf[at + 1] = value & 0xff
}

function put32(buf: Uint8Array, at: number, value: number): void {
  put16(buf, at, (value >>> 16) & 0xffff)
  put16(buf, at + 2, value & 0xffff)
}

/** `n` bytes of a recognisable filler (so that payload bytes are never all zero). */
export function filler(n: number, seed = 0xa5): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (seed + i * 7) & 0xff
  return out
}

// ---------------------------------------------------------------------------------------------
// Transport

export interface TcpOptions {
  srcPort?: number | undefined
  dstPort?: number | undefined
  flags?: number
  /** TCP options; padded with NOPs to a multiple of 4. */
  options?: Uint8Array
  /** Overrides the data offset nibble (in 32-bit words). */
  dataOffset?: number
  payload?: Uint8Array | undefined
}

export const TCP_SYN = 0x02
export const TCP_ACK = 0x10
export const TCP_PSH = 0x08

export function tcp(o: TcpOptions = {}): Uint8Array {
  const rawOptions = o.options ?? new Uint8Array(0)
  const padded = new Uint8Array(Math.ceil(rawOptions.length / 4) * 4).fill(1)
  padded.set(rawOptions)
  const header = new Uint8Array(20 + padded.length)
  put16(header, 0, o.srcPort ?? 43210)
  put16(header, 2, o.dstPort ?? 443)
  put32(header, 4, 0x01020304)
  put32(header, 8, 0x05060708)
  header[12] = ((o.dataOffset ?? header.length / 4) & 0x0f) << 4
  header[13] = o.flags ?? TCP_ACK
  put16(header, 14, 65535)
  header.set(padded, 20)
  return concat(header, o.payload ?? new Uint8Array(0))
}

/** A typical SYN's options: MSS, SACK permitted, timestamps, NOP, window scale (20 bytes). */
export function synOptions(): Uint8Array {
  return bytes(2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7)
}

export interface UdpOptions {
  srcPort?: number | undefined
  dstPort?: number | undefined
  /** Overrides the UDP length field. */
  length?: number
  payload?: Uint8Array | undefined
}

export function udp(o: UdpOptions = {}): Uint8Array {
  const payload = o.payload ?? filler(12)
  const header = new Uint8Array(8)
  put16(header, 0, o.srcPort ?? 53000)
  put16(header, 2, o.dstPort ?? 53)
  put16(header, 4, o.length ?? 8 + payload.length)
  return concat(header, payload)
}

/** ICMP or ICMPv6: type, code, checksum, 4 bytes of rest-of-header, then `body`. */
export function icmp(type: number, code = 0, body: Uint8Array = filler(8)): Uint8Array {
  return concat(bytes(type, code, 0, 0, 0, 1, 0, 1), body)
}

// ---------------------------------------------------------------------------------------------
// Network

export interface Ipv4Options {
  src?: string
  dst?: string
  protocol: number
  /** IPv4 options; padded with zeros (end of options) to a multiple of 4. */
  options?: Uint8Array
  moreFragments?: boolean | undefined
  dontFragment?: boolean
  /** Fragment offset in 8-byte units. */
  fragmentOffset?: number | undefined
  /** Overrides. */
  version?: number
  ihl?: number
  totalLength?: number
}

export function ipv4(payload: Uint8Array, o: Ipv4Options): Uint8Array {
  const rawOptions = o.options ?? new Uint8Array(0)
  const padded = new Uint8Array(Math.ceil(rawOptions.length / 4) * 4)
  padded.set(rawOptions)
  const header = new Uint8Array(20 + padded.length)
  header[0] = ((o.version ?? 4) << 4) | ((o.ihl ?? header.length / 4) & 0x0f)
  put16(header, 2, o.totalLength ?? header.length + payload.length)
  put16(header, 4, 0x1234)
  const flags = (o.moreFragments ? 0x2000 : 0) | (o.dontFragment ? 0x4000 : 0)
  put16(header, 6, flags | ((o.fragmentOffset ?? 0) & 0x1fff))
  header[8] = 64
  header[9] = o.protocol
  header.set(parseAddress(o.src ?? '192.0.2.1'), 12)
  header.set(parseAddress(o.dst ?? '198.51.100.2'), 16)
  header.set(padded, 20)
  return concat(header, payload)
}

/** An IPv4 Router Alert option (4 bytes) and a Record Route option with room for 2 (11 bytes). */
export function ipv4Options(): Uint8Array {
  return bytes(0x94, 4, 0, 0, 7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0)
}

export const IPV6_HOP_BY_HOP = 0
export const IPV6_ROUTING = 43
export const IPV6_FRAGMENT = 44
export const IPV6_ESP = 50
export const IPV6_AH = 51
export const IPV6_NO_NEXT = 59
export const IPV6_DESTINATION = 60
export const IPV6_MOBILITY = 135

export interface Ipv6Extension {
  type: number
  /** Total length in bytes (a multiple of 8; for AH, of 4 and at least 12). Default 8 or 16. */
  length?: number
  /** Fragment header: offset in 8-byte units and the M flag. */
  fragmentOffset?: number | undefined
  more?: boolean | undefined
  /** Overrides the header's length byte. */
  lengthByte?: number
  /** Overrides the header's next header byte. */
  next?: number
}

export interface Ipv6Options {
  src?: string
  dst?: string
  /** The protocol after the last extension header. */
  protocol: number
  extensions?: Ipv6Extension[]
  /** Overrides. */
  version?: number
  payloadLength?: number
}

function extensionHeader(ext: Ipv6Extension, next: number): Uint8Array {
  if (ext.type === IPV6_FRAGMENT) {
    const header = new Uint8Array(8)
    header[0] = ext.next ?? next
    put16(header, 2, ((ext.fragmentOffset ?? 0) << 3) | (ext.more ? 1 : 0))
    put32(header, 4, 0xcafe)
    return header
  }
  if (ext.type === IPV6_AH) {
    const length = ext.length ?? 16
    const header = filler(length, 0x31)
    header[0] = ext.next ?? next
    header[1] = ext.lengthByte ?? length / 4 - 2
    return header
  }
  const length = ext.length ?? 8
  // Options area filled with PadN so that the header is well-formed.
  const header = new Uint8Array(length)
  header[0] = ext.next ?? next
  header[1] = ext.lengthByte ?? length / 8 - 1
  if (ext.type === IPV6_ROUTING) {
    header[2] = 4 // segment routing type; segments left 0
  } else if (length - 2 >= 2) {
    header[2] = 1
    header[3] = length - 4
  }
  return header
}

export function ipv6(payload: Uint8Array, o: Ipv6Options): Uint8Array {
  const extensions = o.extensions ?? []
  const parts: Uint8Array[] = []
  for (let i = 0; i < extensions.length; i++) {
    const ext = extensions[i] as Ipv6Extension
    const next = i + 1 < extensions.length ? (extensions[i + 1] as Ipv6Extension).type : o.protocol
    parts.push(extensionHeader(ext, next))
  }
  const body = concat(...parts, payload)
  const header = new Uint8Array(40)
  header[0] = (o.version ?? 6) << 4
  header[1] = 0x0a
  put16(header, 4, o.payloadLength ?? body.length)
  header[6] = extensions.length > 0 ? (extensions[0] as Ipv6Extension).type : o.protocol
  header[7] = 64
  header.set(parseAddress(o.src ?? '2001:db8::1'), 8)
  header.set(parseAddress(o.dst ?? '2001:db8:1::2'), 24)
  return concat(header, body)
}

/** An ARP request (28 bytes). */
export function arp(): Uint8Array {
  return concat(
    bytes(0, 1, 0x08, 0x00, 6, 4, 0, 1),
    bytes(2, 0, 0, 0, 0, 1),
    parseAddress('192.0.2.1'),
    bytes(0, 0, 0, 0, 0, 0),
    parseAddress('192.0.2.254'),
  )
}

// ---------------------------------------------------------------------------------------------
// Link

export const ETHERTYPE_IPV4 = 0x0800
export const ETHERTYPE_ARP = 0x0806
export const ETHERTYPE_IPV6 = 0x86dd
export const ETHERTYPE_VLAN = 0x8100
export const ETHERTYPE_QINQ = 0x88a8
export const ETHERTYPE_QINQ_OLD = 0x9100

export interface VlanTag {
  tpid: number
  vid: number
  pcp?: number
}

/** VLAN tags (TPID + TCI each) followed by the EtherType; the first tag's TPID is returned. */
function tagged(type: number, vlans: VlanTag[]): { first: number; rest: Uint8Array } {
  if (vlans.length === 0) return { first: type, rest: new Uint8Array(0) }
  const rest = new Uint8Array(vlans.length * 4)
  for (let i = 0; i < vlans.length; i++) {
    const tag = vlans[i] as VlanTag
    put16(rest, i * 4, ((tag.pcp ?? 0) << 13) | tag.vid)
    const next = i + 1 < vlans.length ? (vlans[i + 1] as VlanTag).tpid : type
    put16(rest, i * 4 + 2, next)
  }
  return { first: (vlans[0] as VlanTag).tpid, rest }
}

export function ethernet(type: number, payload: Uint8Array, vlans: VlanTag[] = []): Uint8Array {
  const header = new Uint8Array(14)
  header.set(bytes(0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01))
  const { first, rest } = tagged(type, vlans)
  put16(header, 12, first)
  return concat(header, rest, payload)
}

/** Linux cooked capture v1: packet type, ARPHRD, address length, 8 address bytes, protocol. */
export function sll(protocol: number, payload: Uint8Array, vlans: VlanTag[] = []): Uint8Array {
  const header = new Uint8Array(16)
  put16(header, 0, 0) // to us
  put16(header, 2, 1) // ARPHRD_ETHER
  put16(header, 4, 6)
  header.set(bytes(0x02, 0, 0, 0, 0, 0x01), 6)
  const { first, rest } = tagged(protocol, vlans)
  put16(header, 14, first)
  return concat(header, rest, payload)
}

/** Linux cooked capture v2: protocol, reserved, ifindex, ARPHRD, packet type, address. */
export function sll2(protocol: number, payload: Uint8Array, vlans: VlanTag[] = []): Uint8Array {
  const header = new Uint8Array(20)
  const { first, rest } = tagged(protocol, vlans)
  put16(header, 0, first)
  put32(header, 4, 3)
  put16(header, 8, 1)
  header[10] = 4 // outgoing
  header[11] = 6
  header.set(bytes(0x02, 0, 0, 0, 0, 0x01), 12)
  return concat(header, rest, payload)
}

/** BSD loopback (LINKTYPE_NULL): the family in the capturing host's byte order. */
export function nullLink(family: number, payload: Uint8Array, littleEndian = true): Uint8Array {
  const header = new Uint8Array(4)
  new DataView(header.buffer).setUint32(0, family, littleEndian)
  return concat(header, payload)
}

/** OpenBSD loopback (LINKTYPE_LOOP): the family in network byte order. */
export function loopLink(family: number, payload: Uint8Array): Uint8Array {
  return nullLink(family, payload, false)
}
