/**
 * Subject capture with a real tcpdump on loopback (needs root and tcpdump; skipped loudly
 * otherwise). Other test files may run at the same time and talk over 127.0.0.1, so the
 * assertions look for this test's own flows (by port) rather than for exact totals.
 */
import { execFileSync } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { createServer as createHttpServer } from 'node:http'
import { type AddressInfo, createConnection, createServer, type Server } from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { CaptureEvent } from '../../../agent/packets/tcpdump.ts'
import { emptyRecords, type SubjectRecords } from '../../../agent/subject/records.ts'
import {
  SNAPLEN_HEADERS,
  SNAPLEN_METADATA,
  SNAPLEN_PACKETS,
  SubjectCapture,
  subjectFilter,
} from '../../../agent/subject/subject-capture.ts'
import { PcapReader } from '../../../common/pcap/pcap-reader.ts'
import type { Category, GrantClaims } from '../../../protocol/grants.ts'
import { grantFor, makeKeys, type TestKeys } from '../grants/tokens.ts'
import { dnsMessage } from './frames.ts'

function tcpdumpUsable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root'
  try {
    execFileSync('tcpdump', ['--version'], { stdio: 'ignore' })
  } catch {
    return 'tcpdump is not installed'
  }
  return undefined
}
const why = tcpdumpUsable()
if (why !== undefined) {
  console.warn(`\n*** SKIPPED: live subject capture tests: ${why} ***\n`)
}

let keys: TestKeys
beforeAll(async () => {
  keys = await makeKeys()
})

const captures: SubjectCapture[] = []
const closers: Array<() => Promise<void> | void> = []
afterEach(async () => {
  await Promise.all(captures.splice(0).map((c) => c.stop()))
  for (const close of closers.splice(0)) await close()
})

async function liveCapture(
  categories: Category[],
  window?: GrantClaims['window'],
): Promise<{ capture: SubjectCapture; events: CaptureEvent[] }> {
  const now = Date.now()
  const grant = await grantFor(keys, now, {
    categories,
    addresses: ['127.0.0.1'],
    window: window ?? { start: now - 1_000, end: now + 120_000 },
  })
  const events: CaptureEvent[] = []
  const capture = new SubjectCapture(grant, {
    interface: 'lo',
    hostAddresses: [],
    onEvent: (e) => events.push(e),
  })
  captures.push(capture)
  capture.start()
  await until(() => events.some((e) => e.kind === 'started'), 'tcpdump to start', 10_000)
  return { capture, events }
}

async function until(predicate: () => boolean, what: string, ms = 8_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Drains every 200 ms into `into` until `predicate` holds. */
async function collect(
  capture: SubjectCapture,
  into: SubjectRecords,
  predicate: () => boolean,
  what: string,
): Promise<void> {
  const deadline = Date.now() + 8_000
  for (;;) {
    const r = capture.drain(Date.now())
    into.flows.push(...r.flows)
    into.dns.push(...r.dns)
    into.web.push(...r.web)
    into.pcap.push(...r.pcap)
    if (predicate()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((res) => setTimeout(res, 200))
  }
}

/** A tiny DNS responder: answers every query with NXDOMAIN and no records. */
async function dnsResponder(address: string, port: number): Promise<Socket> {
  const socket = createSocket('udp4')
  socket.on('message', (msg, rinfo) => {
    const reply = Buffer.from(msg)
    reply[2] = 0x81
    reply[3] = 0x83
    socket.send(reply, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, address, () => resolve())
  })
  closers.push(() => new Promise<void>((r) => socket.close(() => r())))
  return socket
}

async function dnsQuery(server: string, port: number, name: string, from = '127.0.0.1') {
  const client = createSocket('udp4')
  await new Promise<void>((r) => client.bind(0, from, () => r()))
  const answered = new Promise<void>((resolve) => client.once('message', () => resolve()))
  client.send(dnsMessage({ id: 0x4242, name, qtype: 1 }), port, server)
  await Promise.race([answered, new Promise((r) => setTimeout(r, 2_000))])
  client.close()
}

async function tcpExchange(host = '127.0.0.1'): Promise<{ port: number; clientPort: number }> {
  const server: Server = createServer((socket) => {
    socket.on('data', (d) => socket.end(d))
  })
  await new Promise<void>((r) => server.listen(0, host, () => r()))
  closers.push(() => new Promise<void>((r) => server.close(() => r())))
  const port = (server.address() as { port: number }).port
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port }, () => socket.write('hello subject'))
    let clientPort = 0
    socket.on('connect', () => {
      clientPort = socket.localPort ?? 0
    })
    socket.on('data', () => {})
    socket.on('error', reject)
    socket.on('close', () => resolve({ port, clientPort }))
  })
}

