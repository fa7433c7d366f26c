import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import {
  PcapFormatError,
  type PcapHeader,
  PcapReader,
  readPcapFile,
} from '../../../common/pcap/pcap-reader.ts'
import {
  MAXIMUM_BLOCK_LENGTH,
  PcapngReader,
  type PcapngStats,
} from '../../../common/pcap/pcapng.ts'
import { buildPcap, concatBytes } from './pcap-writer.ts'
import {
  block,
  customBlock,
  enhancedPacket,
  interfaceDescription,
  interfaceStatistics,
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_RAW,
  nameResolution,
  obsoletePacket,
  sectionHeader,
  simplePacket,
} from './pcapng-writer.ts'
import { pushInChunks, readNumbered } from './reading.ts'

interface Seen {
  linkType: number
  nanosecond: boolean
  bytes: number[]
  capturedLength: number
  originalLength: number
  tsSeconds: number
  tsFraction: number
}

interface Result {
  seen: Seen[]
  headers: PcapHeader[]
  truncatedBytes: number
  stats: PcapngStats
  error: unknown
}

/** Feeds `bytes` cut at the given sizes (cycled, each a fresh copy); never throws. */
function readChunked(bytes: Uint8Array, sizes: readonly number[] = [bytes.length]): Result {
  const seen: Seen[] = []
  const headers: PcapHeader[] = []
  let current: PcapHeader | undefined
  const reader = new PcapngReader(
    (data, offset, capturedLength, originalLength, tsSeconds, tsFraction) => {
      if (current === undefined) throw new Error('a packet before any header')
      seen.push({
        linkType: current.linkType,
        nanosecond: current.nanosecond,
        bytes: Array.from(data.subarray(offset, offset + capturedLength)),
        capturedLength,
        originalLength,
        tsSeconds,
        tsFraction,
      })
    },
    (h) => {
      current = h
      headers.push(h)
    },
  )
  let error: unknown
  try {
    pushInChunks(reader, bytes, sizes)
  } catch (e) {
    error = e
  }
  const { truncatedBytes } = reader.end()
  const stats = reader.stats
  return { seen, headers, truncatedBytes, stats, error }
}

function frame(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7) & 0xff
  return out
}

/** The timestamp a reader must give, computed independently with BigInt. */
function expectedTime(tsresol: number | undefined, t: bigint, offset = 0n) {
  const r = tsresol ?? 6
  const units = r & 0x80 ? 1n << BigInt(r & 0x7f) : 10n ** BigInt(r)
  const micro = 1_000_000n % units === 0n
  const per = micro ? 1_000_000n : 1_000_000_000n
  return {
    nanosecond: !micro,
    tsSeconds: Number((t / units + offset) & 0xffff_ffffn),
    tsFraction: Number(((t % units) * per) / units),
  }
}

const E = LINKTYPE_ETHERNET

/**
 * A small file exercising every block kind: two interfaces (Ethernet in µs, raw IP in ns),
 * skipped blocks between packets, a simple and an obsolete packet block.
 */
