/**
 * Incremental reader for pcapng, what Wireshark and dumpcap write by default. PcapReader hands
 * a stream over to it when the first four bytes are a section header block; it can also be
 * used on its own.
 *
 * Format: a sequence of blocks, each `type (4) | total length (4) | body | total length (4)`,
 * lengths a multiple of 4. A section header block (SHB) starts each section and fixes its byte
 * order with the byte-order magic 0x1a2b3c4d; interface description blocks (IDB) then number
 * the section's interfaces from 0, each with its own link type, snaplen and timestamp
 * resolution (if_tsresol, default microseconds; if_tsoffset adds seconds). Packets come in
 * enhanced packet blocks (EPB: interface, 64-bit timestamp, lengths), simple packet blocks
 * (SPB: interface 0, no timestamp) and the obsolete packet block (PB, 16-bit interface). Every
 * other block (name resolution, interface statistics, decryption secrets, custom, unknown) is
 * skipped by its length and counted.
 *
 * Like PcapReader this is on the capture hot path: blocks wholly inside a chunk are read in
 * place, only a block split across chunks is assembled in a reused carry buffer, and a packet
 * costs no allocation (timestamps are divided with exact double arithmetic; only resolutions
 * finer than 2^-32 s, which no capture tool writes, fall back to BigInt).
 *
 * Problems are handled the way PcapReader handles them. A cut tail is counted in
 * `truncatedBytes` by end(). A block whose framing is sound but whose content is not (a packet
 * longer than its block, an unknown interface, captured above original length, an IDB too
 * short for its fields or with an overrunning option) is skipped and counted in
 * `malformedBlocks`. Broken framing (a block length below 12, not a multiple of 4, above
 * MAXIMUM_BLOCK_LENGTH, or not repeated at the block's end; a section of another version or
 * without the byte-order magic) cannot be resynchronised: it throws PcapFormatError, as a corrupt
 * classic pcap record length does. Nothing else is thrown for any input.
 */

import {
  hex,
  MAXIMUM_SNAPLEN,
  type PacketSink,
  PcapFormatError,
  type PcapHeader,
  readBE32,
  readLE32,
} from './capture-format.ts'

/** Type of the section header block: the same bytes in both byte orders (0a 0d 0d 0a). */
export const PCAPNG_SECTION_HEADER = 0x0a0d0d0a
const BYTE_ORDER_MAGIC = 0x1a2b3c4d

const BLOCK_INTERFACE = 1
const BLOCK_PACKET_OBSOLETE = 2
const BLOCK_SIMPLE_PACKET = 3
const BLOCK_ENHANCED_PACKET = 6

const MIN_BLOCK = 12
const MIN_SECTION_HEADER = 28
const MIN_INTERFACE = 20
/** EPB and the obsolete PB have the same layout around the packet: 28 bytes before, 4 after. */
const MIN_PACKET = 32
const MIN_SIMPLE_PACKET = 16

const OPTION_END = 0
const OPTION_IF_TSRESOL = 9
const OPTION_IF_TSOFFSET = 14

/**
 * Largest block accepted (Wireshark's own limit): it bounds the carry buffer. A larger length
 * is taken for corruption.
 */
export const MAXIMUM_BLOCK_LENGTH = 16 * 1024 * 1024

const TWO_32 = 4_294_967_296
const RESYNC = '; pcapng cannot be resynchronised after a bad block length'

export interface PcapngStats {
  /** Packets delivered to the sink. */
  packets: number
  sections: number
  /** Interface description blocks read, over all sections. */
  interfaces: number
  /** Link types of the interfaces, each once, in the order first described. */
  linkTypes: number[]
  /** Blocks that carry no packets (statistics, name resolution, custom, unknown types). */
  skippedBlocks: number
  /** Well-framed blocks whose content could not be used: skipped, their packets not delivered. */
  malformedBlocks: number
}

