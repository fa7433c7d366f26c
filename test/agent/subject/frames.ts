/**
 * Ethernet frames for subject capture tests: IPv4/IPv6 with TCP, UDP, ICMP or ICMPv6, built by
 * hand (IPv4 header checksum set; transport checksums zero, which tshark does not check by
 * default).
 */
import { parseAddress } from '../../../agent/decode/address.ts'

export interface FrameSpec {
  src: string
  dst: string
  protocol: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | number
  srcPort?: number
  dstPort?: number
  /** TCP flags byte (default ACK). */
  flags?: number
  seq?: number
  /** ICMP type and code. */
  type?: number
  code?: number
  payload?: Uint8Array | undefined
}

const PROTOCOLS = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 } as const

export const FIN = 0x01
export const SYN = 0x02
export const RST = 0x04
export const PSH = 0x08
export const ACK = 0x10

export function frame(spec: FrameSpec): Uint8Array {
  const src = parseAddress(spec.src)
  const dst = parseAddress(spec.dst)
  const v6 = src.length === 16
  const protocol = typeof spec.protocol === 'number' ? spec.protocol : PROTOCOLS[spec.protocol]
  const payload = spec.payload ?? new Uint8Array(0)
  let transport: Uint8Array
  if (protocol === 6) {
    transport = new Uint8Array(20 + payload.length)
    const v = new DataView(transport.buffer)
    v.setUint16(0, spec.srcPort ?? 0)
    v.setUint16(2, spec.dstPort ?? 0)
    v.setUint32(4, spec.seq ?? 1000)
    v.setUint32(8, 0)
    transport[12] = 5 << 4
    transport[13] = spec.flags ?? ACK
    v.setUint16(14, 65535)
    transport.set(payload, 20)
  } else if (protocol === 17) {
    transport = new Uint8Array(8 + payload.length)
    const v = new DataView(transport.buffer)
    v.setUint16(0, spec.srcPort ?? 0)
    v.setUint16(2, spec.dstPort ?? 0)
    v.setUint16(4, 8 + payload.length)
    transport.set(payload, 8)
  } else if (protocol === 1 || protocol === 58) {
    transport = new Uint8Array(8 + payload.length)
    transport[0] = spec.type ?? 8
    transport[1] = spec.code ?? 0
    transport.set(payload, 8)
  } else {
    transport = payload
  }
  const ipHeader = v6 ? 40 : 20
  const out = new Uint8Array(14 + ipHeader + transport.length)
  const view = new DataView(out.buffer)
  out.set([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1], 0)
  view.setUint16(12, v6 ? 0x86dd : 0x0800)
  if (v6) {
    out[14] = 0x60
    view.setUint16(18, transport.length)
    out[20] = protocol
    out[21] = 64
    out.set(src, 22)
    out.set(dst, 38)
  } else {
    out[14] = 0x45
    view.setUint16(16, 20 + transport.length)
    out[22] = 64
    out[23] = protocol
    out.set(src, 26)
    out.set(dst, 30)
    let sum = 0
    for (let i = 14; i < 34; i += 2) sum += view.getUint16(i)
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
    view.setUint16(24, ~sum & 0xffff)
  }
  out.set(transport, 14 + ipHeader)
  return out
}

/** A DNS query or response message with one question (and, for a response, no answers). */
export function dnsMessage(options: {
  id: number
  name: string
  qtype: number
  response?: boolean
  rcode?: number
}): Uint8Array {
  const labels = options.name === '.' ? [] : options.name.split('.')
  const nameBytes: number[] = []
  for (const label of labels) {
    nameBytes.push(label.length, ...Array.from(label, (c) => c.charCodeAt(0)))
  }
  nameBytes.push(0)
  const out = new Uint8Array(12 + nameBytes.length + 4)
  const view = new DataView(out.buffer)
  view.setUint16(0, options.id)
  view.setUint16(2, (options.response ? 0x8180 : 0x0100) | (options.rcode ?? 0))
  view.setUint16(4, 1)
  out.set(nameBytes, 12)
  view.setUint16(12 + nameBytes.length, options.qtype)
  view.setUint16(14 + nameBytes.length, 1)
  return out
}

/**
 * A TLS 1.3-style ClientHello record with the given SNI (or none), extensions in the given
 * order; `padTo` adds a padding extension (before server_name when `sniLast`) to make it big.
 */
export function clientHello(options: {
  sni?: string
  padding?: number
  sniLast?: boolean
}): Uint8Array {
  const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff]
  const extensions: number[][] = []
  if (options.sni !== undefined) {
    const name = Array.from(options.sni, (c) => c.charCodeAt(0))
    const entry = [0, ...u16(name.length), ...name]
    const list = [...u16(entry.length), ...entry]
    extensions.push([...u16(0), ...u16(list.length), ...list])
  }
  // supported_versions: TLS 1.3, 1.2
  extensions.push([...u16(43), ...u16(5), 4, 0x03, 0x04, 0x03, 0x03])
  if (options.padding !== undefined) {
    extensions.push([
      ...u16(21),
      ...u16(options.padding),
      ...new Array<number>(options.padding).fill(0),
    ])
  }
  if (options.sniLast === true && options.sni !== undefined)
    extensions.push(extensions.shift() ?? [])
  const extBytes = extensions.flat()
  const body = [
    0x03,
    0x03, // legacy version
    ...new Array<number>(32).fill(0x11), // random
    32,
    ...new Array<number>(32).fill(0x22), // session id
    ...u16(4),
    0x13,
    0x01,
    0x13,
    0x02, // cipher suites
    1,
    0, // compression: null
    ...u16(extBytes.length),
    ...extBytes,
  ]
  const handshake = [
    1,
    (body.length >> 16) & 0xff,
    (body.length >> 8) & 0xff,
    body.length & 0xff,
    ...body,
  ]
  return Uint8Array.from([22, 0x03, 0x01, ...u16(handshake.length), ...handshake])
}

export const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))
