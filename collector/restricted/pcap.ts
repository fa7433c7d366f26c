/**
 * Classic pcap segments as the agent ships them (agent/subject/recorder.ts): checked on arrival,
 * and joined into one file for an export. Parsing reuses the shared reader
 * (common/pcap/pcap-reader.ts), which handles both byte orders and both time resolutions.
 */
import { type PcapHeader, PcapReader } from '../../common/pcap/pcap-reader.ts'

export class PcapSegmentError extends Error {
  override name = 'PcapSegmentError'
}

export interface ParsedSegment {
  header: PcapHeader
  /** Records, rewritten little-endian: 16-byte header then the captured bytes. */
  records: Buffer[]
}

/** Parses one segment; throws PcapSegmentError unless it is a whole classic pcap file. */
export function parseSegment(bytes: Uint8Array): ParsedSegment {
  const records: Buffer[] = []
  const reader = new PcapReader((data, offset, captured, original, seconds, fraction) => {
    const record = Buffer.allocUnsafe(16 + captured)
    record.writeUInt32LE(seconds, 0)
    record.writeUInt32LE(fraction, 4)
    record.writeUInt32LE(captured, 8)
    record.writeUInt32LE(original, 12)
    record.set(data.subarray(offset, offset + captured), 16)
    records.push(record)
  })
  try {
    reader.push(bytes)
  } catch (err) {
    throw new PcapSegmentError((err as Error).message)
  }
  const { truncatedBytes } = reader.end()
  const header = reader.header
  if (header === undefined) throw new PcapSegmentError('shorter than the 24-byte pcap header')
  if (truncatedBytes > 0) {
    throw new PcapSegmentError(`ends inside a record (${truncatedBytes} bytes left over)`)
  }
  return { header, records }
}

function globalHeader(linkType: number, nanosecond: boolean, snaplen: number): Buffer {
  const header = Buffer.alloc(24)
  header.writeUInt32LE(nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, 0)
  header.writeUInt16LE(2, 4)
  header.writeUInt16LE(4, 6)
  header.writeUInt32LE(snaplen, 16)
  header.writeUInt32LE(linkType, 20)
  return header
}

/**
 * Joins segments, in the order given, into pcap files: one per link type (a pcap file has one),
 * each with one global header. Microsecond records are widened to nanoseconds when any segment
 * of the link type is in nanoseconds (exact). Returns [linkType, file] in order of first seen;
 * no segments gives one empty Ethernet file.
 */
export function joinSegments(segments: ParsedSegment[]): [number, Buffer][] {
  const groups = new Map<number, ParsedSegment[]>()
  for (const s of segments) {
    const group = groups.get(s.header.linkType)
    if (group === undefined) groups.set(s.header.linkType, [s])
    else group.push(s)
  }
  if (groups.size === 0) return [[1, globalHeader(1, false, 262_144)]]
  const out: [number, Buffer][] = []
  for (const [linkType, group] of groups) {
    const nano = group.some((s) => s.header.nanosecond)
    const snaplen = Math.max(...group.map((s) => s.header.snaplen))
    const parts: Buffer[] = [globalHeader(linkType, nano, snaplen)]
    for (const s of group) {
      for (const record of s.records) {
        if (nano && !s.header.nanosecond) {
          const widened = Buffer.from(record)
          widened.writeUInt32LE(record.readUInt32LE(4) * 1000, 4)
          parts.push(widened)
        } else parts.push(record)
      }
    }
    out.push([linkType, Buffer.concat(parts)])
  }
  return out
}