/** An interface of the current section, and how to turn its timestamps into seconds. */
interface Interface {
  header: PcapHeader
  /** Timestamp units per second if at most 2^32 (exact double arithmetic), else 0. */
  units: number
  /** Units per second for the BigInt path (resolutions finer than 2^-32 s); 0n otherwise. */
  bigUnits: bigint
  /** Output fraction = remainder × multiplier when that is exact; 0: computed by division. */
  multiplier: number
  /** if_tsoffset modulo 2^32 (its low word): seconds are only given modulo 2^32. */
  offsetSeconds: number
  /** Raw IDB snaplen (0: no limit), for simple packet blocks. */
  snaplen: number
}

/** floor(x / d) for integers x < 2^52, d > 0: the quotient of doubles corrected to exact. */
function floorDiv(x: number, d: number): number {
  const q = Math.floor(x / d)
  const r = x - q * d
  if (r < 0) return q - 1
  if (r >= d) return q + 1
  return q
}

/** floor(remainder × 10^9 / units) for remainder < units ≤ 2^32, in 16-bit halves to stay exact. */
function nanosecondsOf(remainder: number, units: number): number {
  const high = Math.floor(remainder / 65_536)
  const low = remainder - high * 65_536
  const a = high * 1e9
  const qa = floorDiv(a, units)
  const b = (a - qa * units) * 65_536 + low * 1e9
  return qa * 65_536 + floorDiv(b, units)
}

export class PcapngReader {
  readonly #onPacket: PacketSink
  readonly #onHeader: ((h: PcapHeader) => void) | undefined
  /** No section header read yet: the byte order is unknown. */
  #inSection = false
  #bigEndian = false
  #versionMajor = 1
  #versionMinor = 0
  /** Interfaces of the current section; null for an IDB too short to describe one. */
  #interfaces: (Interface | null)[] = []
  /** The interface whose header the consumer was last given. */
  #announced: Interface | null = null
  #first: PcapHeader | undefined = undefined
  #seconds = 0
  #fraction = 0
  #packets = 0
  #sections = 0
  #interfaceCount = 0
  readonly #linkTypes: number[] = []
  #skipped = 0
  #malformed = 0
  /** Blocks framed so far and the stream offset of the next block, for error messages. */
  #blocks = 0
  #streamOffset = 0
  #carry: Uint8Array = new Uint8Array(4096)
  #carryLength = 0
  #ended = false

  constructor(onPacket: PacketSink, onHeader?: (h: PcapHeader) => void) {
    this.#onPacket = onPacket
    this.#onHeader = onHeader
  }

  /** The first interface's header (the first IDB of the stream), once read. */
  get header(): PcapHeader | undefined {
    return this.#first
  }

  get packets(): number {
    return this.#packets
  }