describe('subject capture: filter and snaplen', () => {
  it('filters on the subject only; snaplen by categories (packets 65535, dns/web 1500, flows 128)', async () => {
    const now = Date.now()
    const gateway = await grantFor(keys, now, { addresses: ['192.0.2.10', '2001:db8::1'] })
    const c1 = new SubjectCapture(gateway, { interface: 'lo', hostAddresses: ['10.9.9.9'] })
    expect(c1.filter).toBe(
      '(host 192.0.2.10 or host 2001:db8::1) or (vlan and (host 192.0.2.10 or host 2001:db8::1))',
    )
    expect(c1.snaplen).toBe(SNAPLEN_METADATA)
    const host = await grantFor(keys, now, { addresses: [], categories: ['packets'] })
    const c2 = new SubjectCapture(host, {
      interface: 'lo',
      hostAddresses: ['10.9.9.9', 'fe80::1', '10.9.9.9'],
    })
    expect(c2.addresses).toEqual(['10.9.9.9', 'fe80::1'])
    expect(c2.filter).toBe(subjectFilter(['10.9.9.9', 'fe80::1']))
    expect(c2.snaplen).toBe(SNAPLEN_PACKETS)
    const flowsOnly = await grantFor(keys, now, { categories: ['flows'] })
    const c3 = new SubjectCapture(flowsOnly, { interface: 'lo', hostAddresses: [] })
    expect(c3.snaplen).toBe(SNAPLEN_HEADERS)
    expect(SNAPLEN_HEADERS).toBe(128)
    const web = await grantFor(keys, now, { categories: ['web'] })
    expect(new SubjectCapture(web, { interface: 'lo', hostAddresses: [] }).snaplen).toBe(1500)
    expect(() => new SubjectCapture(host, { interface: 'lo', hostAddresses: [] })).toThrow(
      /no non-loopback address/,
    )
    expect(
      () => new SubjectCapture(host, { interface: 'lo', hostAddresses: ['10.0.0.1 or net 0/0'] }),
    ).toThrow(TypeError)
  })
})

