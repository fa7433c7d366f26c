/**
 * Realistic data for the dashboards, through the real paths: agents enrolled through the API,
 * their batches (host samples from the real HostMetricsCollector for one host and varied
 * hand-built ones for the others, agent and capture health, usage contributions, inventory)
 * posted to POST /v1/ingest of an app with its own telemetry, rejected, duplicate and 503
 * requests, the collector's counters and the ITSD register's status written by SelfMetrics, and
 * register entries appended by the Register. Cases and grants are inserted directly (their
 * workflow needs a cast of users; the dashboards read only kind, state and grant windows).
 */
import { join } from 'node:path'
import pino from 'pino'
import { HostMetricsCollector } from '../../agent/collect/host.ts'
import { createCollector } from '../../collector/app.ts'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { SelfMetrics } from '../../collector/self-metrics.ts'
import type { Store } from '../../collector/store/client.ts'
import { insertRows } from '../../collector/store/rows.ts'
import { createTelemetry } from '../../collector/telemetry.ts'
import type {
  HostBatch,
  HostInventory,
  HostMetricName,
  HostSample,
  SampleAttributes,
  UsageContribution,
} from '../../protocol/v1.ts'
import { TCP_STATES } from '../../protocol/v1.ts'
import {
  type App,
  type EnrolledAgent,
  enrollAgent,
  gz,
  type Harness,
  postIngest,
} from '../collector/harness.ts'

export const INTERVAL_MS = 10_000
/**
 * Batches per host: two minutes of ten-second intervals, enough for several minute rollups.
 * Every batch goes through the real ingest path (a few engine inserts each), which is what the
 * loading time is made of; more batches would add time, not cases.
 */
export const BATCHES = 12
/** Rounds of batches; after each one the collector's counters are snapshotted. */
const ROUNDS = 6
/** The interval in which the delivering agent's backlog peaks (its spool grows, then drains). */
const PEAK = BATCHES / 2

export interface HostSpec {
  site: string
  host: string
  /** Sends the real HostMetricsCollector's samples. */
  real?: boolean
  /** Enrolled, never sends a batch. */
  silent?: boolean
}

export const HOSTS: HostSpec[] = [
  { site: 'geneva', host: 'gva-ws-01', real: true },
  { site: 'geneva', host: 'gva-ws-02' },
  { site: 'geneva', host: 'gva-srv-01' },
  { site: 'nairobi', host: 'nbo-ws-01' },
  { site: 'nairobi', host: 'nbo-ws-02' },
  { site: 'bangkok', host: 'bkk-ws-01', silent: true },
]

export interface LoadedData {
  /** End of the last interval (ms); every sample is at or before it. */
  lastEnd: number
  storedBatches: number
  duplicates: number
  rejected: number
  unavailable: number
  /** Sum of the usage bytes posted, over every site. */
  usageBytes: number
  services: Set<string>
  /** Grants of ITSD cases in force now; cases requested, approved or active. */
  grantsInForce: number
  openCases: number
  itsdEntries: number
}

const s = (
  metric: HostMetricName,
  value: number,
  attributes: SampleAttributes = {},
): HostSample => ({
  metric,
  value,
  attributes,
})

/** A smooth, host- and time-dependent value in [0, 1). */
const wave = (h: number, i: number, phase = 0) =>
  0.5 + 0.45 * Math.sin((i + phase) / 4 + h * 1.7) * Math.cos(h + phase)

