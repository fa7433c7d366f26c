import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { formatAddress, parseAddress } from '../../../agent/decode/address.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('formatAddress', () => {
  it('formats IPv4 at an offset', () => {
    const buf = Uint8Array.from([9, 9, 192, 0, 2, 255, 9])
    expect(formatAddress(buf, 2, 4)).toBe('192.0.2.255')
    expect(formatAddress(new Uint8Array(4), 0, 4)).toBe('0.0.0.0')
  })

  it.each([
    ['20010db8000000000000000000000001', '2001:db8::1'],
    ['00000000000000000000000000000000', '::'],
    ['00000000000000000000000000000001', '::1'],
    ['fe800000000000000000000000000000', 'fe80::'],
    // RFC 5952 4.2.2: a single zero group is not shortened.
    ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
    // 4.2.3: the longest run; the first on a tie.
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['20010000000000010000000000000001', '2001:0:0:1::1'],
    ['20010DB8000000000000ABCD00120034'.toLowerCase(), '2001:db8::abcd:12:34'],
    ['ff020000000000000000000000010002', 'ff02::1:2'],
    // Section 5: IPv4-mapped addresses in mixed notation.
    ['00000000000000000000ffffc0000201', '::ffff:192.0.2.1'],
    ['00010002000300040005000600070008', '1:2:3:4:5:6:7:8'],
  ])('%s → %s', (bytesHex, text) => {
    const buf = Uint8Array.from(Buffer.from(`aa${bytesHex}`, 'hex'))
    expect(formatAddress(buf, 1, 6)).toBe(text)
  })

  it('throws outside the buffer', () => {
    expect(() => formatAddress(new Uint8Array(10), 0, 6)).toThrow(RangeError)
    expect(() => formatAddress(new Uint8Array(4), 1, 4)).toThrow(RangeError)
    expect(() => formatAddress(new Uint8Array(4), -1, 4)).toThrow(RangeError)
  })

  it('agrees with the WHATWG URL serializer for IPv6 (not IPv4-mapped)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (b, sparse) => {
        // Many zero groups, so that `::` runs of every length and position occur.
        if (sparse) for (let i = 0; i < 16; i += 2) if ((b[i] ?? 0) < 160) b.fill(0, i, i + 2)
        const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff
        fc.pre(!mapped)
        const text = formatAddress(b, 0, 6)
        expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`)
        expect(hex(parseAddress(text))).toBe(hex(b))
      }),
      { numRuns: 2000 },
    )
  })
})

describe('parseAddress', () => {
  it.each([
    ['192.0.2.1', 'c0000201'],
    ['0.0.0.0', '00000000'],
    ['255.255.255.255', 'ffffffff'],
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['2001:DB8::1', '20010db8000000000000000000000001'],
    ['2001:db8:0:0:0:0:0:1', '20010db8000000000000000000000001'],
    ['1::', '00010000000000000000000000000000'],
    ['1:2:3:4:5:6:7::', '00010002000300040005000600070000'],
    ['::2:3:4:5:6:7:8', '00000002000300040005000600070008'],
    ['::ffff:192.0.2.1', '00000000000000000000ffffc0000201'],
    ['64:ff9b::198.51.100.7', '0064ff9b0000000000000000c6336407'],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304'],
  ])('%s', (text, bytesHex) => {
    expect(hex(parseAddress(text))).toBe(bytesHex)
  })

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.-4',
    ' 1.2.3.4',
    '1.2.3.4/24',
    ':',
    ':::',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8::',
    '12345::',
    'g::1',
    '::1.2.3.4:5',
    '1.2.3.4::',
    '[::1]',
    'fe80::1%eth0',
    ':1:2:3:4:5:6:7',
  ])('refuses %j', (text) => {
    expect(() => parseAddress(text)).toThrow(TypeError)
  })

  it('round-trips IPv4', () => {
    fc.assert(
      fc.property(fc.ipV4(), (text) => {
        const b = parseAddress(text)
        expect(b.length).toBe(4)
        expect(formatAddress(b, 0, 4)).toBe(text)
      }),
    )
  })

  it('parses every fast-check IPv6 text form to the bytes Node reads from it', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const b = parseAddress(text)
        expect(b.length).toBe(16)
        const canonical = formatAddress(b, 0, 6)
        expect(hex(parseAddress(canonical))).toBe(hex(b))
        const url = new URL(`http://[${text}]/`).hostname
        expect(hex(parseAddress(url.slice(1, -1)))).toBe(hex(b))
      }),
      { numRuns: 2000 },
    )
  })
})
