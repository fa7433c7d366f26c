import { execFileSync } from 'node:child_process'
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
  buildPcap,
  concatBytes,
  type PcapRecord,
  type PcapWriterOptions,
  pcapGlobalHeader,
  pcapRecord,
  udpFrame,
} from './pcap-writer.ts'
import { pushInChunks, readNumbered } from './reading.ts'

interface Seen {
  bytes: number[]
  capturedLength: number
  originalLength: number
  tsSeconds: number
  tsFraction: number
}

function collect(): { seen: Seen[]; sink: ConstructorParameters<typeof PcapReader>[0] } {
  const seen: Seen[] = []
  return {
    seen,
    sink: (data, offset, capturedLength, originalLength, tsSeconds, tsFraction) => {
      seen.push({
        bytes: Array.from(data.subarray(offset, offset + capturedLength)),
        capturedLength,
        originalLength,
        tsSeconds,
        tsFraction,
      })
    },
  }
}

function expected(records: readonly PcapRecord[]): Seen[] {
  return records.map((r) => ({
    bytes: Array.from(r.data),
    capturedLength: r.data.length,
    originalLength: r.originalLength ?? r.data.length,
    tsSeconds: r.tsSeconds,
    tsFraction: r.tsFraction,
  }))
}

function sampleRecords(nanosecond: boolean): PcapRecord[] {
  const fractionMax = nanosecond ? 999_999_999 : 999_999
  const out: PcapRecord[] = []
  for (let i = 0; i < 40; i++) {
    const length = (i * 37) % 130 // includes empty records
    const data = new Uint8Array(length)
    for (let j = 0; j < length; j++) data[j] = (i * 7 + j) & 0xff
    out.push({
      // Timestamps above 2^31 check that fields are read unsigned.
      tsSeconds: i === 3 ? 0xffff_fff0 : 1_700_000_000 + i,
      tsFraction: i === 5 ? fractionMax : (i * 123_457) % (fractionMax + 1),
      data,
      originalLength: i % 4 === 0 ? length + 1400 : length,
    })
  }
  return out
}

/** Feeds `bytes` cut at the given sizes (cycled), returning what came out. */
function readChunked(bytes: Uint8Array, sizes: readonly number[]) {
  const { seen, sink } = collect()
  let header: PcapHeader | undefined
  const reader = new PcapReader(sink, (h) => {
    header = h
  })
  pushInChunks(reader, bytes, sizes)
  const { truncatedBytes } = reader.end()
  return { seen, header, truncatedBytes, packets: reader.packets }
}

const variants: Array<{ name: string; options: PcapWriterOptions }> = [
  { name: 'little-endian µs', options: { bigEndian: false, nanosecond: false } },
  { name: 'little-endian ns', options: { bigEndian: false, nanosecond: true } },
  { name: 'big-endian µs', options: { bigEndian: true, nanosecond: false } },
  { name: 'big-endian ns', options: { bigEndian: true, nanosecond: true } },
]