function handBuilt(h: number, i: number): HostSample[] {
  const busy = 0.1 + 0.6 * wave(h, i)
  const shares = { user: 0.6, system: 0.25, nice: 0.02, iowait: 0.08, irq: 0.04, steal: 0.01 }
  const cpu = Object.entries(shares).map(([mode, share]) =>
    s('system.cpu.utilization', busy * share, {
      'cpu.mode': mode as NonNullable<SampleAttributes['cpu.mode']>,
    }),
  )
  cpu.push(s('system.cpu.utilization', 1 - busy, { 'cpu.mode': 'idle' }))
  const total = (8 + 8 * h) * 2 ** 30
  const used = total * (0.3 + 0.5 * wave(h, i, 1))
  const buffers = total * 0.02
  const cached = total * 0.2
  const free = total - used - buffers - cached
  const samples: HostSample[] = [
    ...cpu,
    s('system.cpu.load_average.1m', 4 * busy),
    s('system.cpu.load_average.5m', 3.5 * busy),
    s('system.cpu.load_average.15m', 3 * busy),
    s('system.memory.usage', used, { 'system.memory.state': 'used' }),
    s('system.memory.usage', free, { 'system.memory.state': 'free' }),
    s('system.memory.usage', buffers, { 'system.memory.state': 'buffers' }),
    s('system.memory.usage', cached, { 'system.memory.state': 'cached' }),
    s('system.memory.usage', free + cached, { 'system.memory.state': 'available' }),
    s('system.memory.limit', total),
    s('system.memory.utilization', used / total),
    s('system.uptime', 86_400 * (h + 1) + i * 10),
  ]
  const filesystems = [
    { mount: '/', device: '/dev/sda1', type: 'ext4', size: 100 * 2 ** 30, share: 0.4 + 0.1 * h },
    { mount: '/var', device: '/dev/sdb1', type: 'xfs', size: 500 * 2 ** 30, share: 0.7 + 0.05 * h },
  ]
  for (const fs of filesystems) {
    const base = {
      'system.device': fs.device,
      'system.filesystem.mountpoint': fs.mount,
      'system.filesystem.type': fs.type,
    }
    const usedFs = fs.size * Math.min(0.99, fs.share + i * 0.0005)
    const reserved = fs.size * 0.05
    samples.push(
      s('system.filesystem.usage', usedFs, { ...base, 'system.filesystem.state': 'used' }),
      s('system.filesystem.usage', fs.size - usedFs - reserved, {
        ...base,
        'system.filesystem.state': 'free',
      }),
      s('system.filesystem.usage', reserved, { ...base, 'system.filesystem.state': 'reserved' }),
      s('system.filesystem.limit', fs.size, base),
      s('system.filesystem.utilization', usedFs / fs.size, base),
    )
  }
  for (const [n, name] of ['eth0', 'wlan0'].entries()) {
    for (const direction of ['receive', 'transmit'] as const) {
      const attributes = { 'network.interface.name': name, 'network.io.direction': direction }
      const packets = Math.round(
        1000 * (n === 0 ? 5 : 1) * wave(h, i, n + (direction === 'receive' ? 0 : 2)),
      )
      samples.push(
        s('system.network.io', packets * 900, attributes),
        s('system.network.packet.count', packets, attributes),
        s('system.network.errors', i % 7 === h % 7 ? 2 : 0, attributes),
        s('system.network.packet.dropped', i % 5 === 0 ? 1 : 0, attributes),
      )
    }
  }
  for (const [k, state] of TCP_STATES.entries()) {
    const count = state === 'established' ? 20 + h * 5 + (i % 4) : state === 'listen' ? 12 : k % 3
    samples.push(
      s('system.network.connection.count', count, {
        'network.transport': 'tcp',
        'network.connection.state': state,
      }),
    )
  }
  return samples
}

/** Agent and capture health, and traffic totals: what the agent's run loop adds. */
function agentHealth(h: number, i: number): HostSample[] {
  // One agent cannot deliver for a while: its spool grows, then drains.
  const depth = h === 2 ? Math.max(0, 4 - Math.abs(i - PEAK)) : 0
  const received = 20_000 + 1000 * h + 50 * i
  return [
    s('tally.agent.spool.depth', depth),
    s('tally.agent.spool.bytes', depth * 4096),
    s('tally.agent.batches.dropped', h === 2 && i === PEAK ? 1 : 0),
    s('tally.agent.spool.corrupted', 0),
    s('tally.agent.send.failures', h === 2 && i > PEAK - 4 && i < PEAK ? 1 : 0),
    s('tally.capture.running', 1),
    s('tally.capture.packets', received, { 'tally.capture.outcome': 'received' }),
    s('tally.capture.packets', h === 1 && i % 3 === 0 ? 40 : 0, {
      'tally.capture.outcome': 'dropped_kernel',
    }),
    s('tally.capture.packets', i % 10 === 0 ? 3 : 0, {
      'tally.capture.outcome': 'dropped_interface',
    }),
    s('tally.capture.packets', received - 10, { 'tally.capture.outcome': 'decoded' }),
    s('tally.capture.packets', 8, { 'tally.capture.outcome': 'non_ip' }),
    s('tally.capture.packets', 2, { 'tally.capture.outcome': 'malformed' }),
    s('tally.capture.malformed', 2, { 'tally.malformed.reason': 'bad-tcp-data-offset' }),
    s('tally.traffic.bytes', received * 700, {
      'tally.direction': 'outbound',
      'network.transport': 'tcp',
    }),
    s('tally.traffic.packets', received, {
      'tally.direction': 'outbound',
      'network.transport': 'tcp',
    }),
  ]
}