  get stats(): PcapngStats {
    return {
      packets: this.#packets,
      sections: this.#sections,
      interfaces: this.#interfaceCount,
      linkTypes: [...this.#linkTypes],
      skippedBlocks: this.#skipped,
      malformedBlocks: this.#malformed,
    }
  }

  /**
   * Feeds bytes; the sink is called synchronously for every packet of every complete block. The
   * header callback is called before a packet whenever it comes from another interface than
   * the packet before (and before the first), so that a consumer keeping the last header
   * decodes each packet with its own interface's link type and timestamp precision.
   */
  push(chunk: Uint8Array): void {
    if (this.#ended) throw new Error('PcapngReader.push after end()')
    const length = chunk.length
    let pos = 0
    if (this.#carryLength > 0) {
      pos = this.#fillCarry(chunk)
      if (this.#carryLength > 0) return
    }
    while (pos + MIN_BLOCK <= length) {
      const total = this.#blockLength(chunk, pos)
      if (pos + total > length) break
      this.#block(chunk, pos, total)
      pos += total
    }
    if (pos < length) {
      this.#ensureCarry(length - pos)
      this.#carry.set(chunk.subarray(pos), 0)
      this.#carryLength = length - pos
    }
  }

  /** Ends the stream. Leftover bytes are a block cut short, e.g. by a crash. */
  end(): { truncatedBytes: number } {
    this.#ended = true
    const truncatedBytes = this.#carryLength
    this.#carryLength = 0
    return { truncatedBytes }
  }

  /** Completes the block whose start is in the carry buffer; returns the chunk bytes used. */
  #fillCarry(chunk: Uint8Array): number {
    let pos = this.#take(chunk, 0, MIN_BLOCK)
    if (this.#carryLength < MIN_BLOCK) return pos
    const total = this.#blockLength(this.#carry, 0)
    pos = this.#take(chunk, pos, total)
    if (this.#carryLength < total) return pos
    this.#carryLength = 0
    this.#block(this.#carry, 0, total)
    return pos
  }

  /**
   * The total length of the block at `p` (12 bytes available), checked: a length that breaks
   * the framing throws, since nothing after it could be trusted.
   */
  #blockLength(b: Uint8Array, p: number): number {
    let bigEndian = this.#bigEndian
    if (readLE32(b, p) === PCAPNG_SECTION_HEADER) {
      // A section fixes its own byte order; its length is written in that order.
      if (readLE32(b, p + 8) === BYTE_ORDER_MAGIC) bigEndian = false
      else if (readBE32(b, p + 8) === BYTE_ORDER_MAGIC) bigEndian = true
      else {
        this.#corrupt(
          `section header without the byte-order magic (bytes ${hex(b, p + 8, 4)}, expected ` +
            '1a 2b 3c 4d in either byte order)',
        )
      }
    } else if (!this.#inSection) {
      throw new PcapFormatError(
        `not a pcapng stream: first block type bytes ${hex(b, p, 4)} (expected 0a 0d 0d 0a)`,
      )
    }
    const total = bigEndian ? readBE32(b, p + 4) : readLE32(b, p + 4)
    if (total < MIN_BLOCK || total % 4 !== 0 || total > MAXIMUM_BLOCK_LENGTH) {
      this.#corrupt(
        `block length ${total} is ${total % 4 !== 0 ? 'not a multiple of 4' : total < MIN_BLOCK ? 'below 12' : `above the limit ${MAXIMUM_BLOCK_LENGTH}`}${RESYNC}`,
      )
    }
    return total
  }

  /** A complete block of `total` bytes at `p`. */
  #block(b: Uint8Array, p: number, total: number): void {
    if (readLE32(b, p) === PCAPNG_SECTION_HEADER) {
      const bigEndian = readLE32(b, p + 8) !== BYTE_ORDER_MAGIC
      this.#checkTrailer(b, p, total, bigEndian)
      this.#section(b, p, total, bigEndian)
    } else {
      const bigEndian = this.#bigEndian
      this.#checkTrailer(b, p, total, bigEndian)
      const type = bigEndian ? readBE32(b, p) : readLE32(b, p)
      if (type === BLOCK_ENHANCED_PACKET) {
        const id = bigEndian ? readBE32(b, p + 8) : readLE32(b, p + 8)
        this.#packet(b, p, total, id)
      } else if (type === BLOCK_SIMPLE_PACKET) this.#simplePacket(b, p, total)
      else if (type === BLOCK_INTERFACE) this.#interface(b, p, total)
      else if (type === BLOCK_PACKET_OBSOLETE) {
        this.#packet(b, p, total, read16(b, p + 8, bigEndian))
      } else this.#skipped++
    }
    this.#blocks++
    this.#streamOffset += total
  }

