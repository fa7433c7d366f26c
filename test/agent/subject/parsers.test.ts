import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseDns, qtypeName, rcodeName, readName } from '../../../agent/subject/dns.ts'
import {
  type ByteAt,
  bytesAt,
  parseClientHello,
  parseHttpHost,
} from '../../../agent/subject/web.ts'
import { ascii, clientHello, dnsMessage } from './frames.ts'

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))

describe('DNS', () => {
  it('parses a query made by hand', () => {
    const m = parseDns(dnsMessage({ id: 0x1234, name: 'Example.ORG', qtype: 28 }), 0, 1000)
    expect(m).toEqual({
      id: 0x1234,
      response: false,
      opcode: 0,
      rcode: 0,
      name: 'example.org',
      qtype: 28,
    })
  })

  it('parses a real response with an answer (dig www.example.com A), with an offset', () => {
    // Header, question www.example.com A IN, one answer whose name is a pointer to 12.
    const message = hex(`
      abcd 8180 0001 0001 0000 0000
      03 777777 07 6578616d706c65 03 636f6d 00 0001 0001
      c00c 0001 0001 00000e10 0004 5db8d822`)
    const framed = new Uint8Array(message.length + 7)
    framed.set(message, 7)
    expect(parseDns(framed, 7, message.length)).toEqual({
      id: 0xabcd,
      response: true,
      opcode: 0,
      rcode: 0,
      name: 'www.example.com',
      qtype: 1,
    })
    // NXDOMAIN response.
    const nx = dnsMessage({ id: 7, name: 'nope.invalid', qtype: 65, response: true, rcode: 3 })
    const parsed = parseDns(nx, 0, nx.length)
    expect(parsed?.response).toBe(true)
    expect(rcodeName(parsed?.rcode ?? -1)).toBe('NXDOMAIN')
    expect(qtypeName(parsed?.qtype ?? -1)).toBe('HTTPS')
  })

  it('follows compression pointers, and refuses forward pointers and loops', () => {
    // A message whose question name is "a" + pointer to an earlier "example.org" placed in
    // the header's spare bytes is not possible; build the name table by hand instead.
    const b = hex(`
      0000 0000 0001 0000 0000 0000
      07 6578616d706c65 03 6f7267 00
      03 777777 c00c`)
    expect(readName(b, 0, b.length, 12)).toEqual({ name: 'example.org', next: 25 })
    expect(readName(b, 0, b.length, 25)).toEqual({ name: 'www.example.org', next: 31 })
    // Pointer to itself, and a pointer forward.
    expect(readName(hex('c000'), 0, 2, 0)).toBeUndefined()
    expect(readName(hex('0161 c004 0162 00'), 0, 7, 0)).toBeUndefined()
    // Backward-pointing loop: "a" at 0, pointer at 2 back to 0.
    expect(readName(hex('0161 c000'), 0, 4, 0)).toBeUndefined()
    // Label running past the end; extended label type.
    expect(readName(hex('05616263'), 0, 4, 0)).toBeUndefined()
    expect(readName(hex('4100'), 0, 2, 0)).toBeUndefined()
    // Root name.
    expect(readName(hex('00'), 0, 1, 0)).toEqual({ name: '.', next: 1 })
    // Odd bytes are escaped.
    expect(readName(hex('03 612e00 00'), 0, 5, 0)?.name).toBe('a\\.\\000')
  })

  it('names types and codes', () => {
    expect([
      'A',
      'AAAA',
      'CNAME',
      'MX',
      'TXT',
      'PTR',
      'NS',
      'SOA',
      'SRV',
      'HTTPS',
      'SVCB',
      'ANY',
    ]).toEqual([1, 28, 5, 15, 16, 12, 2, 6, 33, 65, 64, 255].map(qtypeName))
    expect(qtypeName(99)).toBe('TYPE99')
    expect(rcodeName(0)).toBe('NOERROR')
    expect(rcodeName(2)).toBe('SERVFAIL')
    expect(rcodeName(5)).toBe('REFUSED')
    expect(rcodeName(15)).toBe('RCODE15')
  })

  it('refuses short and malformed messages', () => {
    expect(parseDns(new Uint8Array(11), 0, 11)).toBeUndefined()
    expect(parseDns(hex('0000 0100 0000 0000 0000 0000 00 0001 0001'), 0, 17)).toBeUndefined() // qdcount 0
    const q = dnsMessage({ id: 1, name: 'a.b', qtype: 1 })
    expect(parseDns(q, 0, q.length - 1)).toBeUndefined() // qclass cut
    expect(parseDns(q, -1, q.length)).toBeUndefined()
    expect(parseDns(q, 0.5, q.length)).toBeUndefined()
  })

  it('never throws on arbitrary bytes (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.nat(700),
        fc.integer({ min: -5, max: 800 }),
        (b, off, len) => {
          const m = parseDns(b, off, len)
          if (m !== undefined) {
            expect(m.name.length).toBeLessThanOrEqual(255)
            expect(typeof qtypeName(m.qtype)).toBe('string')
          }
        },
      ),
      { numRuns: 3000 },
    )
    // Mutations of a valid message, which exercise deeper paths.
    const base = dnsMessage({ id: 9, name: 'www.example.org', qtype: 1 })
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { maxLength: 6 }),
        (edits) => {
          const b = base.slice()
          for (const [i, v] of edits) b[i] = v
          parseDns(b, 0, b.length)
        },
      ),
      { numRuns: 3000 },
    )
  })
})

