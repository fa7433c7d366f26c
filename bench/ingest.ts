/**
 * Ingest benchmark: a real collector process (embedded engine, fresh temp data directory) takes
 * realistic batches from N agents enrolled through the API, closed-loop at several concurrencies
 * and open-loop at a target rate. Beside it, in the same run, the reference: the same kind of
 * rows inserted straight into a fresh embedded engine, one big insert per table.
 *
 *   npm run bench:ingest -- [--agents 500] [--concurrency 16,64,256] [--rate 1000]
 *                           [--seconds 4] [--bulk-batches 2000] [--cpu-prof DIR]
 *
 * Prints, per phase: accepted batches/s, p50/p95/p99 latency of accepted batches, rows/s
 * (samples + usage rows), the share answered 503, and the collector's RSS (peak) and CPU (from
 * /proc/PID/stat, in cores). Nothing here asserts a speed: the figures are read against the
 * in-run reference (bench/README.md).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { openStore } from '../collector/store/client.ts'
import {
  type BatchRows,
  batchDigest,
  batchRows,
  insertGroup,
} from '../collector/store/host-batches.ts'
import { migrate } from '../collector/store/migrations.ts'
import { loadOrCreateUsageHostKey } from '../collector/store/usage-host-key.ts'
import {
  enrollAgents,
  gzipBatch,
  type LoadAgent,
  postBatch,
  realisticBatch,
  seeded,
} from './ingest-load.ts'

const { values: args } = parseArgs({
  options: {
    agents: { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '16,64,256' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '4' },
    'bulk-batches': { type: 'string', default: '2000' },
    'cpu-prof': { type: 'string' },
  },
})
const AGENTS = Number(args.agents)
const CONCURRENCIES = String(args.concurrency).split(',').map(Number)
const RATE = Number(args.rate)
const SECONDS = Number(args.seconds)
const BULK_BATCHES = Number(args['bulk-batches'])
const ROOT = new URL('..', import.meta.url).pathname
const TICKS = 100 // USER_HZ on Linux

const random = seeded(20_261_210)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
    s.once('error', reject)
  })
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS
}

function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 }
}

async function startCollector(dataDir: string, port: number): Promise<ChildProcess> {
  const prof = args['cpu-prof']
  const child = spawn(
    process.execPath,
    [
      ...(prof === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', prof]),
      join(ROOT, 'bin/tally.ts'),
      'collector',
      'run',
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        TALLY_DATA_DIR: dataDir,
        TALLY_LISTEN_PORT: String(port),
        TALLY_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
      detached: true,
    },
  )
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error('the collector exited')
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) return child
    await sleep(100)
  }
  throw new Error('the collector did not become ready')
}

/** The next batch of each agent, round robin: every (agent, seq) is new. */
class Batches {
  readonly #agents: LoadAgent[]
  readonly #seq: number[]
  #next = 0
  constructor(agents: LoadAgent[]) {
    this.#agents = agents
    this.#seq = agents.map(() => 0)
  }
  /** `count` gzip'd bodies made ahead, so the generator spends no CPU while measuring. */
  make(count: number): { agent: LoadAgent; body: Buffer }[] {
    const out: { agent: LoadAgent; body: Buffer }[] = []
    const end = Date.now()
    for (let i = 0; i < count; i++) {
      const k = this.#next++ % this.#agents.length
      const agent = this.#agents[k] as LoadAgent
      this.#seq[k] = (this.#seq[k] ?? 0) + 1
      out.push({
        agent,
        body: gzipBatch(realisticBatch(agent.agent_id, this.#seq[k] ?? 1, end, random)),
      })
    }
    return out
  }
}

interface PhaseResult {
  phase: string
  sent: number
  accepted: number
  busy: number
  other: number
  seconds: number
  latencies: number[]
  cpu: number
  rss: number
  peak: number
}

const ROWS_PER_BATCH = 120

async function phase(
  name: string,
  pid: number,
  run: () => Promise<{ status: number; ms: number }[]>,
): Promise<PhaseResult> {
  const cpu0 = cpuSeconds(pid)
  const t0 = performance.now()
  const answers = await run()
  const seconds = (performance.now() - t0) / 1000
  const cpu = (cpuSeconds(pid) - cpu0) / seconds
  const accepted = answers.filter((a) => a.status === 200)
  return {
    phase: name,
    sent: answers.length,
    accepted: accepted.length,
    busy: answers.filter((a) => a.status === 503).length,
    other: answers.filter((a) => a.status !== 200 && a.status !== 503).length,
    seconds,
    latencies: accepted.map((a) => a.ms).sort((a, b) => a - b),
    cpu,
    ...memoryMiB(pid),
  }
}

const percentile = (sorted: number[], p: number): number =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN)

async function closedLoop(
  url: string,
  pool: { agent: LoadAgent; body: Buffer }[],
  concurrency: number,
  seconds: number,
) {
  const answers: { status: number; ms: number }[] = []
  const deadline = performance.now() + seconds * 1000
  let next = 0
  const worker = async () => {
    while (performance.now() < deadline && next < pool.length) {
      const item = pool[next++] as { agent: LoadAgent; body: Buffer }
      const t = performance.now()
      const status = await postBatch(url, item.agent.credential, item.body)
      answers.push({ status, ms: performance.now() - t })
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return answers
}

async function openLoop(
  url: string,
  pool: { agent: LoadAgent; body: Buffer }[],
  rate: number,
  seconds: number,
) {
  const answers: Promise<{ status: number; ms: number }>[] = []
  const t0 = performance.now()
  const total = Math.min(pool.length, Math.round(rate * seconds))
  while (answers.length < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate))
    while (answers.length < due) {
      const item = pool[answers.length] as { agent: LoadAgent; body: Buffer }
      const t = performance.now()
      answers.push(
        postBatch(url, item.agent.credential, item.body).then((status) => ({
          status,
          ms: performance.now() - t,
        })),
      )
    }
    await sleep(1)
  }
  return Promise.all(answers)
}

/** The reference: the same kind of rows, one insert per table, into a fresh embedded engine. */
async function bulkReference(batches: number): Promise<{ seconds: number; rows: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-bulk-'))
  const store = openStore({ dataDir: dir })
  try {
    await migrate(store)
    const usage = { hostKey: loadOrCreateUsageHostKey(dir), releaseAfterSeconds: 600 }
    const rows: BatchRows[] = []
    const now = Date.now()
    for (let i = 0; i < batches; i++) {
      const agent = { agent_id: `a-bulk${i % 2000}`, host: `site-b-ws${i % 2000}`, site: 'site-b' }
      const batch = realisticBatch(agent.agent_id, 1 + Math.floor(i / 2000), now, random)
      rows.push(batchRows(agent, batch, batchDigest(batch), usage, now))
    }
    const t0 = performance.now()
    await insertGroup(store, `bulk-${now}`, rows)
    return { seconds: (performance.now() - t0) / 1000, rows: batches * ROWS_PER_BATCH }
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-')

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-ingest-'))
  const port = await freePort()
  const collector = await startCollector(dataDir, port)
  const pid = collector.pid as number
  const url = `http://127.0.0.1:${port}`
  const results: PhaseResult[] = []
  try {
    const adminToken = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim()
    const e0 = performance.now()
    const agents = await enrollAgents(url, adminToken, 'site-a', AGENTS, 32)
    const enrollSeconds = (performance.now() - e0) / 1000
    console.info(`enrolled ${AGENTS} agents through the API in ${fmt(enrollSeconds, 1)} s`)
    const batches = new Batches(agents)
    // A short warm-up, not reported.
    await closedLoop(url, batches.make(200), 16, 1)
    for (const c of CONCURRENCIES) {
      const pool = batches.make(Math.min(12_000, Math.max(2000, Math.round(c * SECONDS * 10))))
      results.push(await phase(`closed c=${c}`, pid, () => closedLoop(url, pool, c, SECONDS)))
    }
    const pool = batches.make(Math.round(RATE * SECONDS))
    results.push(await phase(`open ${RATE}/s`, pid, () => openLoop(url, pool, RATE, SECONDS)))
  } finally {
    if (collector.exitCode === null) process.kill(-pid, 'SIGTERM')
    await new Promise((r) => collector.once('exit', r))
    rmSync(dataDir, { recursive: true, force: true })
  }
  const bulk = await bulkReference(BULK_BATCHES)
  const bulkRows = bulk.rows / bulk.seconds

  console.info(
    `\ningest, ${AGENTS} agents, ${SECONDS} s per phase, ${ROWS_PER_BATCH} rows a batch (100 samples + 20 usage rows)`,
  )
  console.info(
    'phase            sent  accepted/s  p50 ms  p95 ms  p99 ms    rows/s  503 %  other  CPU cores  RSS MiB  peak MiB',
  )
  for (const r of results) {
    const rate = r.accepted / r.seconds
    console.info(
      [
        r.phase.padEnd(14),
        String(r.sent).padStart(6),
        fmt(rate).padStart(11),
        fmt(percentile(r.latencies, 0.5), 1).padStart(7),
        fmt(percentile(r.latencies, 0.95), 1).padStart(7),
        fmt(percentile(r.latencies, 0.99), 1).padStart(7),
        fmt(rate * ROWS_PER_BATCH).padStart(9),
        fmt((100 * r.busy) / Math.max(1, r.sent), 1).padStart(6),
        String(r.other).padStart(6),
        fmt(r.cpu, 2).padStart(10),
        fmt(r.rss).padStart(8),
        fmt(r.peak).padStart(9),
      ].join(' '),
    )
  }
  const best = Math.max(...results.map((r) => (r.accepted / r.seconds) * ROWS_PER_BATCH))
  console.info(
    `\nreference: bulk insert of ${BULK_BATCHES} batches (${bulk.rows} rows), one insert per table: ` +
      `${fmt(bulk.seconds, 2)} s, ${fmt(bulkRows)} rows/s, ${fmt(BULK_BATCHES / bulk.seconds)} batches/s`,
  )
  console.info(`best end-to-end rows/s / bulk rows/s: ${fmt(best / bulkRows, 2)}`)
}

await main()