function sampleParts(bigEndian: boolean) {
  const o = { bigEndian }
  const t = (sec: number, us: number) => BigInt(sec) * 1_000_000n + BigInt(us)
  const tn = (sec: number, ns: number) => BigInt(sec) * 1_000_000_000n + BigInt(ns)
  const parts: { bytes: Uint8Array; packet?: Seen }[] = [
    { bytes: sectionHeader(o) },
    { bytes: interfaceDescription({ ...o, linkType: E, snaplen: 128 }) },
    { bytes: nameResolution(o) },
    { bytes: interfaceDescription({ ...o, linkType: LINKTYPE_RAW, snaplen: 0, tsresol: 9 }) },
  ]
  const add = (bytes: Uint8Array, packet: Seen) => parts.push({ bytes, packet })
  for (let i = 0; i < 6; i++) {
    const data = frame((i * 37) % 70, i)
    const onRaw = i % 2 === 1
    const original = i === 2 ? 1514 : data.length
    add(
      enhancedPacket({
        ...o,
        interfaceId: onRaw ? 1 : 0,
        timestamp: onRaw ? tn(1_700_000_000 + i, 999_999_999 - i) : t(1_700_000_000 + i, i * 1001),
        data,
        originalLength: original,
        epbOptions: i === 4 ? [{ code: 2, value: Uint8Array.of(0, 0, 0, 1) }] : [],
      }),
      {
        linkType: onRaw ? LINKTYPE_RAW : E,
        nanosecond: onRaw,
        bytes: Array.from(data),
        capturedLength: data.length,
        originalLength: original,
        tsSeconds: 1_700_000_000 + i,
        tsFraction: onRaw ? 999_999_999 - i : i * 1001,
      },
    )
    if (i === 1) parts.push({ bytes: interfaceStatistics(0, o) })
    if (i === 3) parts.push({ bytes: customBlock(frame(9, 1), o) })
  }
  const spb = frame(200, 9) // snaplen 128 of interface 0 cuts it
  add(simplePacket({ ...o, data: spb }), {
    linkType: E,
    nanosecond: false,
    bytes: Array.from(spb.subarray(0, 128)),
    capturedLength: 128,
    originalLength: 200,
    tsSeconds: 0,
    tsFraction: 0,
  })
  const pb = frame(21, 5)
  add(obsoletePacket({ ...o, interfaceId: 1, timestamp: tn(7, 8), data: pb }), {
    linkType: LINKTYPE_RAW,
    nanosecond: true,
    bytes: Array.from(pb),
    capturedLength: 21,
    originalLength: 21,
    tsSeconds: 7,
    tsFraction: 8,
  })
  parts.push({ bytes: block(0x0000_7777, frame(13, 2), o) }) // a type nobody knows
  return parts
}

function sample(bigEndian: boolean) {
  const parts = sampleParts(bigEndian)
  return {
    parts,
    file: concatBytes(parts.map((p) => p.bytes)),
    packets: parts.flatMap((p) => (p.packet ? [p.packet] : [])),
  }
}