describe('TLS ClientHello SNI', () => {
  it('finds the server name in a hand-built ClientHello', () => {
    const hello = clientHello({ sni: 'WWW.Example.com' })
    expect(parseClientHello(bytesAt(hello, 0, hello.length))).toEqual({
      kind: 'sni',
      name: 'www.example.com',
    })
    const last = clientHello({ sni: 'last.example.net', padding: 300, sniLast: true })
    expect(parseClientHello(bytesAt(last, 0, last.length))).toEqual({
      kind: 'sni',
      name: 'last.example.net',
    })
  })

  it('says none without SNI or for other data, and more when cut short', () => {
    const plain = clientHello({})
    expect(parseClientHello(bytesAt(plain, 0, plain.length))).toEqual({ kind: 'none' })
    const http = ascii('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(parseClientHello(bytesAt(http, 0, http.length))).toEqual({ kind: 'none' })
    const big = clientHello({ sni: 'far.example.org', padding: 2000, sniLast: true })
    expect(parseClientHello(bytesAt(big, 0, 1400))).toEqual({ kind: 'more' })
    expect(parseClientHello(bytesAt(big, 0, 3))).toEqual({ kind: 'more' })
  })

  it('reads across a gap the name is not in (sparse bytes)', () => {
    const big = clientHello({ sni: 'gap.example.org', padding: 2000, sniLast: true })
    // Two segments of 1460 with 14 bytes lost at the end of the first (snaplen).
    const at: ByteAt = (i) => (i < 1446 || (i >= 1460 && i < big.length) ? (big[i] as number) : -1)
    expect(parseClientHello(at)).toEqual({ kind: 'sni', name: 'gap.example.org' })
  })

  it('never throws on arbitrary or mutated bytes (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        const r = parseClientHello(bytesAt(b, 0, b.length))
        expect(['sni', 'none', 'more']).toContain(r.kind)
      }),
      { numRuns: 3000 },
    )
    const base = clientHello({ sni: 'fuzz.example.com', padding: 20 })
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { maxLength: 6 }),
        fc.nat(base.length),
        (edits, cut) => {
          const b = base.slice(0, cut)
          for (const [i, v] of edits) if (i < b.length) b[i] = v
          const r = parseClientHello(bytesAt(b, 0, b.length))
          if (r.kind === 'sni') expect(r.name.length).toBeLessThanOrEqual(255)
        },
      ),
      { numRuns: 5000 },
    )
  })
})

describe('HTTP Host', () => {
  const req = (s: string) => {
    const b = ascii(s)
    return parseHttpHost(b, 0, b.length)
  }

  it('finds the Host header of HTTP/1.x requests', () => {
    expect(req('GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nHost: Example.ORG\r\n\r\n')).toBe(
      'example.org',
    )
    expect(req('POST /a HTTP/1.0\r\nhost:  api.example.com:8080 \r\n\r\n')).toBe('api.example.com')
    expect(req('GET / HTTP/1.1\nHOST: [2001:db8::1]:8080\n\n')).toBe('[2001:db8::1]')
    expect(req('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n')).toBe(
      'example.org',
    )
    // With an offset into a larger buffer.
    const b = ascii('xxxxGET / HTTP/1.1\r\nHost: off.example\r\n\r\n')
    expect(parseHttpHost(b, 4, b.length - 4)).toBe('off.example')
  })

  it('ignores responses, other methods, HTTP/2 preface, and cut or hostless requests', () => {
    expect(req('HTTP/1.1 200 OK\r\nHost: x\r\n\r\n')).toBeUndefined()
    expect(req('FETCH / HTTP/1.1\r\nHost: x\r\n\r\n')).toBeUndefined()
    expect(req('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).toBeUndefined()
    expect(req('GET / HTTP/1.1\r\nAccept: */*\r\n\r\nHost: late\r\n')).toBeUndefined()
    expect(req('GET / HTTP/1.1\r\nHost: cut.exa')).toBeUndefined()
    expect(req('GET / HTTP/1.1\r\nHost: two words\r\n\r\n')).toBeUndefined()
    expect(req('GET / HTTP/1.1\r\nHost: x:port\r\n\r\n')).toBeUndefined()
  })

  it('never throws on arbitrary bytes (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }),
          fc.string({ maxLength: 200 }).map((s) => ascii(`GET / HTTP/1.1\r\n${s}`)),
        ),
        fc.integer({ min: -3, max: 500 }),
        fc.integer({ min: -3, max: 500 }),
        (b, off, len) => {
          const host = parseHttpHost(b, off, len)
          if (host !== undefined) expect(host).toMatch(/^[\x21-\x7e]{1,255}$/)
        },
      ),
      { numRuns: 3000 },
    )
  })
})