describe.skipIf(why !== undefined)('subject capture: live on loopback', () => {
  it('records the subject flows and DNS, and nothing of other hosts', async () => {
    const { capture } = await liveCapture(['flows', 'dns'])
    expect(capture.snaplen).toBe(SNAPLEN_METADATA)
    await dnsResponder('127.0.0.1', 53)
    await dnsQuery('127.0.0.1', 53, 'subject.example.org')
    const { port, clientPort } = await tcpExchange()
    // Not the subject: 127.0.0.2 <-> 127.0.0.3 on loopback.
    const other = await dnsResponder('127.0.0.3', 5353)
    expect(other).toBeDefined()
    await dnsQuery('127.0.0.3', 5353, 'other.example', '127.0.0.2')

    const got = emptyRecords()
    await collect(
      capture,
      got,
      () =>
        got.dns.some((d) => d.query === 'subject.example.org') &&
        got.flows.some(
          (f) =>
            f.protocol === 6 &&
            (f.dst_port === port || f.src_port === port) &&
            (f.tcp_flags & 1) !== 0,
        ),
      'the DNS record and the closed TCP flow',
    )
    expect(got.dns.find((d) => d.query === 'subject.example.org')).toMatchObject({
      client: '127.0.0.1',
      server: '127.0.0.1',
      qtype: 'A',
      rcode: 'NXDOMAIN',
    })
    const tcpFlows = got.flows.filter(
      (f) => f.protocol === 6 && (f.dst_port === port || f.src_port === port),
    )
    const last = tcpFlows.at(-1)
    expect(last).toMatchObject({
      src: '127.0.0.1',
      dst: '127.0.0.1',
      src_port: clientPort,
      dst_port: port,
    })
    // SYN, SYN-ACK, ACK, data, echo, FINs and ACKs: at least 8 packets; flags SYN|ACK|FIN|PSH.
    expect(last?.packets).toBeGreaterThanOrEqual(8)
    expect((last?.tcp_flags ?? 0) & 0x1b).toBe(0x1b)
    expect(last?.community_id).toMatch(/^1:[A-Za-z0-9+/]{27}=$/)
    const udp = got.flows.find((f) => f.protocol === 17 && f.dst_port === 53)
    expect(udp).toMatchObject({ packets: 2, src: '127.0.0.1' })
    expect(got.flows.some((f) => f.src.startsWith('127.0.0.2') || f.dst === '127.0.0.3')).toBe(
      false,
    )
    expect(got.dns.some((d) => d.query === 'other.example')).toBe(false)
    expect(got.web).toEqual([])
    expect(got.pcap).toEqual([])
  })

  it('produces no DNS record when only flows are granted', async () => {
    const { capture } = await liveCapture(['flows'])
    await dnsResponder('127.0.0.1', 53)
    await dnsQuery('127.0.0.1', 53, 'flows-only.example.org')
    const got = emptyRecords()
    await collect(
      capture,
      got,
      () => got.flows.some((f) => f.protocol === 17 && f.dst_port === 53 && f.packets === 2),
      'the UDP flow of the DNS exchange',
    )
    await new Promise((r) => setTimeout(r, 300))
    const rest = capture.drain(Date.now())
    expect([...got.dns, ...rest.dns]).toEqual([])
    expect(capture.recorderStats().used).toBeGreaterThan(0)
  })

  it('records HTTP Host and full packets when web and packets are granted', async () => {
    const { capture } = await liveCapture(['web', 'packets'])
    expect(capture.snaplen).toBe(SNAPLEN_PACKETS)
    const server = createHttpServer((_req, res) => res.end('ok'))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    closers.push(() => new Promise<void>((r) => server.close(() => r())))
    const port = (server.address() as AddressInfo).port
    const response = await fetch(`http://127.0.0.1:${port}/page`, {
      headers: { connection: 'close' },
    })
    expect(await response.text()).toBe('ok')
    const got = emptyRecords()
    await collect(
      capture,
      got,
      () => got.web.some((w) => w.server_port === port) && got.pcap.length > 0,
      'the HTTP Host record and a pcap segment',
    )
    expect(got.web.find((w) => w.server_port === port)).toMatchObject({
      kind: 'http-host',
      name: '127.0.0.1',
      client: '127.0.0.1',
      server: '127.0.0.1',
    })
    expect(got.flows).toEqual([])
    expect(got.dns).toEqual([])
    let packets = 0
    let sawRequest = false
    for (const segment of got.pcap) {
      const reader = new PcapReader((d, o, c) => {
        packets++
        if (Buffer.from(d.subarray(o, o + c)).includes('GET /page HTTP/1.1')) sawRequest = true
      })
      reader.push(Buffer.from(segment.data, 'base64'))
    }
    expect(packets).toBeGreaterThan(0)
    expect(sawRequest).toBe(true)
    expect(got.pcap.map((s) => s.index)).toEqual(got.pcap.map((_, i) => i))
  })

  it('stops by itself at the end of the window', async () => {
    const now = Date.now()
    const end = now + 2_500
    const { capture, events } = await liveCapture(['flows'], { start: now - 1_000, end })
    expect(capture.running).toBe(true)
    await tcpExchange()
    await until(
      () => !capture.running,
      'tcpdump to stop at the window end',
      end - Date.now() + 5_000,
    )
    expect(Date.now()).toBeGreaterThanOrEqual(end)
    expect(capture.stopped).toBe(true)
    expect(events.some((e) => e.kind === 'exited' && e.restartInMs === -1)).toBe(true)
    const final = capture.drain(Date.now())
    for (const f of final.flows) expect(f.end).toBeLessThan(end)
    // Traffic after the end is not captured.
    await tcpExchange()
    await new Promise((r) => setTimeout(r, 300))
    expect(capture.drain(Date.now()).flows).toEqual([])
    expect(capture.running).toBe(false)
  })
})