describe('PcapngReader', () => {
  for (const bigEndian of [false, true]) {
    describe(bigEndian ? 'big-endian section' : 'little-endian section', () => {
      const { file, packets } = sample(bigEndian)

      it('delivers enhanced, simple and obsolete packet blocks with each interface’s header', () => {
        const result = readChunked(file)
        expect(result.error).toBeUndefined()
        expect(result.truncatedBytes).toBe(0)
        expect(result.seen).toEqual(packets)
        expect(result.stats).toEqual({
          packets: 8,
          sections: 1,
          interfaces: 2,
          linkTypes: [E, LINKTYPE_RAW],
          skippedBlocks: 4,
          malformedBlocks: 0,
        })
        // A header each time the interface changes: E, RAW, E, RAW, E, RAW, E (SPB), RAW (PB).
        expect(result.headers.map((h) => h.linkType)).toEqual([E, 101, E, 101, E, 101, E, 101])
        expect(result.headers[0]).toEqual({
          linkType: E,
          snaplen: 128,
          nanosecond: false,
          bigEndian,
          versionMajor: 1,
          versionMinor: 0,
        })
        // snaplen 0 (no limit) is given as the largest usual one.
        expect(result.headers[1]).toMatchObject({ snaplen: 262_144, nanosecond: true })
      })

      it('gives the same packets when fed one byte at a time, or 5 or 13 at a time', () => {
        for (const sizes of [[1], [5], [13, 1, 64]]) {
          const result = readChunked(file, sizes)
          expect(result.error).toBeUndefined()
          expect(result.truncatedBytes).toBe(0)
          expect(result.seen).toEqual(packets)
        }
      })

      it('passes packets that lie within a chunk in place, without copying', () => {
        const arrays: Uint8Array[] = []
        const reader = new PcapngReader((data) => arrays.push(data))
        reader.push(file)
        expect(arrays).toHaveLength(8)
        expect(arrays.every((a) => a === file)).toBe(true)
      })
    })
  }

  it('reads several sections, each resetting the interfaces and the byte order', () => {
    const data = frame(40, 3)
    const file = concatBytes([
      sectionHeader(),
      interfaceDescription({ linkType: E }),
      interfaceDescription({ linkType: LINKTYPE_LINUX_SLL, tsresol: 3 }),
      enhancedPacket({ interfaceId: 1, timestamp: 5_001n, data }),
      sectionHeader({ bigEndian: true }),
      // Interface 1 of the first section is gone: this packet is malformed, and skipped.
      enhancedPacket({ bigEndian: true, interfaceId: 1, timestamp: 1n, data }),
      interfaceDescription({ bigEndian: true, linkType: LINKTYPE_RAW, tsresol: 9 }),
      enhancedPacket({ bigEndian: true, interfaceId: 0, timestamp: 2_000_000_123n, data }),
      sectionHeader({ minor: 2 }),
      interfaceDescription({ linkType: LINKTYPE_RAW, tsresol: 9 }),
      enhancedPacket({ interfaceId: 0, timestamp: 3_000_000_456n, data }),
    ])
    for (const sizes of [[file.length], [1], [11]]) {
      const result = readChunked(file, sizes)
      expect(result.error).toBeUndefined()
      expect(result.seen.map((s) => [s.linkType, s.tsSeconds, s.tsFraction])).toEqual([
        [LINKTYPE_LINUX_SLL, 5, 1000], // 10^-3 s given as microseconds
        [LINKTYPE_RAW, 2, 123],
        [LINKTYPE_RAW, 3, 456],
      ])
      expect(result.headers.map((h) => [h.linkType, h.bigEndian, h.versionMinor])).toEqual([
        [LINKTYPE_LINUX_SLL, false, 0],
        [LINKTYPE_RAW, true, 0],
        [LINKTYPE_RAW, false, 2], // a new section's interface is announced again
      ])
      expect(result.stats).toMatchObject({
        packets: 3,
        sections: 3,
        interfaces: 4,
        linkTypes: [E, LINKTYPE_LINUX_SLL, LINKTYPE_RAW],
        malformedBlocks: 1,
      })
    }
  })

  describe('timestamp resolution (if_tsresol) and offset (if_tsoffset)', () => {
    const cases: { name: string; tsresol?: number; t: bigint; offset?: bigint }[] = [
      { name: 'default microseconds', t: 1_700_000_000_123_456n },
      { name: '10^-6 said explicitly', tsresol: 6, t: 1_700_000_000_000_001n },
      { name: 'nanoseconds, beyond 2^53', tsresol: 9, t: 1_700_000_000_999_999_999n },
      { name: 'seconds', tsresol: 0, t: 1_700_000_000n },
      { name: 'milliseconds', tsresol: 3, t: 1_700_000_000_999n },
      { name: '10^-7 (100 ns, Windows)', tsresol: 7, t: 17_000_000_001_234_567n },
      { name: 'picoseconds (finer than 2^-32)', tsresol: 12, t: 17_000_123_456_789_012_345n },
      { name: '2^-10', tsresol: 0x80 | 10, t: (1_700_000_000n << 10n) + 1023n },
      { name: '2^-20', tsresol: 0x80 | 20, t: (1_700_000_000n << 20n) + 777_777n },
      { name: '2^-30, beyond 2^53', tsresol: 0x80 | 30, t: (1_700_000_000n << 30n) + 1n },
      { name: '2^-32', tsresol: 0x80 | 32, t: (1_000n << 32n) + 0xffff_ffffn },
      { name: '2^-40 (finer than 2^-32)', tsresol: 0x80 | 40, t: (9n << 40n) + (1n << 39n) },
      { name: 'offset forward', t: 123_456n, offset: 1_700_000_000n },
      { name: 'offset backward', tsresol: 9, t: 1_700_000_000_000_000_005n, offset: -3600n },
      { name: 'largest timestamp, ns', tsresol: 9, t: 0xffff_ffff_ffff_ffffn },
      { name: 'largest timestamp, µs', t: 0xffff_ffff_ffff_ffffn },
    ]
    for (const c of cases) {
      it(c.name, () => {
        for (const bigEndian of [false, true]) {
          const o = { bigEndian }
          const file = concatBytes([
            sectionHeader(o),
            interfaceDescription({ ...o, linkType: E, tsresol: c.tsresol, tsoffset: c.offset }),
            enhancedPacket({ ...o, interfaceId: 0, timestamp: c.t, data: frame(60, 1) }),
          ])
          const result = readChunked(file)
          expect(result.error).toBeUndefined()
          const { nanosecond, ...time } = expectedTime(c.tsresol, c.t, c.offset)
          expect(result.headers[0]?.nanosecond).toBe(nanosecond)
          expect(result.seen[0]).toMatchObject(time)
        }
      })
    }

    it('equals a BigInt computation for any timestamp and resolution (property)', () => {
      fc.assert(
        fc.property(
          fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
          fc.oneof(fc.integer({ min: 0, max: 19 }), fc.integer({ min: 0x80, max: 0x80 + 63 })),
          fc.bigInt({ min: -(1n << 40n), max: 1n << 40n }),
          fc.boolean(),
          (t, tsresol, offset, bigEndian) => {
            const o = { bigEndian }
            const file = concatBytes([
              sectionHeader(o),
              interfaceDescription({ ...o, linkType: E, tsresol, tsoffset: offset }),
              enhancedPacket({ ...o, interfaceId: 0, timestamp: t, data: frame(4, 1) }),
            ])
            const result = readChunked(file)
            const { nanosecond, ...time } = expectedTime(tsresol, t, offset)
            expect(result.headers[0]?.nanosecond).toBe(nanosecond)
            expect({
              tsSeconds: result.seen[0]?.tsSeconds,
              tsFraction: result.seen[0]?.tsFraction,
            }).toEqual(time)
          },
        ),
        { numRuns: 2000 },
      )
    })
  })

  it('skips unknown, custom, name-resolution and statistics blocks by their length', () => {
    const data = frame(50, 4)
    const file = concatBytes([
      sectionHeader({ shbOptions: [{ code: 4, value: new TextEncoder().encode('a test') }] }),
      customBlock(frame(3, 3)),
      nameResolution(),
      interfaceDescription({
        linkType: E,
        extra: [{ code: 2, value: new TextEncoder().encode('eth0') }],
      }),
      block(0x4000_0bad, frame(17, 6)), // custom, not to be copied
      block(10, frame(40, 7)), // decryption secrets
      block(0x8000_0001, new Uint8Array(0)), // a local type with an empty body
      enhancedPacket({ interfaceId: 0, timestamp: 1n, data }),
      interfaceStatistics(0),
    ])
    const result = readChunked(file, [7])
    expect(result.error).toBeUndefined()
    expect(result.seen).toHaveLength(1)
    expect(result.seen[0]?.bytes).toEqual(Array.from(data))
    expect(result.stats).toMatchObject({ skippedBlocks: 6, malformedBlocks: 0, packets: 1 })
  })

  it('counts and skips blocks whose content is malformed, and reads on', () => {
    const good = (id = 0) => enhancedPacket({ interfaceId: id, timestamp: 1n, data: frame(30, 1) })
    const lying = good()
    new DataView(lying.buffer).setUint32(20, 31 + 4, true) // captured beyond the block
    const overOriginal = enhancedPacket({
      interfaceId: 0,
      timestamp: 1n,
      data: frame(30, 1),
      originalLength: 29,
    })
    const idbOverrun = interfaceDescription({ linkType: LINKTYPE_RAW, tsresol: 9 })
    new DataView(idbOverrun.buffer).setUint16(18, 400, true) // the option's length
    const badTsresolLength = interfaceDescription({
      linkType: E,
      extra: [{ code: 9, value: Uint8Array.of(9, 9) }],
    })
    const file = concatBytes([
      sectionHeader(),
      good(), // before any interface
      simplePacket({ data: frame(10, 1) }), // ditto
      interfaceDescription({ linkType: E }),
      good(),
      good(7), // no interface 7
      lying,
      overOriginal,
      block(6, new Uint8Array(12)), // an EPB too short for its fields
      block(1, new Uint8Array(4)), // an IDB too short: interface 1 is a hole
      good(1),
      idbOverrun, // interface 2: usable (its fixed fields are fine), counted as malformed
      good(2),
      badTsresolLength, // interface 3: the bad option is ignored, the default kept
      good(3),
      block(3, new Uint8Array(0)), // an SPB without its length field
      simplePacket({ data: frame(10, 1), originalLength: 100 }), // 100 bytes are not there
      good(),
    ])
    for (const sizes of [[file.length], [1], [9]]) {
      const result = readChunked(file, sizes)
      expect(result.error).toBeUndefined()
      expect(result.seen.map((s) => [s.linkType, s.nanosecond])).toEqual([
        [E, false],
        [LINKTYPE_RAW, false], // the overrunning option was not read: microseconds
        [E, false],
        [E, false],
      ])
      expect(result.stats).toMatchObject({ packets: 4, interfaces: 4, malformedBlocks: 12 })
    }
  })

  describe('broken framing throws PcapFormatError after the packets before it', () => {
    const data = frame(20, 1)
    const head = [sectionHeader(), interfaceDescription({ linkType: E })]
    const packet = enhancedPacket({ interfaceId: 0, timestamp: 1n, data })
    const withLength = (total: number) => {
      const b = new Uint8Array(16)
      new DataView(b.buffer).setUint32(0, 0x7777, true)
      new DataView(b.buffer).setUint32(4, total, true)
      return b
    }
    const trailerWrong = enhancedPacket({ interfaceId: 0, timestamp: 2n, data })
    new DataView(trailerWrong.buffer).setUint32(trailerWrong.length - 4, 4, true)
    const noMagic = sectionHeader()
    noMagic.set([1, 2, 3, 4], 8)
    const shortSection = block(0x0a0d0d0a, Uint8Array.of(0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0))
    const cases: [string, Uint8Array, RegExp][] = [
      ['a length not a multiple of 4', withLength(14), /block 3 .*block length 14 is not a mult/],
      ['a length below 12', withLength(8), /block length 8 is below 12/],
      [
        'a length above the limit',
        withLength(MAXIMUM_BLOCK_LENGTH + 4),
        /block length 16777220 is above the limit 16777216/,
      ],
      ['a trailer that differs', trailerWrong, /block length 52 at its start but 4 at its end/],
      ['a section without byte-order magic', noMagic, /without the byte-order magic \(bytes 01/],
      ['a section header too short', shortSection, /section header block of 20 bytes/],
      ['a section of version 2', sectionHeader({ major: 2 }), /unsupported pcapng version 2\.0/],
    ]
    for (const [name, bad, message] of cases) {
      it(name, () => {
        const file = concatBytes([...head, packet, bad, packet])
        for (const sizes of [[file.length], [1], [6]]) {
          const result = readChunked(file, sizes)
          expect(result.error).toBeInstanceOf(PcapFormatError)
          expect(String(result.error)).toMatch(message)
          expect(result.seen).toHaveLength(1)
        }
      })
    }

    it('a stream that does not start with a section header', () => {
      const result = readChunked(concatBytes([head[1] as Uint8Array, packet]))
      expect(result.error).toBeInstanceOf(PcapFormatError)
      expect(String(result.error)).toMatch(/not a pcapng stream: first block type bytes 01 00/)
    })
  })

  it('counts the bytes of a block cut at any offset, never throwing (every prefix)', () => {
    for (const bigEndian of [false, true]) {
      const { parts } = sample(bigEndian)
      const file = concatBytes(parts.map((p) => p.bytes))
      const ends: { end: number; packets: number }[] = []
      let end = 0
      let packets = 0
      for (const p of parts) {
        end += p.bytes.length
        if (p.packet) packets++
        ends.push({ end, packets })
      }
      for (let cut = 0; cut <= file.length; cut++) {
        const complete = ends.filter((e) => e.end <= cut).at(-1) ?? { end: 0, packets: 0 }
        for (const sizes of [[cut], [1], [5]]) {
          const result = readChunked(file.subarray(0, cut), sizes)
          expect(result.error, `cut at ${cut}`).toBeUndefined()
          expect(result.seen.length, `cut at ${cut}`).toBe(complete.packets)
          expect(result.truncatedBytes, `cut at ${cut}`).toBe(cut - complete.end)
        }
      }
    }
  })

  it('handles an empty stream and empty chunks', () => {
    const reader = new PcapngReader(() => {})
    reader.push(new Uint8Array(0))
    expect(reader.end()).toEqual({ truncatedBytes: 0 })
    expect(reader.header).toBeUndefined()
    expect(() => reader.push(new Uint8Array(1))).toThrow(/after end/)
  })

  it('keeps a block split across chunks up to the limit (a large custom block)', () => {
    const big = customBlock(new Uint8Array(5_000_000).fill(3))
    const data = frame(60, 2)
    const file = concatBytes([
      sectionHeader(),
      interfaceDescription({ linkType: E }),
      big,
      enhancedPacket({ interfaceId: 0, timestamp: 1n, data }),
    ])
    const result = readChunked(file, [65_536])
    expect(result.error).toBeUndefined()
    expect(result.seen.map((s) => s.bytes)).toEqual([Array.from(data)])
    expect(result.stats).toMatchObject({ skippedBlocks: 1 })
  })
})

// ---------------------------------------------------------------------------------------------
// Fuzz: generated block sequences against a model, and mutated files against invariants.

type Item =
  | { kind: 'section'; bigEndian: boolean }
  | { kind: 'interface'; linkType: number; tsresol: number | undefined; snaplen: number }
  | { kind: 'packet'; id: number; t: bigint; length: number; extra: number; obsolete: boolean }
  | { kind: 'simple'; length: number; extra: number }
  | { kind: 'other'; type: number; length: number }

const itemArbitrary: fc.Arbitrary<Item> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('section'), bigEndian: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('interface'),
      linkType: fc.constantFrom(1, 101, 113, 276, 0, 65535),
      tsresol: fc.option(fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom(0x8a, 0xa0)), {
        nil: undefined,
      }),
      snaplen: fc.constantFrom(0, 64, 262_144),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('packet'),
      id: fc.integer({ min: 0, max: 3 }),
      t: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
      length: fc.integer({ min: 0, max: 90 }),
      extra: fc.integer({ min: 0, max: 40 }),
      obsolete: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('simple'),
      length: fc.integer({ min: 0, max: 90 }),
      extra: fc.integer({ min: 0, max: 40 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('other'),
      type: fc.constantFrom(4, 5, 10, 0xbad, 0x4000_0bad, 0x1234),
      length: fc.integer({ min: 0, max: 40 }),
    }),
  },
)