  #checkTrailer(b: Uint8Array, p: number, total: number, bigEndian: boolean): void {
    const end = p + total - 4
    const trailer = bigEndian ? readBE32(b, end) : readLE32(b, end)
    if (trailer !== total) {
      this.#corrupt(`block length ${total} at its start but ${trailer} at its end${RESYNC}`)
    }
  }

  #section(b: Uint8Array, p: number, total: number, bigEndian: boolean): void {
    if (total < MIN_SECTION_HEADER) {
      this.#corrupt(`section header block of ${total} bytes, shorter than 28`)
    }
    const major = read16(b, p + 12, bigEndian)
    const minor = read16(b, p + 14, bigEndian)
    if (major !== 1) {
      this.#corrupt(`unsupported pcapng version ${major}.${minor} (only 1.x is read)`)
    }
    this.#inSection = true
    this.#bigEndian = bigEndian
    this.#versionMajor = major
    this.#versionMinor = minor
    this.#interfaces = []
    this.#announced = null
    this.#sections++
  }

  #interface(b: Uint8Array, p: number, total: number): void {
    this.#interfaceCount++
    if (total < MIN_INTERFACE) {
      // Kept as a hole so that later interfaces keep their numbers.
      this.#interfaces.push(null)
      this.#malformed++
      return
    }
    const bigEndian = this.#bigEndian
    const linkType = read16(b, p + 8, bigEndian)
    const snaplen = bigEndian ? readBE32(b, p + 12) : readLE32(b, p + 12)
    const { decimal, exponent, offsetSeconds, malformed } = readInterfaceOptions(
      b,
      p + 16,
      p + total - 4,
      bigEndian,
    )
    if (malformed) this.#malformed++
    const units = decimal ? 10 ** exponent : 2 ** exponent
    const exact = units <= TWO_32
    const multiplier = exact ? fractionMultiplier(units) : 0
    const header: PcapHeader = {
      linkType,
      // 0 means no limit: say the largest usual one rather than a snaplen of nothing.
      snaplen: snaplen === 0 ? MAXIMUM_SNAPLEN : snaplen,
      nanosecond: !(exact && 1e6 % units === 0),
      bigEndian,
      versionMajor: this.#versionMajor,
      versionMinor: this.#versionMinor,
    }
    this.#interfaces.push({
      header,
      units: exact ? units : 0,
      bigUnits: exact ? 0n : decimal ? 10n ** BigInt(exponent) : 1n << BigInt(exponent),
      multiplier,
      offsetSeconds,
      snaplen,
    })
    if (this.#first === undefined) this.#first = header
    if (!this.#linkTypes.includes(linkType)) this.#linkTypes.push(linkType)
  }

  /** EPB or obsolete PB: the same layout but for the width of the interface id. */
  #packet(b: Uint8Array, p: number, total: number, id: number): void {
    const itf = total < MIN_PACKET ? undefined : this.#interfaces[id]
    if (itf == null) {
      this.#malformed++
      return
    }
    const bigEndian = this.#bigEndian
    const captured = bigEndian ? readBE32(b, p + 20) : readLE32(b, p + 20)
    const original = bigEndian ? readBE32(b, p + 24) : readLE32(b, p + 24)
    if (captured > total - MIN_PACKET || captured > original) {
      this.#malformed++
      return
    }
    if (bigEndian) this.#time(itf, readBE32(b, p + 12), readBE32(b, p + 16))
    else this.#time(itf, readLE32(b, p + 12), readLE32(b, p + 16))
    this.#deliver(itf, b, p + 28, captured, original)
  }

  /**
   * SPB: interface 0, no timestamp (given as 0). The captured length is min(original, snaplen);
   * a block too short to hold that many bytes is malformed (as Wireshark holds too).
   */
  #simplePacket(b: Uint8Array, p: number, total: number): void {
    const itf = total < MIN_SIMPLE_PACKET ? undefined : this.#interfaces[0]
    if (itf == null) {
      this.#malformed++
      return
    }
    const original = this.#bigEndian ? readBE32(b, p + 8) : readLE32(b, p + 8)
    let captured = original
    if (itf.snaplen !== 0 && itf.snaplen < captured) captured = itf.snaplen
    if (captured > total - MIN_SIMPLE_PACKET) {
      this.#malformed++
      return
    }
    this.#seconds = 0
    this.#fraction = 0
    this.#deliver(itf, b, p + 12, captured, original)
  }

  #deliver(itf: Interface, b: Uint8Array, offset: number, captured: number, original: number) {
    if (this.#announced !== itf) {
      this.#announced = itf
      this.#onHeader?.(itf.header)
    }
    this.#packets++
    this.#onPacket(b, offset, captured, original, this.#seconds, this.#fraction)
  }

  /**
   * Splits the 64-bit timestamp `high:low` (in the interface's units) into seconds and the
   * fraction its header announces, into #seconds and #fraction. Seconds are reduced modulo 2^32
   * as classic pcap's 32-bit field would.
   */
  #time(itf: Interface, high: number, low: number): void {
    const units = itf.units
    if (units === 0) {
      const t = (BigInt(high) << 32n) | BigInt(low)
      const big = itf.bigUnits
      this.#seconds = Number((t / big + BigInt(itf.offsetSeconds)) & 0xffff_ffffn)
      this.#fraction = Number(((t % big) * 1_000_000_000n) / big)
      return
    }
    /** Seconds modulo 2^32, below 2^53 so that the sum is exact. */
    let seconds: number
    let remainder: number
    if (high < 0x10_0000) {
      // Below 2^52 (microseconds until the year 2112): one exact division.
      const t = high * TWO_32 + low
      seconds = floorDiv(t, units)
      remainder = t - seconds * units
    } else {
      // Long division in 32- and 16-bit digits, each step exact in a double. The quotient is
      // qh·2^32 + qm·2^16 + ql; modulo 2^32 the first term vanishes and qm keeps 16 bits.
      const qh = floorDiv(high, units)
      const mid = (high - qh * units) * 65_536 + (low >>> 16)
      const qm = floorDiv(mid, units)
      const last = (mid - qm * units) * 65_536 + (low & 0xffff)
      const ql = floorDiv(last, units)
      remainder = last - ql * units
      seconds = (qm % 65_536) * 65_536 + ql
    }
    this.#seconds = (seconds + itf.offsetSeconds) >>> 0
    this.#fraction =
      itf.multiplier > 0 ? remainder * itf.multiplier : nanosecondsOf(remainder, units)
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

  #ensureCarry(size: number): void {
    if (size <= this.#carry.length) return
    let capacity = this.#carry.length * 2
    while (capacity < size) capacity *= 2
    const next = new Uint8Array(capacity)
    next.set(this.#carry.subarray(0, this.#carryLength), 0)
    this.#carry = next
  }

  #corrupt(why: string): never {
    throw new PcapFormatError(
      `corrupt pcapng stream at block ${this.#blocks} (0-based, byte ${this.#streamOffset}): ${why}`,
    )
  }
}

