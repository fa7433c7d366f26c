/**
 * Incremental reader for the classic pcap format (libpcap savefile, what `tcpdump -w` writes),
 * and, when asked, for pcapng (what Wireshark and dumpcap write): the first four bytes decide,
 * and a pcapng stream is handed to PcapngReader (pcapng.ts). Files are read with pcapng on
 * (readPcapFile); streams that are classic pcap by construction (tcpdump's stdout, the agent's
 * own capture segments) keep it off, so that their consumers may rely on one header per stream.
 *
 * We read the format ourselves instead of using the `pcap-parser` npm package named in the
 * design: its last release (0.2.1, 2012) has no nanosecond magic, uses the deprecated
 * `new Buffer`, allocates three objects per packet and re-concatenates its buffer for every
 * chunk (quadratic on a slow stream). This is the capture hot path, so the reader here
 * allocates nothing per packet: record headers are read with byte arithmetic and the sink gets
 * `(chunk, offset)` instead of a slice.
 *
 * Format: a 24-byte global header (magic, version, thiszone, sigfigs, snaplen, linktype), then
 * records of a 16-byte header (ts seconds, ts fraction, captured length, original length)
 * followed by the captured bytes. The magic decides byte order and whether the fraction is
 * microseconds (0xa1b2c3d4) or nanoseconds (0xa1b23c4d).
 *
 * Classic pcap has no record markers, so a corrupt record length cannot be resynchronised: it
 * is a PcapFormatError, not something to skip.
 *
 * These readers live in common/ because the agent (live and file captures) and the collector
 * (tier I pcap segments) both read the format. It is a file format defined elsewhere, not part
 * of Tally's own wire contract, so it does not belong in protocol/.
 */

import { closeSync, openSync, readSync } from 'node:fs'
import {
  hex,
  MAXIMUM_SNAPLEN,
  type PacketSink,
  PcapFormatError,
  type PcapHeader,
  readBE32,
  readLE32,
} from './capture-format.ts'
import { PCAPNG_SECTION_HEADER, PcapngReader, type PcapngStats } from './pcapng.ts'

export { MAXIMUM_SNAPLEN, type PacketSink, PcapFormatError, type PcapHeader }

export type CaptureFormat = 'pcap' | 'pcapng'

export interface PcapReaderOptions {
  /** Read pcapng too (default false: a pcapng stream is refused with advice to convert). */
  pcapng?: boolean
}

const GLOBAL_HEADER_LENGTH = 24
const RECORD_HEADER_LENGTH = 16
const MAGIC_MICRO = 0xa1b2c3d4
const MAGIC_NANO = 0xa1b23c4d
const MAGIC_MODIFIED = 0xa1b2cd34 // Kuznetsov's patched libpcap: 24-byte records

function parseGlobalHeader(b: Uint8Array, o: number, pcapng: boolean): PcapHeader {
  const be = readBE32(b, o)
  const le = readLE32(b, o)
  let bigEndian: boolean
  let nanosecond: boolean
  if (be === MAGIC_MICRO || be === MAGIC_NANO) {
    bigEndian = true
    nanosecond = be === MAGIC_NANO
  } else if (le === MAGIC_MICRO || le === MAGIC_NANO) {
    bigEndian = false
    nanosecond = le === MAGIC_NANO
  } else if (be === MAGIC_MODIFIED || le === MAGIC_MODIFIED) {
    throw new PcapFormatError(
      'modified (Kuznetsov) pcap is not supported; convert with `editcap -F pcap IN OUT.pcap`',
    )
  } else {
    throw new PcapFormatError(
      `not a pcap stream: magic bytes ${hex(b, o, 4)} (expected a1 b2 c3 d4 or a1 b2 3c 4d ` +
        `in either byte order${pcapng ? ", or pcapng's 0a 0d 0d 0a" : ''})`,
    )
  }
  const u16 = bigEndian
    ? (p: number) => ((b[o + p] as number) << 8) | (b[o + p + 1] as number)
    : (p: number) => (b[o + p] as number) | ((b[o + p + 1] as number) << 8)
  const u32 = bigEndian ? (p: number) => readBE32(b, o + p) : (p: number) => readLE32(b, o + p)
  const versionMajor = u16(4)
  const versionMinor = u16(6)
  if (versionMajor !== 2) {
    throw new PcapFormatError(
      `unsupported pcap version ${versionMajor}.${versionMinor} (only 2.x is supported)`,
    )
  }
  return {
    versionMajor,
    versionMinor,
    snaplen: u32(16),
    // Bits 26-31 of the link type field carry FCS information, not the link type.
    linkType: u32(20) & 0x03ff_ffff,
    nanosecond,
    bigEndian,
  }
}

/**
 * Push-driven classic pcap reader. Feed it chunks of any size (down to one byte); it calls the
 * sink synchronously for every complete record. Records wholly inside a chunk are passed in
 * place; only a record split across chunks is assembled in a reused carry buffer.
 * An exception thrown by the sink propagates out of `push`; the reader should then be dropped.
 * With `{ pcapng: true }` a pcapng stream is read through PcapngReader, whose header callback
 * comes again whenever packets switch to an interface with another header.
 */