/** Bytes of the items and the packets a correct reader delivers from them. */
function build(items: readonly Item[]) {
  const parts: Uint8Array[] = []
  const packets: Omit<Seen, 'bytes'>[] = []
  let bigEndian = false
  let interfaces: Extract<Item, { kind: 'interface' }>[] = []
  for (const item of [{ kind: 'section', bigEndian: false } as Item, ...items]) {
    const o = { bigEndian }
    if (item.kind === 'section') {
      bigEndian = item.bigEndian
      interfaces = []
      parts.push(sectionHeader({ bigEndian }))
    } else if (item.kind === 'interface') {
      interfaces.push(item)
      parts.push(interfaceDescription({ ...o, ...item }))
    } else if (item.kind === 'packet') {
      const data = frame(item.length, item.length)
      const id = item.id
      const write = item.obsolete ? obsoletePacket : enhancedPacket
      parts.push(
        write({
          ...o,
          interfaceId: id,
          timestamp: item.t,
          data,
          originalLength: item.length + item.extra,
        }),
      )
      const itf = interfaces[id]
      if (itf !== undefined) {
        const { nanosecond, ...time } = expectedTime(itf.tsresol, item.t)
        packets.push({
          linkType: itf.linkType,
          nanosecond,
          capturedLength: item.length,
          originalLength: item.length + item.extra,
          ...time,
        })
      }
    } else if (item.kind === 'simple') {
      const data = frame(item.length, 1)
      parts.push(simplePacket({ ...o, data, originalLength: item.length + item.extra }))
      const itf = interfaces[0]
      // Captured: min(original, snaplen), which the block (`length` bytes padded to 4) must hold.
      let captured = item.length + item.extra
      if (itf !== undefined && itf.snaplen !== 0) captured = Math.min(captured, itf.snaplen)
      if (itf !== undefined && captured <= ((item.length + 3) & ~3)) {
        packets.push({
          linkType: itf.linkType,
          nanosecond: expectedTime(itf.tsresol, 0n).nanosecond,
          capturedLength: captured,
          originalLength: item.length + item.extra,
          tsSeconds: 0,
          tsFraction: 0,
        })
      }
    } else parts.push(block(item.type, frame(item.length, 2), o))
  }
  return { file: concatBytes(parts), packets }
}