const USAGE_MIX: Array<
  Omit<UsageContribution, 'bytes' | 'packets' | 'flows'> & { weight: number }
> = [
  {
    direction: 'inbound',
    ip_version: 4,
    transport: 'tcp',
    service: 'https',
    peer_class: 'internet',
    weight: 40,
  },
  {
    direction: 'outbound',
    ip_version: 4,
    transport: 'tcp',
    service: 'https',
    peer_class: 'internet',
    weight: 6,
  },
  {
    direction: 'inbound',
    ip_version: 6,
    transport: 'udp',
    service: 'quic',
    peer_class: 'internet',
    weight: 20,
  },
  {
    direction: 'outbound',
    ip_version: 4,
    transport: 'udp',
    service: 'dns',
    peer_class: 'organisation',
    weight: 1,
  },
  {
    direction: 'inbound',
    ip_version: 4,
    transport: 'tcp',
    service: 'smb',
    peer_class: 'same-site',
    weight: 8,
  },
  {
    direction: 'outbound',
    ip_version: 4,
    transport: 'tcp',
    service: 'ssh',
    peer_class: 'organisation',
    weight: 2,
  },
  {
    direction: 'outbound',
    ip_version: 6,
    transport: 'udp',
    service: 'ntp',
    peer_class: 'internet',
    weight: 0.1,
  },
  {
    direction: 'internal',
    ip_version: 4,
    transport: 'udp',
    service: 'mdns',
    peer_class: 'multicast-broadcast',
    weight: 0.2,
  },
  {
    direction: 'outbound',
    ip_version: 4,
    transport: 'icmp',
    service: 'icmp',
    peer_class: 'internet',
    weight: 0.05,
  },
  {
    direction: 'inbound',
    ip_version: 4,
    transport: 'tcp',
    service: 'other-tcp',
    peer_class: 'internet',
    weight: 3,
  },
]

function usage(h: number, i: number): UsageContribution[] {
  return USAGE_MIX.filter((_, k) => (k + h + i) % 4 !== 0).map(({ weight, ...u }) => {
    const packets = Math.max(1, Math.round(weight * 50 * (1 + wave(h, i, weight))))
    return { ...u, bytes: packets * 800, packets, flows: Math.max(1, Math.round(packets / 40)) }
  })
}

function inventory(h: number): HostInventory {
  return {
    os: {
      platform: 'linux',
      distro: 'Debian GNU/Linux',
      release: '12',
      kernel: '6.1.0-18-amd64',
      arch: 'x64',
    },
    cpu: { model: 'Intel(R) Xeon(R) CPU E5-2680 v4', cores: 4 * (h + 1) },
    memory_bytes: (8 + 8 * h) * 2 ** 30,
    interfaces: [
      {
        name: 'eth0',
        mac: `02:00:00:00:00:0${h}`,
        addresses: [`10.20.${h}.10`],
        speed_mbps: 1000,
        up: true,
      },
    ],
  }
}

/** This machine's samples from the real collector: a baseline, then one interval's worth. */
async function realSamples(): Promise<{ samples: HostSample[]; inventory: HostInventory }> {
  const collector = new HostMetricsCollector()
  await collector.collect()
  await new Promise((r) => setTimeout(r, 200))
  const samples = await collector.collect()
  return { samples, inventory: await collector.inventory() }
}

/** What the ingest rounds post through, and the counts they keep. */
interface Ingesting {
  app: App
  /** The same collector on a store that takes no writes. */
  failingApp: App
  agents: Array<{ spec: HostSpec; agent: EnrolledAgent }>
  data: LoadedData
  batchOf: (n: number, i: number) => HostBatch
  post: (target: App, n: number, batch: unknown) => Promise<Response>
}

