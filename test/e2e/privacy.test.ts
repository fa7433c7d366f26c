/**
 * Privacy end to end: traffic with distinctive addresses, a port, names and a user agent goes
 * through the live pipeline, and none of them comes out of it: not in what the agent sends, not
 * in the logs, not in any API answer, not in any row of the store. And the k threshold: three
 * hosts' usage is shown at k = 3, and not at all once k is raised to 5.
 *
 * Two test hosts in network namespaces on a bridge (tlyA2… 10.99.2.2, tlyB2… 10.99.2.3 on
 * tlybr2…, each name ending in the test process's mark). B runs an HTTP server on port 47913 and
 * a DNS responder on UDP 53; A fetches
 * http://10.99.2.3:47913/canary-path-q7 with Host secret-host.example and a distinctive
 * User-Agent, asks for very-secret-name.example and pings B. Four agents capture the bridge in
 * gateway mode at the same time: one sends to collector 1 (k = 1) through a recording proxy,
 * three (one site, one enrollment token with three uses) to collector 2 (k = 3), also through a
 * recording proxy. Both collectors release each minute of usage soon after it ends
 * (usage-release.ts); the test waits for that release before it reads usage.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentProcess, CollectorProcess, freePort, tmp, waitFor } from './harness.ts'
import {
  type Counted,
  Lan,
  lanUnavailable,
  RefCapture,
  tsharkCount,
  tsharkText,
} from './netns/lan.ts'
import {
  findLeaks,
  findLeaksInBody,
  findLeaksInLog,
  findLeaksInPrometheus,
  findLeaksInText,
  type Leak,
  type Needles,
} from './netns/leaks.ts'
import { RecordingProxy } from './netns/proxy.ts'
import { dumpStore } from './store-dump.ts'
import { awaitRelease, inOneMinute, RELEASE_ENV, RELEASE_WAIT_MS } from './usage-release.ts'

const unavailable = lanUnavailable(['ip', 'sysctl', 'tcpdump', 'tshark', 'curl', 'dig', 'ping'])
if (unavailable !== undefined) {
  console.warn(`\n*** SKIPPING test/e2e/privacy.test.ts: ${unavailable} ***\n`)
}

const SITE = 'privacy-site'
const PORT = 47913
const HOST_HEADER = 'secret-host.example'
const DNS_NAME = 'very-secret-name.example'
const USER_AGENT = 'TallyCanaryAgent/7.3 (privacy-probe)'
const URL_PATH = '/canary-path-q7'
const DIMENSIONS = ['service', 'peer_class', 'transport', 'ip_version', 'direction'] as const
/** How long the test traffic lasts at most (curl and dig time out within 5 s). */
const TRAFFIC_SECONDS = 20

/** An IPv4 address as a 32-bit integer, in network and in little-endian byte order. */
function addressNumbers(address: string): number[] {
  const bytes = Buffer.from(address.split('.').map(Number))
  return [bytes.readUInt32BE(0), bytes.readUInt32LE(0)]
}

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
  buckets: UsageBucket[]
}

