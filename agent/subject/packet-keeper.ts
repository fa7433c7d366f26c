/**
 * Packets for a grant that allows them: every used record, copied into a classic pcap segment
 * per drain (split when it would exceed what one PcapSegment may carry, or when the link type or
 * timestamp resolution changes).
 */
import type { PacketSink, PcapHeader } from '../../common/pcap/pcap-reader.ts'
import type { PcapSegment } from '../../protocol/grants.ts'
import type { VerifiedGrant } from '../grants/verify.ts'
import { type Granted, pcapSegment } from './records.ts'

/** Raw bytes of one pcap segment: base64 of it must fit PcapSegment.data (16 MiB). */
export const PCAP_SEGMENT_MAX_BYTES = 12 * 1024 * 1024 - 1024
const FILE_HEADER_BYTES = 24
const RECORD_HEADER_BYTES = 16

interface PcapChunk {
  linkType: number
  nanosecond: boolean
  records: Uint8Array[]
  bytes: number
  packets: number
  first: number
  last: number
}

export class PacketKeeper {
  readonly #grant: VerifiedGrant
  readonly #maxBytes: number
  #chunks: PcapChunk[] = []
  #bytes = 0
  #index = 0
  /** Packets not kept because the interval's budget was spent. */
  dropped = 0

  constructor(grant: VerifiedGrant, maxBytesPerInterval: number) {
    this.#grant = grant
    this.#maxBytes = maxBytesPerInterval
  }

  /**
   * Copies one record into the interval's pcap: the stream's header, the record's time in ms,
   * then the record as the pcap reader gave it (a PacketSink's arguments).
   */
  readonly keep: (header: PcapHeader, ts: number, ...record: Parameters<PacketSink>) => void = (
    header,
    ts,
    data,
    offset,
    capturedLength,
    originalLength,
    tsSeconds,
    tsFraction,
  ) => {
    const size = RECORD_HEADER_BYTES + capturedLength
    if (this.#bytes + size > this.#maxBytes) {
      this.dropped++
      return
    }
    const chunk = this.#chunkFor(header, size, ts)
    const record = new Uint8Array(size)
    const view = new DataView(record.buffer)
    view.setUint32(0, tsSeconds, true)
    view.setUint32(4, tsFraction, true)
    view.setUint32(8, capturedLength, true)
    view.setUint32(12, originalLength, true)
    record.set(data.subarray(offset, offset + capturedLength), RECORD_HEADER_BYTES)
    chunk.records.push(record)
    chunk.bytes += size
    chunk.packets++
    chunk.last = Math.max(chunk.last, ts)
    this.#bytes += size
  }

  /** The segment a record of `size` bytes goes to: the last one, or a new one. */
  #chunkFor(header: PcapHeader, size: number, ts: number): PcapChunk {
    const last = this.#chunks.at(-1)
    if (
      last !== undefined &&
      last.linkType === header.linkType &&
      last.nanosecond === header.nanosecond &&
      last.bytes + size <= PCAP_SEGMENT_MAX_BYTES - FILE_HEADER_BYTES
    ) {
      return last
    }
    const chunk: PcapChunk = {
      linkType: header.linkType,
      nanosecond: header.nanosecond,
      records: [],
      bytes: 0,
      packets: 0,
      first: ts,
      last: ts,
    }
    this.#chunks.push(chunk)
    return chunk
  }

  /** The interval's segments, numbered on from the previous drain's. */
  drain(): Granted<PcapSegment>[] {
    const out = this.#chunks.map((chunk) =>
      pcapSegment(this.#grant, {
        index: this.#index++,
        first: chunk.first,
        last: chunk.last,
        packets: chunk.packets,
        data: Buffer.concat([pcapFileHeader(chunk), ...chunk.records]).toString('base64'),
      }),
    )
    this.#chunks = []
    this.#bytes = 0
    return out
  }
}

function pcapFileHeader(chunk: PcapChunk): Uint8Array {
  const header = new Uint8Array(FILE_HEADER_BYTES)
  const view = new DataView(header.buffer)
  view.setUint32(0, chunk.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, true)
  view.setUint16(4, 2, true)
  view.setUint16(6, 4, true)
  view.setUint32(16, 262_144, true)
  view.setUint32(20, chunk.linkType, true)
  return header
}
