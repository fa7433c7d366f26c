/**
 * Prefixes are read with the decoder's address parser (agent/decode/address.ts): the forms an
 * operator writes in a config or on the command line, and the refusals, as before.
 */
import { describe, expect, it } from 'vitest'
import { PrefixError, parseAddressBytes, parsePrefix } from '../../../agent/aggregate/prefixes.ts'

const bytes = (text: string) => [...parseAddressBytes(text)]

describe('parseAddressBytes', () => {
  it('reads IPv4 and every IPv6 text form', () => {
    expect(bytes('10.20.0.1')).toEqual([10, 20, 0, 1])
    expect(bytes('::')).toEqual(new Array(16).fill(0))
    expect(bytes('2001:DB8::1')).toEqual([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1])
    expect(bytes('::ffff:10.0.0.1')).toEqual([...new Array(10).fill(0), 0xff, 0xff, 10, 0, 0, 1])
    expect(bytes('1:2:3:4:5:6:7:8')).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8])
  })

  it('ignores a zone id, which prefixes have no use for', () => {
    expect(bytes('fe80::1%eth0')).toEqual(bytes('fe80::1'))
  })

  it('refuses what is not an address with a PrefixError naming it', () => {
    for (const text of ['', 'x', '1.2.3', '1.2.3.256', '1::2::3', 'fe80::1%', '1.2.3.4%x']) {
      expect(() => parseAddressBytes(text), text).toThrow(PrefixError)
    }
    expect(() => parseAddressBytes('10.0.0.300')).toThrow('10.0.0.300 is not an IP address')
  })
})

describe('parsePrefix', () => {
  it('masks the network to its length and defaults to a single address', () => {
    expect(parsePrefix('10.20.30.40/16')).toEqual({
      version: 4,
      network: Uint8Array.from([10, 20, 0, 0]),
      bits: 16,
    })
    expect(parsePrefix('2001:db8:20::7')).toMatchObject({ version: 6, bits: 128 })
    expect(() => parsePrefix('10.0.0.0/33')).toThrow('10.0.0.0/33: prefix length must be 0 to 32')
  })
})