describe.skipIf(unavailable !== undefined)('privacy of the live pipeline', () => {
  const lan = new Lan('2', '10.99.2', 2)
  const a = lan.host(0)
  const b = lan.host(1)
  const needles: Needles = {
    strings: [
      a.address,
      b.address,
      'secret-host',
      'very-secret-name',
      'TallyCanaryAgent',
      'privacy-probe',
      'canary-path-q7',
      // the addresses as hex, as a raw header dump would show them
      ...[a.address, b.address].map((ip) => Buffer.from(ip.split('.').map(Number)).toString('hex')),
    ],
    numbers: [PORT, ...addressNumbers(a.address), ...addressNumbers(b.address)],
  }
  // The port as hex (bb29) is left out: four hex digits occur in random ids by chance.

  const dataDir1 = tmp('privacy-data1')
  const dataDir2 = tmp('privacy-data2')
  const refFile = join(tmp('privacy-ref'), 'ref.pcap')
  let collector1: CollectorProcess | undefined
  let collector2: CollectorProcess | undefined
  let proxy1: RecordingProxy | undefined
  let proxy2: RecordingProxy | undefined
  let ref: RefCapture | undefined
  let single: AgentProcess | undefined
  const trio: AgentProcess[] = []
  let startedAt = 0
  /** API answers, to be searched: where → the parsed answer or text. */
  const answers: Array<{ where: string; leaks: Leak[] }> = []
  /** Collector 1's usage (one host), by dimension, to compare with the three hosts' usage. */
  const singleUsage = new Map<string, Map<string, Counted>>()

  const agentEnv = (token: string, hostname: string) => ({
    TALLY_ENROLLMENT_TOKEN: token,
    TALLY_ENROLLMENT_HOSTNAME: hostname,
    TALLY_CAPTURE_INTERFACE: lan.bridge,
    TALLY_CAPTURE_MODE: 'gateway',
    TALLY_CAPTURE_SITE_PREFIXES: `[${lan.prefix}]`,
  })

  /** Waits until an agent has spooled two more batches and its collector acknowledged them. */
  async function settled(agent: AgentProcess, collector: CollectorProcess, host: string) {
    const spooled = agent.spooledSeqs().length
    await waitFor(`two intervals after the traffic (${host})`, () =>
      agent.spooledSeqs().length >= spooled + 2 ? true : undefined,
    )
    const lastSeq = Math.max(...agent.spooledSeqs())
    await waitFor(`acknowledgement of ${host}'s batches`, async () => {
      const entry = (await collector.fleet()).find((e) => e.host === host)
      return (entry?.last_seq ?? 0) >= lastSeq ? true : undefined
    })
  }

  beforeAll(async () => {
    await lan.setup()
    await lan.startServers(b.ns, { httpPort: PORT, answer: b.address })
    const port1 = await freePort()
    let port2 = await freePort()
    while (port2 === port1) port2 = await freePort()
    const c1 = new CollectorProcess(dataDir1, port1, { TALLY_USAGE_K: '1', ...RELEASE_ENV })
    const c2 = new CollectorProcess(dataDir2, port2, { TALLY_USAGE_K: '3', ...RELEASE_ENV })
    collector1 = c1
    collector2 = c2
    await Promise.all([c1.ready(), c2.ready()])
    proxy1 = await RecordingProxy.start(c1.url)
    proxy2 = await RecordingProxy.start(c2.url)
    const token1 = await c1.enrollToken(SITE)
    const token2 = await c2.enrollToken(SITE, 3)

    ref = await RefCapture.start(lan.bridge, refFile)
    startedAt = Date.now()
    single = new AgentProcess(tmp('privacy-agent0'), proxy1.url, agentEnv(token1, 'gateway-one'))
    for (const n of [1, 2, 3]) {
      trio.push(new AgentProcess(tmp(`privacy-agent${n}`), proxy2.url, agentEnv(token2, `gw-${n}`)))
    }
    for (const agent of [single, ...trio]) {
      await waitFor('every agent capturing on the bridge', () =>
        agent.logged('traffic capture started').length > 0 ? true : undefined,
      )
    }

    const curl = async () => {
      for (let i = 0; i < 3; i++) {
        await lan.exec(a.ns, 'curl', [
          '-sS',
          '-o',
          '/dev/null',
          '--max-time',
          '5',
          '-H',
          `Host: ${HOST_HEADER}`,
          '-A',
          USER_AGENT,
          `http://${b.address}:${PORT}${URL_PATH}`,
        ])
      }
    }
    const dig = async () => {
      for (const type of ['A', 'A', 'AAAA']) {
        const out = await lan.exec(a.ns, 'dig', [
          `@${b.address}`,
          DNS_NAME,
          type,
          '+tries=1',
          '+time=3',
        ])
        expect(out).toContain(DNS_NAME)
      }
    }
    const ping = () => lan.exec(a.ns, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', b.address])
    await inOneMinute(TRAFFIC_SECONDS)
    await Promise.all([curl(), dig(), ping()])

    await Promise.all([
      settled(single, c1, 'gateway-one'),
      ...trio.map((agent, i) => settled(agent, c2, `gw-${i + 1}`)),
    ])
    for (const agent of [single, ...trio]) {
      expect(await agent.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    }
    expect((await ref.stop()).dropped).toBe(0)

    // Usage is shown once its minute is released: all of it, one host's once and three times.
    const sent = (await tsharkCount(refFile, `ip.addr == ${a.address} && ip.addr == ${b.address}`))
      .packets
    await Promise.all([
      awaitRelease(c1, SITE, startedAt, sent),
      awaitRelease(c2, SITE, startedAt, 3 * sent),
    ])
    // The wait for the release (up to its minute's end, the delay and a tick) is what makes this
    // hook longer than the others, not the work in it.
  }, 60_000 + RELEASE_WAIT_MS)

  afterAll(async () => {
    for (const agent of [single, ...trio]) await agent?.stop('SIGKILL')
    await collector1?.stop('SIGKILL')
    await collector2?.stop('SIGKILL')
    await proxy1?.close()
    await proxy2?.close()
    ref?.kill()
    await lan.teardown()
  })

  /** GET /v1/usage by one dimension, one step over the test; the answer is kept for the search. */
  async function usage(collector: CollectorProcess, by: string, label: string) {
    // The collector widens the range to whole minutes; the step is then the whole range.
    const from = Math.floor(startedAt / 1000) - 20
    const to = Math.ceil(Date.now() / 1000) + 1
    const answer = await collector.api<UsageAnswer>(
      'GET',
      `/v1/usage?site=${SITE}&by=${by}&from=${from}&to=${to}`,
    )
    answers.push({
      where: `${label} GET /v1/usage by=${by}`,
      leaks: findLeaks(answer, needles, `${label} /v1/usage by=${by}`),
    })
    return answer
  }

  const counted = (answer: UsageAnswer, by: string) =>
    new Map(
      answer.buckets.map((bucket) => [
        String(bucket[by]),
        { packets: bucket.packets, bytes: bucket.bytes, flows: bucket.flows },
      ]),
    )

  /** Everything a collector and its agents left: proxied requests, logs, the store. */
  async function searchEverything(
    label: string,
    proxy: RecordingProxy,
    processes: Array<{ name: string; stderr: string }>,
    dataDir: string,
  ): Promise<Leak[]> {
    const leaks: Leak[] = []
    proxy.records.forEach((record, i) => {
      const where = `${label} proxy ${record.method} ${record.url} #${i}`
      leaks.push(...findLeaksInText(record.url, needles, `${where} url`))
      leaks.push(...findLeaksInBody(record.body, needles, where))
    })
    for (const { name, stderr } of processes) {
      leaks.push(...findLeaksInLog(stderr, needles, `${name} log`))
      // and as plain text, in case a line is not JSON or JSON hides something in an escape
      for (const needle of needles.strings) {
        if (stderr.toLowerCase().includes(needle.toLowerCase())) {
          leaks.push({ where: `${name} log text`, path: '', needle, value: '' })
        }
      }
    }
    // Every table of both databases, in one engine process (the restricted one holds nothing
    // without a case, and is searched all the same).
    const dump = await dumpStore(dataDir)
    expect([...dump.keys()], `${label}: the store has its tables`).toEqual(
      expect.arrayContaining([
        'tally.host_metrics',
        'tally.usage_cells',
        'tally.usage_released',
        'tally.usage_released_1h',
        'tally_restricted.flows',
      ]),
    )
    expect(dump.get('tally.usage_cells')?.length, `${label}: usage was stored`).toBeGreaterThan(0)
    expect(dump.get('tally.usage_released')?.length, `${label}: and released`).toBeGreaterThan(0)
    for (const [table, rows] of dump) {
      leaks.push(...findLeaks(rows, needles, `${label} table ${table}`))
    }
    return leaks
  }

  it('finds every distinctive value where it is: in the raw capture and in a planted sample', async () => {
    // The raw capture has all of them (so the traffic really carried them past the agents).
    const raw = findLeaksInText(await tsharkText(refFile), needles, 'reference capture')
    const found = new Set(raw.map((l) => l.needle))
    for (const needle of [
      a.address,
      b.address,
      'secret-host',
      'very-secret-name',
      'TallyCanaryAgent',
      'privacy-probe',
      'canary-path-q7',
      String(PORT),
    ]) {
      expect(found, `the reference capture shows ${needle}`).toContain(needle)
    }

    // Each needle, planted in a value the way a leak would look, is found; look-alikes are not.
    const planted = {
      peer: `${b.address}:${PORT}`,
      list: [{ port: PORT }, { host: 'SECRET-HOST.example' }],
      [`key ${a.address}`]: 1,
      q: `query ${DNS_NAME}`,
      ua: USER_AGENT,
      path: `GET ${URL_PATH}`,
      addr: addressNumbers(a.address),
      addrB: { be: addressNumbers(b.address)[0], le: String(addressNumbers(b.address)[1]) },
      hex: 'header 0a630202 0A630203',
    }
    const plantedFound = new Set(findLeaks(planted, needles, 'planted').map((l) => l.needle))
    for (const needle of [...needles.strings, ...needles.numbers.map(String)]) {
      expect(plantedFound, `the search finds ${needle}`).toContain(needle)
    }
    expect(
      findLeaks(
        { cpu: 0.47913, big: 1_479_130, version: '47913.5', pid: PORT, text: '10.99.1.2' },
        needles,
        'look-alikes',
      ),
    ).toEqual([])
    expect(
      findLeaksInPrometheus(`x_total{port="${PORT}"} 1\ny 47913\n`, needles, 'p'),
    ).toHaveLength(2)
    expect(
      findLeaksInLog(`{"pid":${PORT},"msg":"x"}\nnot json ${b.address}\n`, needles, 'l'),
    ).toHaveLength(1)
  })

  it('carries the traffic through the pipeline: k = 1 shows exactly what tshark counts', async () => {
    if (collector1 === undefined) throw new Error('no collector')
    const between = `ip.addr == ${a.address} && ip.addr == ${b.address}`
    const byService = counted(await usage(collector1, 'service', 'collector 1'), 'service')
    expect(byService).toEqual(
      new Map([
        ['other-tcp', await tsharkCount(refFile, `${between} && tcp.port == ${PORT} && !icmp`)],
        ['dns', await tsharkCount(refFile, `${between} && udp.port == 53 && !icmp`)],
        ['icmp', await tsharkCount(refFile, `${between} && icmp`)],
      ]),
    )
    singleUsage.set('service', byService)
    for (const by of DIMENSIONS.filter((d) => d !== 'service')) {
      singleUsage.set(by, counted(await usage(collector1, by, 'collector 1'), by))
    }
    // The agent sent usage in its batches (the search below reads real batches).
    const withUsage = (proxy1?.records ?? []).filter((r) => r.body.includes('"usage":[{'))
    expect(withUsage.length).toBeGreaterThan(0)
  })

  it('keeps every distinctive value out of the batches, logs, API answers and the store', async () => {
    if (collector1 === undefined || proxy1 === undefined || single === undefined)
      throw new Error('no collector')
    const c1 = collector1
    const get = async (path: string) => {
      const response = await fetch(`${c1.url}${path}`, {
        headers: { authorization: `Bearer ${c1.adminToken()}` },
      })
      expect(response.status, path).toBe(200)
      return response.text()
    }
    const fleet = await get('/v1/fleet')
    expect(fleet).toContain('gateway-one')
    answers.push({
      where: 'fleet',
      leaks: findLeaksInBody(fleet, needles, 'collector 1 /v1/fleet'),
    })
    const metrics = await get('/metrics')
    expect(metrics).toContain('# TYPE')
    answers.push({
      where: 'metrics',
      leaks: findLeaksInPrometheus(metrics, needles, 'collector 1 /metrics'),
    })
    const users = await get('/v1/admin/users')
    answers.push({ where: 'users', leaks: findLeaksInBody(users, needles, 'collector 1 users') })
    expect(await c1.stop('SIGTERM')).toEqual({ code: 0, signal: null })

    const leaks = [
      ...answers.flatMap((answer) => answer.leaks),
      ...(await searchEverything(
        'collector 1',
        proxy1,
        [
          { name: 'agent gateway-one', stderr: single.stderr },
          { name: 'collector 1', stderr: c1.stderr },
        ],
        dataDir1,
      )),
    ]
    expect(proxy1.records.filter((r) => r.url === '/v1/ingest').length).toBeGreaterThanOrEqual(2)
    expect(leaks).toEqual([])
    answers.length = 0
  })

  it('shows every bucket at k = 3, three hosts each, and none once k is raised to 5', async () => {
    if (collector2 === undefined || proxy2 === undefined) throw new Error('no collector')
    const fleet = await collector2.fleet()
    expect(fleet.map((e) => e.host).sort()).toEqual(['gw-1', 'gw-2', 'gw-3'])
    // Every bucket is there, with three hosts and three times the single gateway's counts (all
    // four agents captured the same frames).
    for (const by of DIMENSIONS) {
      const answer = await usage(collector2, by, 'collector 2 (k = 3)')
      expect(answer.k).toBe(3)
      expect(answer.buckets.length, `k = 3, by ${by}: buckets`).toBeGreaterThan(0)
      for (const bucket of answer.buckets) {
        expect(bucket.hosts, `k = 3, by ${by} ${bucket[by]}`).toBe(3)
      }
      const tripled = new Map(
        [...(singleUsage.get(by) ?? new Map<string, Counted>())].map(([value, c]) => [
          value,
          { packets: 3 * c.packets, bytes: 3 * c.bytes, flows: 3 * c.flows },
        ]),
      )
      expect(counted(answer, by), `k = 3, by ${by}: three times one gateway's usage`).toEqual(
        tripled,
      )
    }
    const stopped = collector2
    expect(await stopped.stop('SIGTERM')).toEqual({ code: 0, signal: null })

    // The same store with k = 5: what was released with three hosts is shown no more.
    const again = new CollectorProcess(dataDir2, await freePort(), {
      TALLY_USAGE_K: '5',
      ...RELEASE_ENV,
    })
    collector2 = again
    await again.ready()
    for (const by of DIMENSIONS) {
      const answer = await usage(again, by, 'collector 2 (k = 5)')
      expect(answer.k).toBe(5)
      expect(answer.buckets, `k = 5, by ${by}: no bucket reaches 5 hosts`).toEqual([])
    }
    expect(await again.stop('SIGTERM')).toEqual({ code: 0, signal: null })

    const leaks = [
      ...answers.flatMap((answer) => answer.leaks),
      ...(await searchEverything(
        'collector 2',
        proxy2,
        [
          ...trio.map((agent, i) => ({ name: `agent gw-${i + 1}`, stderr: agent.stderr })),
          { name: 'collector 2 (k = 3)', stderr: stopped.stderr },
          { name: 'collector 2 (k = 5)', stderr: again.stderr },
        ],
        dataDir2,
      )),
    ]
    expect(leaks).toEqual([])
  })
})