/** Batch `i` of every agent that is not silent, each stored. */
async function postBatches(x: Ingesting, i: number): Promise<void> {
  for (const [n, { spec }] of x.agents.entries()) {
    if (spec.silent) continue
    const batch = x.batchOf(n, i)
    const res = await x.post(x.app, n, batch)
    if (res.status !== 200) throw new Error(`batch ${n}/${i}: ${res.status} ${await res.text()}`)
    x.data.storedBatches++
    for (const u of batch.usage ?? []) {
      x.data.usageBytes += u.bytes
      x.data.services.add(u.service)
    }
  }
}

/**
 * An agent that lost an answer sends its batch again; one sends a bad batch; every other round,
 * one comes back while the store is down and a body is not gzip.
 */
async function postMishaps(x: Ingesting, round: number, i: number): Promise<void> {
  const { app, data, batchOf, post } = x
  const dup = await post(app, 1, batchOf(1, i))
  if (dup.status !== 200) throw new Error(`duplicate: ${dup.status}`)
  data.duplicates++
  const bad = await post(app, 3, { ...batchOf(3, i), samples: 'none' })
  if (bad.status !== 400) throw new Error(`bad batch: ${bad.status}`)
  data.rejected++
  if (round % 2 === 1) {
    const down = await post(x.failingApp, 4, { ...batchOf(4, i), seq: 10_000 + round })
    if (down.status !== 503) throw new Error(`store down: ${down.status}`)
    data.unavailable++
    const gzipless = await postIngest(app, Buffer.from('not gzip'), {
      credential: x.agents[0]?.agent.credential,
    })
    if (gzipless.status !== 400) throw new Error(`not gzip: ${gzipless.status}`)
    data.rejected++
  }
}

