/**
 * Minimal pcapng writer for tests: section headers, interface descriptions with options,
 * enhanced, simple and obsolete packet blocks, and any other block, in either byte order.
 * Blocks are built one by one so that tests can mix, repeat, break and cut them.
 */
import { concatBytes } from './pcap-writer.ts'

export interface BlockOptions {
  bigEndian?: boolean
}

const pad4 = (n: number) => (n + 3) & ~3

/** One option (code, value), padded; an end-of-options marker is added by `options`. */
export interface PcapngOption {
  code: number
  value: Uint8Array
}

function optionsBytes(options: readonly PcapngOption[], le: boolean): Uint8Array {
  if (options.length === 0) return new Uint8Array(0)
  const parts: Uint8Array[] = []
  for (const o of [...options, { code: 0, value: new Uint8Array(0) }]) {
    const out = new Uint8Array(4 + pad4(o.value.length))
    const view = new DataView(out.buffer)
    view.setUint16(0, o.code, le)
    view.setUint16(2, o.value.length, le)
    out.set(o.value, 4)
    parts.push(out)
  }
  return concatBytes(parts)
}

/** type | total length | body (padded) | total length. */
export function block(type: number, body: Uint8Array, options: BlockOptions = {}): Uint8Array {
  const le = !options.bigEndian
  const total = 12 + pad4(body.length)
  const out = new Uint8Array(total)
  const view = new DataView(out.buffer)
  view.setUint32(0, type, le)
  view.setUint32(4, total, le)
  out.set(body, 8)
  view.setUint32(total - 4, total, le)
  return out
}

export function sectionHeader(
  options: BlockOptions & { major?: number; minor?: number; shbOptions?: PcapngOption[] } = {},
): Uint8Array {
  const le = !options.bigEndian
  const fixed = new Uint8Array(16)
  const view = new DataView(fixed.buffer)
  view.setUint32(0, 0x1a2b3c4d, le)
  view.setUint16(4, options.major ?? 1, le)
  view.setUint16(6, options.minor ?? 0, le)
  view.setBigInt64(8, -1n, le) // section length unknown
  return block(
    0x0a0d0d0a,
    concatBytes([fixed, optionsBytes(options.shbOptions ?? [], le)]),
    options,
  )
}

export interface InterfaceDescription extends BlockOptions {
  linkType: number
  snaplen?: number
  /** if_tsresol byte: 0..127 = 10^-n, 0x80|n = 2^-n. Omitted: the default (microseconds). */
  tsresol?: number | undefined
  /** if_tsoffset in seconds. */
  tsoffset?: bigint | undefined
  /** More options (e.g. if_name), written before tsresol. */
  extra?: PcapngOption[]
}

export function interfaceDescription(d: InterfaceDescription): Uint8Array {
  const le = !d.bigEndian
  const fixed = new Uint8Array(8)
  const view = new DataView(fixed.buffer)
  view.setUint16(0, d.linkType, le)
  view.setUint32(4, d.snaplen ?? 262_144, le)
  const options: PcapngOption[] = [...(d.extra ?? [])]
  if (d.tsresol !== undefined) options.push({ code: 9, value: Uint8Array.of(d.tsresol) })
  if (d.tsoffset !== undefined) {
    const value = new Uint8Array(8)
    new DataView(value.buffer).setBigInt64(0, d.tsoffset, le)
    options.push({ code: 14, value })
  }
  return block(1, concatBytes([fixed, optionsBytes(options, le)]), d)
}

export interface EnhancedPacket extends BlockOptions {
  interfaceId: number
  /** Timestamp in the interface's units. */
  timestamp: bigint
  data: Uint8Array
  /** Defaults to data.length. */
  originalLength?: number
  /** Options after the data (e.g. epb_flags), which readers skip. */
  epbOptions?: PcapngOption[]
}

function packetBody(p: EnhancedPacket, obsolete: boolean): Uint8Array {
  const le = !p.bigEndian
  const fixed = new Uint8Array(20)
  const view = new DataView(fixed.buffer)
  if (obsolete) {
    view.setUint16(0, p.interfaceId, le)
    view.setUint16(2, 0, le) // drops count
  } else view.setUint32(0, p.interfaceId, le)
  view.setUint32(4, Number((p.timestamp >> 32n) & 0xffff_ffffn), le)
  view.setUint32(8, Number(p.timestamp & 0xffff_ffffn), le)
  view.setUint32(12, p.data.length, le)
  view.setUint32(16, p.originalLength ?? p.data.length, le)
  const data = new Uint8Array(pad4(p.data.length))
  data.set(p.data)
  return concatBytes([fixed, data, optionsBytes(p.epbOptions ?? [], le)])
}

export function enhancedPacket(p: EnhancedPacket): Uint8Array {
  return block(6, packetBody(p, false), p)
}

/** The obsolete Packet Block (type 2): like an EPB with a 16-bit interface id and drop count. */
export function obsoletePacket(p: EnhancedPacket): Uint8Array {
  return block(2, packetBody(p, true), p)
}

export function simplePacket(
  p: BlockOptions & { data: Uint8Array; originalLength?: number },
): Uint8Array {
  const fixed = new Uint8Array(4)
  new DataView(fixed.buffer).setUint32(0, p.originalLength ?? p.data.length, !p.bigEndian)
  const data = new Uint8Array(pad4(p.data.length))
  data.set(p.data)
  return block(3, concatBytes([fixed, data]), p)
}

/** A name resolution block with one IPv4 record (readers skip it). */
export function nameResolution(options: BlockOptions = {}): Uint8Array {
  const le = !options.bigEndian
  const name = new TextEncoder().encode('host.example\0')
  const record = new Uint8Array(4 + pad4(4 + name.length))
  const view = new DataView(record.buffer)
  view.setUint16(0, 1, le) // nrb_record_ipv4
  view.setUint16(2, 4 + name.length, le)
  record.set([192, 0, 2, 1], 4)
  record.set(name, 8)
  return block(4, concatBytes([record, new Uint8Array(4)]), options) // then nrb_record_end
}

/** An interface statistics block (readers skip it). */
export function interfaceStatistics(interfaceId: number, options: BlockOptions = {}): Uint8Array {
  const body = new Uint8Array(12)
  new DataView(body.buffer).setUint32(0, interfaceId, !options.bigEndian)
  return block(5, body, options)
}

/** A custom block (type 0x00000BAD: may be copied) with a private enterprise number. */
export function customBlock(payload: Uint8Array, options: BlockOptions = {}): Uint8Array {
  const pen = new Uint8Array(4)
  new DataView(pen.buffer).setUint32(0, 32473, !options.bigEndian) // IANA's example PEN
  return block(0x00000bad, concatBytes([pen, payload]), options)
}

export const LINKTYPE_ETHERNET = 1
export const LINKTYPE_RAW = 101
export const LINKTYPE_LINUX_SLL = 113