describe('PcapReader', () => {
  for (const { name, options } of variants) {
    describe(name, () => {
      const records = sampleRecords(options.nanosecond === true)
      const file = buildPcap(records, { ...options, snaplen: 128, linkType: 1 })

      it('delivers every record with its lengths and timestamps in one push', () => {
        const { seen, sink } = collect()
        const headers: PcapHeader[] = []
        const reader = new PcapReader(sink, (h) => headers.push(h))
        reader.push(file)
        expect(reader.end()).toEqual({ truncatedBytes: 0 })
        const header = {
          linkType: 1,
          snaplen: 128,
          nanosecond: options.nanosecond === true,
          bigEndian: options.bigEndian === true,
          versionMajor: 2,
          versionMinor: 4,
        }
        expect(headers).toEqual([header])
        expect(reader.header).toEqual(header)
        expect(reader.packets).toBe(records.length)
        expect(seen).toEqual(expected(records))
      })

      it('gives the same records when fed one byte at a time', () => {
        const result = readChunked(file, [1])
        expect(result.truncatedBytes).toBe(0)
        expect(result.packets).toBe(records.length)
        expect(result.seen).toEqual(expected(records))
      })

      it('passes records that lie within a chunk in place, without copying', () => {
        const offsets: number[] = []
        const arrays: Uint8Array[] = []
        const reader = new PcapReader((data, offset) => {
          arrays.push(data)
          offsets.push(offset)
        })
        reader.push(file)
        expect(arrays.every((a) => a === file)).toBe(true)
        let expectOffset = 24 + 16
        for (let i = 0; i < records.length; i++) {
          expect(offsets[i]).toBe(expectOffset)
          expectOffset += (records[i]?.data.length ?? 0) + 16
        }
      })
    })
  }

  it('gives the same records for any chunking (property)', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 20 }),
        (bigEndian, nanosecond, sizes) => {
          const records = sampleRecords(nanosecond)
          const file = buildPcap(records, { bigEndian, nanosecond })
          const result = readChunked(file, sizes)
          expect(result.truncatedBytes).toBe(0)
          expect(result.seen).toEqual(expected(records))
        },
      ),
      { numRuns: 200 },
    )
  })

  it('reports the bytes of a record cut at the end of the stream', () => {
    const records = sampleRecords(false).slice(0, 5)
    const full = buildPcap(records)
    const last = records[4]?.data.length ?? 0
    const cutBody = full.subarray(0, full.length - 3) // body short by 3
    for (const sizes of [[cutBody.length], [1], [7, 13]]) {
      const result = readChunked(cutBody, sizes)
      expect(result.packets).toBe(4)
      expect(result.truncatedBytes).toBe(16 + last - 3)
    }
    const cutHeader = concatBytes([buildPcap(records.slice(0, 2)), new Uint8Array(10)])
    expect(readChunked(cutHeader, [5]).truncatedBytes).toBe(10)
    expect(readChunked(cutHeader, [5]).packets).toBe(2)
    const onlyPartOfGlobalHeader = pcapGlobalHeader().subarray(0, 11)
    const partial = readChunked(onlyPartOfGlobalHeader, [4])
    expect(partial.header).toBeUndefined()
    expect(partial.truncatedBytes).toBe(11)
  })

  it('handles an empty stream and empty chunks', () => {
    const reader = new PcapReader(() => {})
    reader.push(new Uint8Array(0))
    expect(reader.end()).toEqual({ truncatedBytes: 0 })
    expect(reader.header).toBeUndefined()
  })

  it('refuses pcapng with advice to convert unless asked to read it', () => {
    const shb = Uint8Array.from([
      ...[0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a],
      ...[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1c, 0, 0, 0],
    ])
    const reader = new PcapReader(() => {})
    reader.push(shb.subarray(0, 3))
    expect(() => reader.push(shb.subarray(3, 12))).toThrow(PcapFormatError)
    expect(() => new PcapReader(() => {}).push(shb)).toThrow(
      /pcapng is not supported where classic pcap is expected .*convert with `editcap -F pcap/,
    )
    const reading = new PcapReader(() => {}, undefined, { pcapng: true })
    reading.push(shb)
    expect(reading.end()).toEqual({ truncatedBytes: 0 })
    expect(reading.format).toBe('pcapng')
    expect(reading.pcapngStats).toMatchObject({ sections: 1, interfaces: 0 })
  })

  it('rejects a foreign magic, naming the bytes seen', () => {
    const garbage = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(() => new PcapReader(() => {}).push(garbage)).toThrow(PcapFormatError)
    expect(() => new PcapReader(() => {}).push(garbage)).toThrow(/magic bytes 47 45 54 20/)
  })

  it('rejects an impossible captured length with the record index', () => {
    for (const bigEndian of [false, true]) {
      const good = pcapRecord(
        { tsSeconds: 1, tsFraction: 2, data: new Uint8Array(60) },
        { bigEndian },
      )
      const insane = pcapRecord(
        { tsSeconds: 1, tsFraction: 2, data: new Uint8Array(0) },
        { bigEndian },
      )
      new DataView(insane.buffer).setUint32(8, 0x7fff_0000, !bigEndian) // caplen
      new DataView(insane.buffer).setUint32(12, 0x7fff_0000, !bigEndian) // len
      const file = concatBytes([
        pcapGlobalHeader({ bigEndian, snaplen: 65535 }),
        good,
        good,
        insane,
      ])
      for (const sizes of [[file.length], [1]]) {
        let error: unknown
        try {
          readChunked(file, sizes)
        } catch (e) {
          error = e
        }
        expect(error).toBeInstanceOf(PcapFormatError)
        expect(String(error)).toMatch(
          /record 2 .*captured length 2147418112 exceeds the limit 262144/,
        )
      }
    }
  })

  it('rejects a captured length above the original length', () => {
    const record = pcapRecord({
      tsSeconds: 1,
      tsFraction: 0,
      data: new Uint8Array(80),
      originalLength: 60,
    })
    const file = concatBytes([pcapGlobalHeader(), record])
    expect(() => new PcapReader(() => {}).push(file)).toThrow(
      /record 0 .*captured length 80 exceeds original length 60/,
    )
  })

  it('allows records up to a snaplen above 262144', () => {
    const data = new Uint8Array(300_000).fill(7)
    const file = buildPcap([{ tsSeconds: 1, tsFraction: 0, data }], { snaplen: 300_000 })
    const result = readChunked(file, [65_536])
    expect(result.packets).toBe(1)
    expect(result.seen[0]?.capturedLength).toBe(300_000)
  })
})

describe('readPcapFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-pcap-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('streams a file larger than one read and reports a cut tail', async () => {
    const records: PcapRecord[] = []
    for (let i = 0; i < 60_000; i++) {
      records.push({ tsSeconds: 1000 + i, tsFraction: i, data: new Uint8Array(100).fill(i & 0xff) })
    }
    const bytes = buildPcap(records, { nanosecond: true, bigEndian: true })
    const path = join(dir, 'big.pcap')
    writeFileSync(path, bytes.subarray(0, bytes.length - 50)) // ~6.9 MB, cut mid-record
    const { count, bad, result } = await readNumbered(path)
    expect(bad).toBe(0)
    expect(count).toBe(59_999)
    expect(result.packets).toBe(59_999)
    expect(result.truncatedBytes).toBe(116 - 50)
    expect(result.header.nanosecond).toBe(true)
    expect(result.header.bigEndian).toBe(true)
  })

  it('rejects a file too short for a header', async () => {
    const path = join(dir, 'short.pcap')
    writeFileSync(path, new Uint8Array([0xd4, 0xc3]))
    await expect(readPcapFile(path, () => {})).rejects.toThrow(PcapFormatError)
  })
})

function hasTcpdump(): boolean {
  try {
    execFileSync('which', ['tcpdump'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const tcpdumpAvailable = hasTcpdump()
if (!tcpdumpAvailable) {
  console.warn(
    'SKIPPED: "tcpdump -r reads our writer\'s files" needs tcpdump, which is not installed ' +
      '(apt-get install -y tcpdump)',
  )
}

describe('test pcap writer', () => {
  it.skipIf(!tcpdumpAvailable)('writes files that tcpdump -r reads (needs tcpdump)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-pcap-tcpdump-'))
    try {
      for (const { name, options } of variants) {
        const nano = options.nanosecond === true
        const records: PcapRecord[] = [1, 2, 3].map((i) => ({
          tsSeconds: 1_700_000_000 + i,
          tsFraction: nano ? 123_456_789 : 123_456,
          data: udpFrame(40_000 + i, 9999, new Uint8Array(10 * i)),
        }))
        const path = join(dir, `${name.replace(/\W+/g, '-')}.pcap`)
        writeFileSync(path, buildPcap(records, options))
        const args = ['-r', path, '-nn', '-tt']
        if (nano) args.push('--time-stamp-precision=nano')
        const out = execFileSync('tcpdump', args, {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        const lines = out.trim().split('\n')
        expect(lines, name).toHaveLength(3)
        for (const [i, line] of lines.entries()) {
          const frac = nano ? '123456789' : '123456'
          expect(line, name).toBe(
            `${1_700_000_001 + i}.${frac} IP 192.0.2.1.${40_001 + i} > 192.0.2.2.9999: UDP, length ${10 * (i + 1)}`,
          )
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