export async function loadRealisticData(h: Harness): Promise<LoadedData> {
  const logger = pino({ level: 'silent' })
  const signingKey = loadOrCreateSigningKey(join(h.dir, 'grant-signing.pem'))
  const telemetry = createTelemetry()
  const collector = createCollector({
    store: h.store,
    config: h.config,
    logger,
    signingKey,
    telemetry,
  })
  const app = collector.app
  // The same collector on a store that takes no writes: its ingest answers 503.
  const failing: Store = new Proxy(h.store, {
    get(target, prop, receiver) {
      if (prop === 'insert') return () => Promise.reject(new Error('store is down'))
      const value: unknown = Reflect.get(target, prop, receiver)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  const failingApp: App = createCollector({
    store: failing,
    config: h.config,
    logger,
    signingKey,
    telemetry,
  }).app

  const agents: Array<{ spec: HostSpec; agent: EnrolledAgent }> = []
  // Enrolled through this collector: enrollments go on its register, signed with its key.
  const enrolling = { ...h, app }
  for (const spec of HOSTS) {
    agents.push({ spec, agent: await enrollAgent(enrolling, spec.site, spec.host) })
  }
  const real = await realSamples()
  const realFamilies = new Set(real.samples.map((x) => x.metric))

  const lastEnd = Math.floor(Date.now() / INTERVAL_MS) * INTERVAL_MS
  const endOf = (i: number) => lastEnd - (BATCHES - 1 - i) * INTERVAL_MS
  let clock = endOf(0)
  const metrics = new SelfMetrics({
    store: h.store,
    telemetry,
    register: collector.register,
    instance: 'collector-test:8080',
    now: () => clock,
  })

  const data: LoadedData = {
    lastEnd,
    storedBatches: 0,
    duplicates: 0,
    rejected: 0,
    unavailable: 0,
    usageBytes: 0,
    services: new Set(),
    grantsInForce: 0,
    openCases: 0,
    itsdEntries: 0,
  }
  const batchOf = (n: number, i: number): HostBatch => {
    const { spec, agent } = agents[n] ?? {}
    if (spec === undefined || agent === undefined) throw new Error(`no agent ${n}`)
    const samples = spec.real
      ? [...real.samples, ...handBuilt(n, i).filter((x) => !realFamilies.has(x.metric))]
      : handBuilt(n, i)
    const contributions = usage(n, i)
    const end = endOf(i)
    return {
      version: 1,
      agent_id: agent.agent_id,
      seq: i + 1,
      agent_version: n === 4 ? '0.1.0' : '0.2.0',
      interval: { start: end - INTERVAL_MS, end },
      samples: [...samples, ...agentHealth(n, i)],
      usage: contributions,
      ...(i === 0 ? { inventory: spec.real ? real.inventory : inventory(n) } : {}),
    }
  }
  const post = async (target: App, n: number, batch: unknown) =>
    postIngest(target, gz(batch), { credential: agents[n]?.agent.credential })

  const perRound = BATCHES / ROUNDS
  const ingesting: Ingesting = { app, failingApp, agents, data, batchOf, post }
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = round * perRound; i < (round + 1) * perRound; i++) await postBatches(ingesting, i)
    await postMishaps(ingesting, round, round * perRound)
    clock = endOf((round + 1) * perRound - 1) + 1_000
    await metrics.snapshot()
  }

  // The register: ITSD entries with a signed checkpoint, and OIOS's own.
  for (let k = 0; k < 5; k++) {
    await collector.register.append({
      register: 'itsd',
      kind: 'case_requested',
      actor: `u-requester-${k}`,
      case_id: `c-itsd-${k}`,
      details: { state: 'requested' },
    })
  }
  await collector.register.checkpoint('itsd')
  await collector.register.append({
    register: 'itsd',
    kind: 'case_approved',
    actor: 'u-approver',
    case_id: 'c-itsd-0',
    details: { state: 'approved' },
  })
  for (let k = 0; k < 3; k++) {
    await collector.register.append({
      register: 'oios',
      kind: 'case_opened',
      actor: 'u-oios',
      case_id: `c-oios-${k}`,
      details: { state: 'active' },
    })
  }
  await collector.register.checkpoint('oios')
  data.itsdEntries = 6
  clock = lastEnd - 60_000
  await metrics.recordRegisters()
  clock = lastEnd
  await metrics.recordRegisters()
  await metrics.stop()

  // Cases and grants, directly: kind and state are what the dashboards read.
  const now = Date.now()
  const cases: Array<[string, string, string]> = [
    ['c-itsd-0', 'standard', 'active'],
    ['c-itsd-1', 'standard', 'requested'],
    ['c-itsd-2', 'technical', 'active'],
    ['c-itsd-3', 'standard', 'closed'],
    ['c-itsd-4', 'standard', 'purged'],
    ['c-itsd-5', 'standard', 'denied'],
    ['c-oios-0', 'oios', 'active'],
    ['c-oios-1', 'oios', 'expired'],
  ]
  await insertRows(
    h.store,
    'tally.cases',
    cases.map(([case_id, kind, state], k) => ({
      case_id,
      kind,
      state,
      doc: JSON.stringify({ case_id, kind, state, staff_member: { name: 'Jane Doe' } }),
      updated_at: now - k * 60_000,
      version: now,
    })),
  )
  data.openCases = 3
  const grant = (id: string, caseId: string, audience: string, endMs: number, revoked = false) => ({
    grant_id: id,
    case_id: caseId,
    audience,
    subject: audience === 'tally-agent' ? 'a-0000000000000000' : 'u-investigator',
    token: 'eyJhbGciOiJFZERTQSJ9.e30.sig',
    window_start: now - 3_600_000,
    window_end: endMs,
    issued_at: now - 1_800_000,
    revoked_at: revoked ? now - 60_000 : null,
    version: now,
  })
  await insertRows(h.store, 'tally.grants', [
    grant('g-1', 'c-itsd-0', 'tally-agent', now + 86_400_000 * 3),
    grant('g-2', 'c-itsd-0', 'tally-drilldown', now + 86_400_000 * 3),
    grant('g-3', 'c-itsd-2', 'tally-agent', now + 7_200_000),
    grant('g-4', 'c-itsd-3', 'tally-agent', now + 7_200_000, true),
    grant('g-5', 'c-oios-0', 'tally-agent', now + 86_400_000),
    grant('g-6', 'c-oios-0', 'tally-drilldown', now + 86_400_000),
  ])
  data.grantsInForce = 3
  return data
}