export class PcapReader {
  #onPacket: PacketSink
  #onHeader: ((h: PcapHeader) => void) | undefined
  #header: PcapHeader | undefined = undefined
  #bigEndian = false
  #maxCaptured = MAXIMUM_SNAPLEN
  #packets = 0
  /** Bytes of an incomplete global header or record, carried over to the next push. */
  #carry: Uint8Array = new Uint8Array(4096)
  #carryLength = 0
  #ended = false
  readonly #acceptPcapng: boolean
  /** Set once the magic said pcapng: from then on every push goes to it. */
  #pcapng: PcapngReader | undefined = undefined

  constructor(
    onPacket: PacketSink,
    onHeader?: (h: PcapHeader) => void,
    options: PcapReaderOptions = {},
  ) {
    this.#onPacket = onPacket
    this.#onHeader = onHeader
    this.#acceptPcapng = options.pcapng === true
  }

  /** The global header; for pcapng, the first interface's. */
  get header(): PcapHeader | undefined {
    return this.#pcapng !== undefined ? this.#pcapng.header : this.#header
  }

  /** Records delivered so far (brought up to date when each push returns). */
  get packets(): number {
    return this.#pcapng !== undefined ? this.#pcapng.packets : this.#packets
  }

  /** Known once the first four bytes were pushed. */
  get format(): CaptureFormat | undefined {
    if (this.#pcapng !== undefined) return 'pcapng'
    return this.#header !== undefined ? 'pcap' : undefined
  }

  /** pcapng's block counts; undefined for classic pcap. */
  get pcapngStats(): PcapngStats | undefined {
    return this.#pcapng?.stats
  }

  push(chunk: Uint8Array): void {
    if (this.#ended) throw new Error('PcapReader.push after end()')
    if (this.#pcapng !== undefined) {
      this.#pcapng.push(chunk)
      return
    }
    const length = chunk.length
    let pos = 0
    if (this.#carryLength > 0 || this.#header === undefined) {
      pos = this.#fillCarry(chunk)
      // Read again: #fillCarry sets it when the magic says pcapng.
      const pcapng = this.#pcapng as PcapngReader | undefined
      if (pcapng !== undefined) {
        if (pos < length) pcapng.push(chunk.subarray(pos))
        return
      }
      if (pos === length && this.#carryLength > 0) return
    }
    pos = this.#records(chunk, pos, this.#bigEndian ? readBE32 : readLE32)
    if (pos < length) {
      // Start of a record that continues in the next chunk.
      this.#ensureCarry(length - pos)
      this.#carry.set(chunk.subarray(pos), 0)
      this.#carryLength = length - pos
    }
  }

  /**
   * Hands out the records wholly in `chunk` from `pos`; returns where they end. `read32` is the
   * file's byte order, chosen once per chunk rather than tested per field.
   */
  #records(chunk: Uint8Array, pos: number, read32: (b: Uint8Array, o: number) => number): number {
    const length = chunk.length
    const sink = this.#onPacket
    const maxCaptured = this.#maxCaptured
    let packets = this.#packets
    while (pos + RECORD_HEADER_LENGTH <= length) {
      const captured = read32(chunk, pos + 8)
      const original = read32(chunk, pos + 12)
      if (captured > maxCaptured || captured > original) {
        this.#packets = packets
        this.#corrupt(captured, original)
      }
      const end = pos + RECORD_HEADER_LENGTH + captured
      if (end > length) break
      packets++
      sink(
        chunk,
        pos + RECORD_HEADER_LENGTH,
        captured,
        original,
        read32(chunk, pos),
        read32(chunk, pos + 4),
      )
      pos = end
    }
    this.#packets = packets
    return pos
  }

  /** Ends the stream. Leftover bytes are a record (or header) cut short, e.g. by a crash. */
  end(): { truncatedBytes: number } {
    this.#ended = true
    if (this.#pcapng !== undefined) return this.#pcapng.end()
    const truncatedBytes = this.#carryLength
    this.#carryLength = 0
    return { truncatedBytes }
  }

  /**
   * Completes the item (global header or record) whose start is in the carry buffer with bytes
   * from the chunk, delivering it when complete. Returns how many chunk bytes were consumed.
   */
  #fillCarry(chunk: Uint8Array): number {
    let pos = 0
    if (this.#header === undefined) {
      pos = this.#take(chunk, pos, 4)
      if (this.#carryLength < 4) return pos
      if (readLE32(this.#carry, 0) === PCAPNG_SECTION_HEADER) {
        if (!this.#acceptPcapng) {
          throw new PcapFormatError(
            'pcapng is not supported where classic pcap is expected (files are read with ' +
              'readPcapFile); convert with `editcap -F pcap IN.pcapng OUT.pcap` (or capture ' +
              'with `tcpdump -w`, which writes classic pcap)',
          )
        }
        this.#pcapng = new PcapngReader(this.#onPacket, this.#onHeader)
        this.#pcapng.push(this.#carry.subarray(0, 4))
        this.#carryLength = 0
        return pos
      }
      pos = this.#take(chunk, pos, GLOBAL_HEADER_LENGTH)
      if (this.#carryLength < GLOBAL_HEADER_LENGTH) return pos
      this.#setHeader(parseGlobalHeader(this.#carry, 0, this.#acceptPcapng))
      this.#carryLength = 0
      return pos // records continue in the fast path
    }
    if (this.#carryLength < RECORD_HEADER_LENGTH) {
      pos = this.#take(chunk, pos, RECORD_HEADER_LENGTH)
      if (this.#carryLength < RECORD_HEADER_LENGTH) return pos
      const captured = this.#read32(this.#carry, 8)
      const original = this.#read32(this.#carry, 12)
      if (captured > this.#maxCaptured || captured > original) this.#corrupt(captured, original)
    }
    const captured = this.#read32(this.#carry, 8)
    pos = this.#take(chunk, pos, RECORD_HEADER_LENGTH + captured)
    if (this.#carryLength < RECORD_HEADER_LENGTH + captured) return pos
    const carry = this.#carry
    this.#packets++
    this.#carryLength = 0
    this.#onPacket(
      carry,
      RECORD_HEADER_LENGTH,
      captured,
      this.#read32(carry, 12),
      this.#read32(carry, 0),
      this.#read32(carry, 4),
    )
    return pos
  }

  /** Copies chunk bytes from `pos` into the carry buffer until it holds `need` bytes. */
  #take(chunk: Uint8Array, pos: number, need: number): number {
    const take = Math.min(need - this.#carryLength, chunk.length - pos)
    if (take <= 0) return pos
    this.#ensureCarry(this.#carryLength + take)
    this.#carry.set(chunk.subarray(pos, pos + take), this.#carryLength)
    this.#carryLength += take
    return pos + take
  }

  #read32(b: Uint8Array, o: number): number {
    return this.#bigEndian ? readBE32(b, o) : readLE32(b, o)
  }

  #setHeader(header: PcapHeader): void {
    this.#header = header
    this.#bigEndian = header.bigEndian
    this.#maxCaptured = Math.max(header.snaplen, MAXIMUM_SNAPLEN)
    this.#onHeader?.(header)
  }

  #ensureCarry(size: number): void {
    if (size <= this.#carry.length) return
    let capacity = this.#carry.length * 2
    while (capacity < size) capacity *= 2
    const next = new Uint8Array(capacity)
    next.set(this.#carry.subarray(0, this.#carryLength), 0)
    this.#carry = next
  }

  #corrupt(captured: number, original: number): never {
    const why =
      captured > original
        ? `captured length ${captured} exceeds original length ${original}`
        : `captured length ${captured} exceeds the limit ${this.#maxCaptured}`
    throw new PcapFormatError(
      `corrupt pcap stream at record ${this.#packets} (0-based): ${why}; classic pcap cannot ` +
        'be resynchronised after a bad record',
    )
  }
}

/**
 * Read size for files, one buffer reused for the whole file. Small enough that a chunk is still
 * in the core's cache when the reader walks it after the kernel copied it in (4 MiB chunks cost
 * a full-size-frame file about a tenth more CPU), large enough that the syscalls do not count.
 */
const FILE_READ_SIZE = 256 * 1024

export interface CaptureFileSummary {
  format: CaptureFormat
  /** The global header; for pcapng, the first interface's. */
  header: PcapHeader
  packets: number
  /** Bytes of a record or block cut short at the end of the file. */
  truncatedBytes: number
  /** pcapng's block counts; undefined for classic pcap. */
  pcapng: PcapngStats | undefined
}

/**
 * Streams a capture file, classic pcap or pcapng, through a PcapReader with sequential reads into
 * one reused buffer (the file is never held in memory whole). Rejects with PcapFormatError for
 * a file that is neither, whose framing is corrupt, or that describes no interface (too short
 * for a pcap header, or a pcapng without an interface description block).
 *
 * The reads are synchronous: this is for a command that reads one file and exits (`tally agent
 * aggregate`), whose event loop has nothing else to do, and each read through the thread pool
 * would cost a hand-over between threads, which a loaded core makes slow.
 */
export async function readPcapFile(
  path: string,
  onPacket: PacketSink,
  onHeader?: (h: PcapHeader) => void,
): Promise<CaptureFileSummary> {
  const reader = new PcapReader(onPacket, onHeader, { pcapng: true })
  const fd = openSync(path, 'r')
  try {
    const buffer = new Uint8Array(FILE_READ_SIZE)
    for (;;) {
      const bytesRead = readSync(fd, buffer, 0, buffer.length, null)
      if (bytesRead === 0) break
      reader.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead))
    }
  } finally {
    closeSync(fd)
  }
  const { truncatedBytes } = reader.end()
  const header = reader.header
  const format = reader.format
  if (header === undefined || format === undefined) {
    throw new PcapFormatError(
      format === 'pcapng'
        ? `${path} is a pcapng file without an interface description block: no packets to read`
        : `${path} is not a pcap file: ${truncatedBytes} bytes, shorter than the 24-byte pcap header`,
    )
  }
  return { format, header, packets: reader.packets, truncatedBytes, pcapng: reader.pcapngStats }
}