/** `base` cut at `cut` (4 bytes at least) with bytes overwritten, and still pcapng's magic. */
function mutated(
  base: Uint8Array,
  mutations: readonly { at: number; bytes: Uint8Array }[],
  cut: number,
): Uint8Array {
  const file = base.slice(0, Math.max(cut, 4))
  for (const m of mutations)
    if (m.at < file.length) file.set(m.bytes.subarray(0, file.length - m.at), m.at)
  file.set([0x0a, 0x0d, 0x0d, 0x0a], 0) // still pcapng, so that blocks get read
  return file
}

/** Whatever the input: only a PcapFormatError, and packets whose fields are in range. */
function expectSane(r: Result): void {
  if (r.error !== undefined) expect(r.error).toBeInstanceOf(PcapFormatError)
  for (const s of r.seen) {
    expect(s.capturedLength).toBeLessThanOrEqual(s.originalLength)
    expect(s.bytes).toHaveLength(s.capturedLength)
    expect(Number.isInteger(s.tsSeconds) && s.tsSeconds >= 0).toBe(true)
    expect(s.tsSeconds).toBeLessThan(2 ** 32)
    expect(Number.isInteger(s.tsFraction) && s.tsFraction >= 0).toBe(true)
    expect(s.tsFraction).toBeLessThan(s.nanosecond ? 1e9 : 1e6)
  }
}

