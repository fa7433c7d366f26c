/**
 * Live capture end to end, compared with tshark. Two test hosts in network namespaces on a bridge
 * (tlyA1… 10.99.1.2, tlyB1… 10.99.1.3 on tlybr1…, each name ending in the test process's mark);
 * B runs an HTTP server on port 80 and a DNS responder on UDP 53, A runs curl, dig and ping
 * against it. The agent runs in gateway mode, capturing on the bridge, and sends to a collector
 * process (k = 1) that releases each minute of usage soon after it ends (usage-release.ts). A
 * reference tcpdump captures the same bridge from before the agent starts until after the
 * traffic; the site usage the collector answers, once released, must equal tshark's count of the
 * same frames in that capture, exactly.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentProcess, CollectorProcess, freePort, tmp, waitFor } from './harness.ts'
import { type Counted, Lan, lanUnavailable, RefCapture, tsharkCount } from './netns/lan.ts'
import { queryStoreEach } from './store-dump.ts'
import { awaitRelease, RELEASE_ENV, RELEASE_WAIT_MS } from './usage-release.ts'

const unavailable = lanUnavailable(['ip', 'sysctl', 'tcpdump', 'tshark', 'curl', 'dig', 'ping'])
if (unavailable !== undefined) {
  console.warn(`\n*** SKIPPING test/e2e/live-capture.test.ts: ${unavailable} ***\n`)
}

const SITE = 'live-lan'

interface UsageBucket {
  ts: string
  site: string
  bytes: number
  packets: number
  flows: number
  hosts: number
  [dimension: string]: string | number
}

interface UsageAnswer {
  k: number
  step: number
  buckets: UsageBucket[]
}

describe.skipIf(unavailable !== undefined)('live capture on a bridge, against tshark', () => {
  const lan = new Lan('1', '10.99.1', 2)
  const a = lan.host(0)
  const b = lan.host(1)
  const dataDir = tmp('live-data')
  const refFile = join(tmp('live-ref'), 'ref.pcap')
  let collector: CollectorProcess | undefined
  let agent: AgentProcess | undefined
  let ref: RefCapture | undefined
  let startedAt = 0
  let endedAt = 0
  let refDropped = Number.NaN

  const between = `ip.addr == ${a.address} && ip.addr == ${b.address}`
  const reference = (filter: string) => tsharkCount(refFile, filter)

  beforeAll(async () => {
    await lan.setup()
    await lan.startServers(b.ns, { httpPort: 80, answer: b.address })
    const started = new CollectorProcess(dataDir, await freePort(), {
      TALLY_USAGE_K: '1',
      ...RELEASE_ENV,
    })
    collector = started
    await started.ready()
    const token = await started.enrollToken(SITE)
    ref = await RefCapture.start(lan.bridge, refFile)
    startedAt = Date.now()
    const capturing = new AgentProcess(tmp('live-agent'), collector.url, {
      TALLY_ENROLLMENT_TOKEN: token,
      TALLY_ENROLLMENT_HOSTNAME: 'live-gateway',
      TALLY_CAPTURE_INTERFACE: lan.bridge,
      TALLY_CAPTURE_MODE: 'gateway',
      TALLY_CAPTURE_SITE_PREFIXES: `[${lan.prefix}]`,
    })
    agent = capturing
    await waitFor('the agent capturing on the bridge', () =>
      capturing.logged('traffic capture started').length > 0 ? true : undefined,
    )

    // The traffic: HTTP of several sizes, DNS questions, ICMP echo, all from A to B at once.
    const curl = async () => {
      for (const size of [0, 1, 1_400, 20_000, 300_000]) {
        await lan.exec(a.ns, 'curl', [
          '-sS',
          '-o',
          '/dev/null',
          '--max-time',
          '5',
          `http://${b.address}/bytes/${size}`,
        ])
      }
      await lan.exec(a.ns, 'curl', ['-sS', '-o', '/dev/null', `http://${b.address}/`])
    }
    const dig = async () => {
      for (const [name, type] of [
        ['name.example', 'A'],
        ['www.name.example', 'A'],
        ['a.much.longer.name.example', 'A'],
        ['name.example', 'AAAA'],
      ] as const) {
        const out = await lan.exec(a.ns, 'dig', [
          `@${b.address}`,
          name,
          type,
          '+tries=1',
          '+time=3',
        ])
        expect(out).toContain('status: NOERROR')
      }
    }
    const ping = async () => {
      await lan.exec(a.ns, 'ping', ['-n', '-c', '4', '-i', '0.2', '-W', '2', b.address])
      await lan.exec(a.ns, 'ping', ['-n', '-c', '2', '-i', '0.2', '-s', '1200', b.address])
    }
    await Promise.all([curl(), dig(), ping()])
    endedAt = Date.now()

    // Two more intervals, so that every frame of the traffic is in a batch the collector has.
    const spooled = capturing.spooledSeqs().length
    await waitFor('two intervals after the traffic', () =>
      capturing.spooledSeqs().length >= spooled + 2 ? true : undefined,
    )
    const lastSeq = Math.max(...capturing.spooledSeqs())
    await waitFor('the collector to acknowledge them', async () => {
      const [entry] = await started.fleet()
      return (entry?.last_seq ?? 0) >= lastSeq ? true : undefined
    })
    expect(await capturing.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    refDropped = (await ref.stop()).dropped

    // The collector shows usage once its minutes are released: wait for all of it.
    const site = await reference(`ip.src == ${lan.prefix} && ip.dst == ${lan.prefix}`)
    await awaitRelease(started, SITE, startedAt, site.packets)
    // The wait for the release (up to its minute's end, the delay and a tick) is what makes this
    // hook longer than the others, not the work in it.
  }, 60_000 + RELEASE_WAIT_MS)

  afterAll(async () => {
    await agent?.stop('SIGKILL')
    await collector?.stop('SIGKILL')
    ref?.kill()
    await lan.teardown()
  })

  /**
   * The collector's answer for one grouping over [from, to), which it widens to whole minutes,
   * in one step.
   */
  async function usage(by: string, from: number, to: number): Promise<Map<string, Counted>> {
    if (collector === undefined) throw new Error('no collector')
    const answer = await collector.api<UsageAnswer>(
      'GET',
      `/v1/usage?site=${SITE}&by=${by}&from=${from}&to=${to}`,
    )
    expect(answer.k).toBe(1)
    const out = new Map<string, Counted>()
    for (const bucket of answer.buckets) {
      expect(bucket.site).toBe(SITE)
      expect(bucket.hosts, `one host contributed to ${by} ${bucket[by]}`).toBe(1)
      expect(out.has(String(bucket[by])), 'one bucket per value with step = range').toBe(false)
      out.set(String(bucket[by]), {
        packets: bucket.packets,
        bytes: bucket.bytes,
        flows: bucket.flows,
      })
    }
    return out
  }

  /**
   * Ranges over the test: not aligned (the collector widens it to whole minutes), whole minutes
   * (read from the released minutes) and whole hours (from the hourly table).
   */
  function ranges(): Array<{ name: string; from: number; to: number }> {
    const from = Math.floor(startedAt / 1000) - 19
    const to = Math.ceil(Date.now() / 1000) + 1
    const minuteFrom = Math.floor(startedAt / 60_000) * 60
    const minuteTo = Math.floor(Date.now() / 60_000) * 60 + 60
    const hourFrom = Math.floor(startedAt / 3_600_000) * 3600
    const hourTo = Math.floor(Date.now() / 3_600_000) * 3600 + 3600
    return [
      { name: 'unaligned', from, to },
      { name: 'minute-aligned', from: minuteFrom, to: minuteTo },
      { name: 'hour-aligned', from: hourFrom, to: hourTo },
    ]
  }

  it('the reference capture saw the traffic and dropped nothing', async () => {
    expect(refDropped).toBe(0)
    expect(endedAt).toBeGreaterThan(startedAt)
    const http = await reference(`${between} && tcp.port == 80 && !icmp`)
    const dns = await reference(`${between} && udp.port == 53 && !icmp`)
    const icmp = await reference(`${between} && icmp`)
    expect(http.flows).toBe(6)
    expect(http.bytes).toBeGreaterThan(300_000)
    expect(dns).toMatchObject({ packets: 8, flows: 4 })
    expect(icmp).toMatchObject({ packets: 12, flows: 1 })
  })

  it('stores per service exactly what tshark counts: http, dns, icmp and nothing else', async () => {
    const expected = new Map<string, Counted>([
      ['http', await reference(`${between} && tcp.port == 80 && !icmp`)],
      ['dns', await reference(`${between} && udp.port == 53 && !icmp`)],
      ['icmp', await reference(`${between} && icmp`)],
    ])
    for (const { name, from, to } of ranges()) {
      expect(await usage('service', from, to), `by service, ${name} range`).toEqual(expected)
    }
  })

  it('stores per transport, direction, peer class and IP version exactly what tshark counts', async () => {
    const site = `ip.src == ${lan.prefix} && ip.dst == ${lan.prefix}`
    const all = await reference(site)
    const expected: Record<string, Map<string, Counted>> = {
      transport: new Map([
        ['tcp', await reference(`${between} && tcp && !icmp`)],
        ['udp', await reference(`${between} && udp && !icmp`)],
        ['icmp', await reference(`${between} && icmp`)],
      ]),
      direction: new Map([['internal', all]]),
      peer_class: new Map([['same-site', all]]),
      // The site's own IPv4 traffic: a stray frame from outside the LAN may reach the bridge
      // after the agent stopped and before the reference capture did.
      ip_version: new Map([['4', all]]),
    }
    expect(await reference('ipv6'), 'no IPv6 on the test LAN').toMatchObject({ packets: 0 })
    for (const [by, want] of Object.entries(expected)) {
      for (const { name, from, to } of ranges()) {
        expect(await usage(by, from, to), `by ${by}, ${name} range`).toEqual(want)
      }
    }
  })

  it('lists the agent in the fleet and stores its capture health and traffic totals', async () => {
    if (collector === undefined) throw new Error('no collector')
    const fleet = await collector.fleet()
    expect(fleet).toHaveLength(1)
    expect(fleet[0]).toMatchObject({ host: 'live-gateway', site: SITE })
    expect(fleet[0]?.batches).toBeGreaterThanOrEqual(2)
    expect(await collector.stop('SIGTERM')).toEqual({ code: 0, signal: null })

    // One engine process for the three queries.
    const [running, outcomes, totals] = (await queryStoreEach(dataDir, [
      "SELECT value FROM tally.host_metrics WHERE metric = 'tally.capture.running'",
      `SELECT attributes['tally.capture.outcome'] AS outcome, sum(value) AS value
       FROM tally.host_metrics WHERE metric = 'tally.capture.packets' GROUP BY outcome`,
      `SELECT metric, attributes['network.transport'] AS transport, sum(value) AS value
       FROM tally.host_metrics
       WHERE metric IN ('tally.traffic.bytes', 'tally.traffic.packets')
         AND attributes['tally.direction'] = 'internal'
       GROUP BY metric, transport ORDER BY metric, transport`,
    ])) as [
      Array<{ value: number }>,
      Array<{ outcome: string; value: number }>,
      Array<{ metric: string; transport: string; value: number }>,
    ]
    expect(running.length).toBeGreaterThanOrEqual(2)
    for (const row of running) expect(row.value).toBe(1)
    const outcome = (name: string) => outcomes.find((o) => o.outcome === name)?.value
    expect(outcome('dropped_kernel'), 'the agent dropped nothing').toBe(0)
    expect(outcome('malformed')).toBe(0)

    // Tier T, the gateway's traffic totals by transport: the same frames.
    const want = {
      tcp: await reference(`${between} && tcp && !icmp`),
      udp: await reference(`${between} && udp && !icmp`),
      icmp: await reference(`${between} && icmp`),
    }
    expect(totals).toEqual(
      (['bytes', 'packets'] as const).flatMap((kind) =>
        (['icmp', 'tcp', 'udp'] as const).map((transport) => ({
          metric: `tally.traffic.${kind}`,
          transport,
          value: want[transport][kind],
        })),
      ),
    )
  })
})
