/**
 * Minimal classic pcap writer for tests: global header plus records, either byte order,
 * microsecond or nanosecond timestamps.
 */

export interface PcapRecord {
  tsSeconds: number
  /** µs or ns, per the file's precision. */
  tsFraction: number
  data: Uint8Array
  /** Defaults to data.length; larger means the packet was cut by the snaplen. */
  originalLength?: number
}

export interface PcapWriterOptions {
  bigEndian?: boolean
  nanosecond?: boolean
  snaplen?: number
  linkType?: number
}

export function pcapGlobalHeader(options: PcapWriterOptions = {}): Uint8Array {
  const out = new Uint8Array(24)
  const view = new DataView(out.buffer)
  const le = !options.bigEndian
  view.setUint32(0, options.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, le)
  view.setUint16(4, 2, le)
  view.setUint16(6, 4, le)
  view.setInt32(8, 0, le)
  view.setUint32(12, 0, le)
  view.setUint32(16, options.snaplen ?? 262_144, le)
  view.setUint32(20, options.linkType ?? 1, le)
  return out
}

export function pcapRecord(record: PcapRecord, options: PcapWriterOptions = {}): Uint8Array {
  const out = new Uint8Array(16 + record.data.length)
  const view = new DataView(out.buffer)
  const le = !options.bigEndian
  view.setUint32(0, record.tsSeconds, le)
  view.setUint32(4, record.tsFraction, le)
  view.setUint32(8, record.data.length, le)
  view.setUint32(12, record.originalLength ?? record.data.length, le)
  out.set(record.data, 16)
  return out
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

export function buildPcap(records: readonly PcapRecord[], options: PcapWriterOptions = {}) {
  return concatBytes([pcapGlobalHeader(options), ...records.map((r) => pcapRecord(r, options))])
}

/**
 * A minimal Ethernet + IPv4 + UDP frame (checksums zero, which IPv4/UDP allow for UDP) so that
 * `tcpdump -r` has something it can decode.
 */
export function udpFrame(srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const udpLength = 8 + payload.length
  const ipLength = 20 + udpLength
  const frame = new Uint8Array(14 + ipLength)
  const view = new DataView(frame.buffer)
  frame.set([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1], 0) // dst, src MAC
  view.setUint16(12, 0x0800)
  frame[14] = 0x45
  view.setUint16(16, ipLength)
  frame[22] = 64 // TTL
  frame[23] = 17 // UDP
  frame.set([192, 0, 2, 1, 192, 0, 2, 2], 26) // TEST-NET-1 addresses
  let sum = 0
  for (let i = 14; i < 34; i += 2) sum += view.getUint16(i)
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  view.setUint16(24, ~sum & 0xffff)
  view.setUint16(34, srcPort)
  view.setUint16(36, dstPort)
  view.setUint16(38, udpLength)
  frame.set(payload, 42)
  return frame
}