describe('PcapngReader fuzz', () => {
  it('delivers what a model of the blocks says, for any chunking (property)', () => {
    fc.assert(
      fc.property(
        fc.array(itemArbitrary, { maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 8 }),
        (items, sizes) => {
          const { file, packets } = build(items)
          const result = readChunked(file, sizes)
          expect(result.error).toBeUndefined()
          expect(result.truncatedBytes).toBe(0)
          expect(result.seen.map(({ bytes: _bytes, ...rest }) => rest)).toEqual(packets)
        },
      ),
      { numRuns: 400 },
    )
  })

  it('never throws but PcapFormatError on mutated files, the same for any chunking (property)', () => {
    const base = concatBytes([sample(false).file, sample(true).file])
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            at: fc.nat({ max: base.length - 1 }),
            bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.nat({ max: base.length }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 6 }),
        (mutations, cut, sizes) => {
          const file = mutated(base, mutations, cut)
          const whole = readChunked(file)
          const pieces = readChunked(file, sizes)
          expectSane(whole)
          expectSane(pieces)
          expect(pieces.seen).toEqual(whole.seen)
          expect(String(pieces.error)).toEqual(String(whole.error))
          if (whole.error === undefined) {
            expect(pieces.truncatedBytes).toBe(whole.truncatedBytes)
            expect(pieces.stats).toEqual(whole.stats)
          }
        },
      ),
      { numRuns: 1500 },
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Through PcapReader and readPcapFile, which choose the format by its magic.

describe('PcapReader with pcapng', () => {
  const { file, packets } = sample(false)

  it('hands a pcapng stream to the pcapng reader when asked to, for any chunking', () => {
    for (const sizes of [[file.length], [1], [3], [4], [5], [100]]) {
      const seen: number[][] = []
      const headers: number[] = []
      const reader = new PcapReader(
        (d, o, c) => seen.push(Array.from(d.subarray(o, o + c))),
        (h) => headers.push(h.linkType),
        { pcapng: true },
      )
      let pos = 0
      let i = 0
      while (pos < file.length) {
        const size = sizes[i++ % sizes.length] ?? 1
        reader.push(file.slice(pos, pos + size))
        pos += size
      }
      expect(reader.end()).toEqual({ truncatedBytes: 0 })
      expect(reader.format).toBe('pcapng')
      expect(reader.packets).toBe(8)
      expect(reader.header?.linkType).toBe(E)
      expect(reader.pcapngStats).toMatchObject({ interfaces: 2, skippedBlocks: 4 })
      expect(seen).toEqual(packets.map((p) => p.bytes))
      expect(headers).toEqual([1, 101, 1, 101, 1, 101, 1, 101])
    }
  })

  it('still refuses pcapng by default (streams that are classic pcap by construction)', () => {
    expect(() => new PcapReader(() => {}).push(file)).toThrow(
      /pcapng is not supported where classic pcap is expected .*convert with `editcap -F pcap/,
    )
  })

  it('reads classic pcap as before with pcapng allowed', () => {
    const data = frame(60, 1)
    const reader = new PcapReader(() => {}, undefined, { pcapng: true })
    reader.push(buildPcap([{ tsSeconds: 1, tsFraction: 2, data }]))
    expect(reader.format).toBe('pcap')
    expect(reader.packets).toBe(1)
    expect(reader.pcapngStats).toBeUndefined()
  })

  describe('readPcapFile', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-pcapng-'))
    afterAll(() => rmSync(dir, { recursive: true, force: true }))

    it('reads a pcapng file larger than one read, with a cut tail', async () => {
      const parts = [sectionHeader(), interfaceDescription({ linkType: E, tsresol: 9 })]
      for (let i = 0; i < 50_000; i++) {
        parts.push(
          enhancedPacket({
            interfaceId: 0,
            timestamp: BigInt(1000 + i) * 1_000_000_000n + BigInt(i),
            data: new Uint8Array(100).fill(i & 0xff),
          }),
        )
      }
      const bytes = concatBytes(parts)
      const path = join(dir, 'big.pcapng')
      writeFileSync(path, bytes.subarray(0, bytes.length - 50)) // ~6.6 MB, cut mid-block
      const { count, bad, result } = await readNumbered(path)
      expect(bad).toBe(0)
      expect(count).toBe(49_999)
      expect(result).toMatchObject({
        format: 'pcapng',
        packets: 49_999,
        truncatedBytes: 132 - 50,
        header: { linkType: E, nanosecond: true },
        pcapng: { sections: 1, interfaces: 1, malformedBlocks: 0 },
      })
    })

    it('rejects a pcapng file that describes no interface', async () => {
      const path = join(dir, 'empty.pcapng')
      writeFileSync(path, sectionHeader())
      await expect(readPcapFile(path, () => {})).rejects.toThrow(
        /pcapng file without an interface description block/,
      )
    })
  })
})