/** What an interface description's options say about its timestamps. */
interface InterfaceOptions {
  /** if_tsresol: units are 10^-exponent s (decimal) or 2^-exponent s. */
  decimal: boolean
  exponent: number
  offsetSeconds: number
  /** An option overran the block or had the wrong length for its code. */
  malformed: boolean
}

function read16(b: Uint8Array, o: number, bigEndian: boolean): number {
  return bigEndian
    ? ((b[o] as number) << 8) | (b[o + 1] as number)
    : (b[o] as number) | ((b[o + 1] as number) << 8)
}

/** Reads the options in `b[o .. end)`: if_tsresol and if_tsoffset, the others skipped. */
function readInterfaceOptions(
  b: Uint8Array,
  o: number,
  end: number,
  bigEndian: boolean,
): InterfaceOptions {
  const options: InterfaceOptions = {
    decimal: true,
    exponent: 6,
    offsetSeconds: 0,
    malformed: false,
  }
  while (o + 4 <= end) {
    const code = read16(b, o, bigEndian)
    const length = read16(b, o + 2, bigEndian)
    if (code === OPTION_END) break
    if (o + 4 + length > end) {
      options.malformed = true
      break
    }
    if (code === OPTION_IF_TSRESOL) {
      if (length === 1) {
        const value = b[o + 4] as number
        options.decimal = (value & 0x80) === 0
        options.exponent = value & 0x7f
      } else options.malformed = true
    } else if (code === OPTION_IF_TSOFFSET) {
      if (length === 8) {
        // Only the low word matters: an int64 modulo 2^32, two's complement included.
        options.offsetSeconds = bigEndian ? readBE32(b, o + 8) : readLE32(b, o + 4)
      } else options.malformed = true
    }
    o += 4 + ((length + 3) & ~3)
  }
  return options
}

/** Output fraction = remainder × this when exact (to µs, else ns); 0: computed by division. */
function fractionMultiplier(units: number): number {
  if (1e6 % units === 0) return 1e6 / units
  if (1e9 % units === 0) return 1e9 / units
  return 0
}
