/**
 * Benchmark: memory and CPU of the bundled agent at rest, side by side with
 * prometheus-node-exporter on the same host in the same run.
 *
 *   npm run bench:footprint                      # 60 s measured, after a warm-up
 *   node bench/footprint.ts --duration 180       # the issue's 3 minutes
 *   node bench/footprint.ts --source             # also the agent run from the source tree
 *
 * Options: --duration S (measured seconds, default 60), --warmup S (default 15), --sample S
 * (default 1), --interval S (the agent's interval, default the collector's: 10), --link
 * netns|lo (default netns when root, else lo), --agent FILE (default: a fresh build of the
 * bundle into the tmp dir), --node FILE (the Node.js that runs it; default this one), --unit FILE
 * (the systemd unit whose Node options and Environment= lines the agent runs with; default
 * deploy/systemd/tally-agent.service), --source, --tmp DIR (default $TMPDIR/tally-bench).
 *
 * What runs: a real collector (embedded engine, a temporary data dir) on a loopback port; the
 * bundled agent, enrolled through the API, with capture on (a veth pair into a network namespace
 * this benchmark creates and removes, carrying a small TCP exchange every second, or loopback),
 * launched with the Node options of deploy/systemd/tally-agent.service as the service would be;
 * and node_exporter on a loopback port, scraped every interval as Prometheus would. Every
 * `--sample` seconds it reads VmRSS from /proc/PID/status and utime+stime from /proc/PID/stat of
 * each process and of its children (the agent's tcpdump is shown on its own line). It prints the
 * median and max RSS over the measured window, the peak (VmHWM), and the average share of one
 * core over the window. Figures are printed, never asserted.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { connect, createServer } from 'node:net'
import { cpus, release, tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TARGET_RSS_MIB = 55
const TARGET_CPU_PERCENT = 0.5

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '15' },
    sample: { type: 'string', default: '1' },
    interval: { type: 'string' },
    link: { type: 'string' },
    agent: { type: 'string' },
    node: { type: 'string', default: process.execPath },
    source: { type: 'boolean', default: false },
    unit: { type: 'string', default: join(ROOT, 'deploy', 'systemd', 'tally-agent.service') },
    tmp: { type: 'string', default: join(tmpdir(), 'tally-bench') },
  },
})

const UNIT = resolve(values.unit)
const say = (line: string) => process.stderr.write(`footprint: ${line}\n`)

function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin', '/sbin']
  for (const dir of dirs) {
    if (dir === '') continue
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {
      // not here
    }
  }
  return undefined
}

function sh(program: string, args: string[]): string {
  return execFileSync(program, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error()),
      )
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000) {
  const deadline = Date.now() + ms
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      last = err
    }
    await sleep(250)
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
}

// --- /proc sampling ---------------------------------------------------------------------------

const CLK_TCK = Number(sh('getconf', ['CLK_TCK']).trim()) || 100

interface ProcReading {
  rssKiB: number
  hwmKiB: number
  /** utime + stime, in clock ticks, of the process itself (all its threads). */
  ticks: number
  name: string
}

function readProc(pid: number): ProcReading | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const field = (n: number) => Number(after[n - 3])
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1])
    return {
      rssKiB: kib('VmRSS') || 0,
      hwmKiB: kib('VmHWM') || 0,
      ticks: field(14) + field(15),
      name: /^Name:\s+(.*)$/m.exec(status)?.[1] ?? '?',
    }
  } catch {
    return undefined
  }
}

function childrenOf(pid: number): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) found.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return found
}

/** One measured process (or the children of one, under one label). */
class Series {
  readonly rss: number[] = []
  hwmKiB = 0
  /** Ticks per pid at the first and the latest reading inside the window. */
  readonly #first = new Map<number, number>()
  readonly #last = new Map<number, number>()
  readonly pids = new Set<number>()
  names = new Set<string>()

  readonly label: string
  constructor(label: string) {
    this.label = label
  }

  /** One sample of these pids (RSS summed over them). */
  add(pids: number[], measuring: boolean): void {
    let rss = 0
    let seen = false
    for (const pid of pids) {
      const reading = readProc(pid)
      if (reading === undefined) continue
      seen = true
      rss += reading.rssKiB
      this.names.add(reading.name)
      if (!measuring) continue
      this.pids.add(pid)
      this.hwmKiB = Math.max(this.hwmKiB, reading.hwmKiB)
      if (!this.#first.has(pid)) this.#first.set(pid, reading.ticks)
      this.#last.set(pid, reading.ticks)
    }
    if (measuring && seen) this.rss.push(rss)
  }

  ticks(): number {
    let total = 0
    for (const [pid, last] of this.#last) total += last - (this.#first.get(pid) ?? last)
    return total
  }
}

function median(sorted: number[]): number {
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

// --- what runs --------------------------------------------------------------------------------

const started: ChildProcess[] = []
const cleanups: Array<() => void> = []

function start(
  label: string,
  program: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd = ROOT,
): { child: ChildProcess; output: () => string } {
  const child = spawn(program, args, {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  started.push(child)
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.once('exit', (code, signal) => {
    if (!stopping) say(`${label} exited (${code ?? signal}): ${output.slice(-2000)}`)
  })
  return { child, output: () => output }
}

let stopping = false
function stopAll(): void {
  stopping = true
  for (const child of started) {
    if (child.pid === undefined || child.exitCode !== null) continue
    try {
      process.kill(-child.pid, 'SIGTERM')
    } catch {
      // gone
    }
  }
}
async function stopAndClean(): Promise<void> {
  stopAll()
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline && started.some((c) => c.exitCode === null && c.signalCode === null))
    await sleep(100)
  for (const child of started) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
  }
  for (const clean of cleanups.reverse()) {
    try {
      clean()
    } catch (err) {
      say(`cleanup: ${(err as Error).message}`)
    }
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopAndClean().then(() => process.exit(130))
  })
}

/** The Node options the service runs the agent with (between the node program and the bundle). */
function unitNodeOptions(): string[] {
  const line = /^\s*ExecStart=[-@:+!]*(.*)$/m.exec(readFileSync(UNIT, 'utf8'))?.[1] ?? ''
  const words = line.trim().split(/\s+/)
  const bundleAt = words.findIndex((w) => w.endsWith('.mjs'))
  return bundleAt > 1 ? words.slice(1, bundleAt) : []
}

/** The environment the service sets (its uncommented `Environment=NAME=value` lines). */
function unitEnvironment(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [, name, value] of readFileSync(UNIT, 'utf8').matchAll(
    /^\s*Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$/gm,
  )) {
    if (name !== undefined && value !== undefined) env[name] = value
  }
  return env
}

interface Link {
  /** The interface the agent captures on. */
  name: string
  describe: string
  /** Sends a little traffic over it (one exchange). */
  exchange: () => Promise<void>
}

function exchangeWith(host: string, port: number): () => Promise<void> {
  return () =>
    new Promise<void>((done) => {
      const socket = connect({ host, port })
      let received = 0
      socket.setTimeout(2000, () => socket.destroy())
      socket.on('connect', () => socket.write('x'.repeat(300)))
      socket.on('data', (chunk) => {
        received += chunk.length
        if (received >= 4096) socket.end()
      })
      socket.on('close', () => done())
      socket.on('error', () => done())
    })
}

/** A TCP server that answers every connection with 4 KiB, in `namespace` when given. */
function echoServer(port: number, namespace: string | undefined, address: string): void {
  const code =
    `require('node:net').createServer((s)=>{s.once('data',()=>s.end(Buffer.alloc(4096,120)));` +
    `s.on('error',()=>{})}).listen(${port},${JSON.stringify(address)})`
  const node = process.execPath
  if (namespace === undefined) start('echo server', node, ['-e', code], process.env)
  else start('echo server', 'ip', ['netns', 'exec', namespace, node, '-e', code], process.env)
}

async function makeLink(kind: string): Promise<Link> {
  const port = 7000 + (process.pid % 1000)
  if (kind === 'lo') {
    echoServer(port, undefined, '127.0.0.1')
    await sleep(500)
    return {
      name: 'lo',
      describe: 'loopback (it also carries the collector traffic and anything else on lo)',
      exchange: exchangeWith('127.0.0.1', port),
    }
  }
  const tag = process.pid % 10_000
  const namespace = `tfp${tag}`
  const outside = `tfp${tag}h`
  const inside = `tfp${tag}n`
  const net = `10.97.${process.pid % 250}`
  sh('ip', ['netns', 'add', namespace])
  cleanups.push(() => sh('ip', ['netns', 'del', namespace]))
  sh('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside])
  cleanups.push(() => {
    if (existsSync(`/sys/class/net/${outside}`)) sh('ip', ['link', 'del', outside])
  })
  sh('ip', ['link', 'set', inside, 'netns', namespace])
  // IPv6 off: no router solicitations or DAD, only what the benchmark sends (and ARP).
  sh('sysctl', ['-q', '-w', `net.ipv6.conf.${outside}.disable_ipv6=1`])
  sh('ip', ['netns', 'exec', namespace, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1'])
  sh('ip', ['addr', 'add', `${net}.1/30`, 'dev', outside])
  sh('ip', ['link', 'set', outside, 'up'])
  sh('ip', ['netns', 'exec', namespace, 'ip', 'addr', 'add', `${net}.2/30`, 'dev', inside])
  sh('ip', ['netns', 'exec', namespace, 'ip', 'link', 'set', inside, 'up'])
  sh('ip', ['netns', 'exec', namespace, 'ip', 'link', 'set', 'lo', 'up'])
  echoServer(port, namespace, `${net}.2`)
  await waitFor('the echo server in the namespace', async () => {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: `${net}.2`, port }, () => {
        s.destroy()
        r(true)
      })
      s.on('error', () => r(false))
    })
    return ok ? true : undefined
  })
  return {
    name: outside,
    describe: `veth ${outside} into network namespace ${namespace} (${net}.0/30), one TCP exchange of 300 B + 4 KiB per second`,
    exchange: exchangeWith(`${net}.2`, port),
  }
}

async function buildBundle(dir: string): Promise<string> {
  const outfile = join(dir, 'tally-agent.mjs')
  sh(process.execPath, [join(ROOT, 'scripts', 'build-agent.ts'), '--outfile', outfile])
  return outfile
}

interface Measured {
  label: string
  command: string
  main: Series
  children?: Series
  pid: number
}

interface Sampling {
  measured: Measured[]
  link: Link
  scrape: () => Promise<void>
  warmup: number
  duration: number
  sampleMs: number
  intervalSeconds: number
}

/**
 * Samples every measured process from /proc until the end of the window, exchanging traffic on
 * the link every second and scraping node_exporter at the agent's interval. Answers the window
 * actually measured (after the warm-up).
 */
async function sampleWindow(o: Sampling): Promise<{ windowStart: number; windowEnd: number }> {
  const { measured, link, scrape, warmup, duration, sampleMs, intervalSeconds } = o
  const t0 = Date.now()
  const measureFrom = t0 + warmup * 1000
  const end = measureFrom + duration * 1000
  let nextExchange = t0
  let nextScrape = t0
  let windowStart = 0
  let windowEnd = 0
  while (Date.now() < end) {
    const now = Date.now()
    const measuring = now >= measureFrom
    if (measuring && windowStart === 0) windowStart = now
    for (const m of measured) {
      m.main.add([m.pid], measuring)
      if (m.children) m.children.add(childrenOf(m.pid), measuring)
    }
    if (measuring) windowEnd = now
    if (now >= nextExchange) {
      void link.exchange()
      nextExchange += 1000
    }
    if (now >= nextScrape) {
      void scrape()
      nextScrape += intervalSeconds * 1000
    }
    if (measured.some((m) => readProc(m.pid) === undefined))
      throw new Error('a measured process exited')
    await sleep(Math.min(sampleMs, 1000) - ((Date.now() - t0) % Math.min(sampleMs, 1000)))
  }
  return { windowStart, windowEnd }
}

/** The batches the collector counted per agent, as one line. */
async function fleetBatches(url: string, admin: string): Promise<string> {
  const fleetAnswer = await fetch(`${url}/v1/fleet`, {
    headers: { authorization: `Bearer ${admin}` },
  })
  const fleetText = await fleetAnswer.text()
  return fleetAnswer.ok
    ? (JSON.parse(fleetText) as { agents: Array<{ host: string; batches: number }> }).agents
        .map((a) => `${a.host} ${a.batches}`)
        .join(', ')
    : `unknown (/v1/fleet answered ${fleetAnswer.status}: ${fleetText.slice(0, 200)})`
}

async function main(): Promise<void> {
  const duration = Number(values.duration)
  const warmup = Number(values.warmup)
  const sampleMs = Number(values.sample) * 1000
  if (!(duration > 0 && warmup >= 0 && sampleMs > 0))
    throw new Error('bad --duration/--warmup/--sample')
  const exporter = findExecutable('prometheus-node-exporter') ?? findExecutable('node_exporter')
  if (exporter === undefined) {
    throw new Error(
      'prometheus-node-exporter is not installed (apt-get install -y prometheus-node-exporter)',
    )
  }
  const tcpdump = findExecutable('tcpdump')
  if (tcpdump === undefined) throw new Error('tcpdump is not installed (apt-get install tcpdump)')
  const root = process.getuid?.() === 0
  const linkKind = values.link ?? (root && findExecutable('ip') ? 'netns' : 'lo')
  mkdirSync(values.tmp, { recursive: true })
  const work = mkdtempSync(join(values.tmp, 'footprint-'))
  cleanups.push(() => rmSync(work, { recursive: true, force: true }))

  const bundle = values.agent ? resolve(values.agent) : await buildBundle(work)
  const bundleDir = join(work, 'agent')
  mkdirSync(bundleDir)
  copyFileSync(bundle, join(bundleDir, 'tally-agent.mjs'))
  const nodeVersion = sh(values.node, ['--version']).trim()
  const nodeOptions = unitNodeOptions()
  const serviceEnv = unitEnvironment()

  const collectorPort = await freePort()
  const dataDir = join(work, 'collector')
  const collector = start(
    'collector',
    process.execPath,
    [join(ROOT, 'bin', 'tally.ts'), 'collector', 'run'],
    {
      ...process.env,
      TALLY_DATA_DIR: dataDir,
      TALLY_LISTEN_PORT: String(collectorPort),
      TALLY_LOG_LEVEL: 'warn',
    },
  )
  const url = `http://127.0.0.1:${collectorPort}`
  await waitFor('the collector', async () => {
    if (collector.child.exitCode !== null) throw new Error(collector.output())
    return (await fetch(`${url}/readyz`)).ok ? true : undefined
  })
  const admin = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim()
  const enrollToken = async (site: string): Promise<string> => {
    const response = await fetch(`${url}/v1/admin/enroll-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ site, max_uses: 1 }),
    })
    if (!response.ok) throw new Error(`enroll token: ${response.status} ${await response.text()}`)
    return ((await response.json()) as { token: string }).token
  }

  const link = await makeLink(linkKind)
  const agentEnv = async (name: string): Promise<NodeJS.ProcessEnv> => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...serviceEnv,
      TALLY_COLLECTOR_URL: url,
      TALLY_ENROLLMENT_TOKEN: await enrollToken('footprint'),
      TALLY_ENROLLMENT_HOSTNAME: name,
      TALLY_STATE_DIR: join(work, `${name}-state`),
      TALLY_CAPTURE_INTERFACE: link.name,
      TALLY_CAPTURE_TCPDUMP_PATH: tcpdump,
      TALLY_LOG_LEVEL: 'info',
    }
    if (values.interval !== undefined) env.TALLY_INTERVAL_SECONDS = values.interval
    delete env.NODE_OPTIONS
    return env
  }

  const measured: Measured[] = []
  const bundled = start(
    'bundled agent',
    values.node,
    [...nodeOptions, join(bundleDir, 'tally-agent.mjs'), 'run'],
    await agentEnv('footprint-bundle'),
    bundleDir,
  )
  measured.push({
    label: 'tally agent (bundle)',
    command: `${Object.entries(serviceEnv)
      .map(([k, v]) => `${k}=${v} `)
      .join('')}${values.node} ${[...nodeOptions, 'tally-agent.mjs', 'run'].join(' ')}`,
    main: new Series('tally agent (bundle)'),
    children: new Series('  its tcpdump'),
    pid: bundled.child.pid as number,
  })
  if (values.source) {
    const source = start(
      'source agent',
      values.node,
      [...nodeOptions, join(ROOT, 'bin', 'tally-agent.ts'), 'run'],
      await agentEnv('footprint-source'),
    )
    measured.push({
      label: 'tally agent (source tree)',
      command: `${values.node} ${[...nodeOptions, 'bin/tally-agent.ts', 'run'].join(' ')}`,
      main: new Series('tally agent (source tree)'),
      children: new Series('  its tcpdump'),
      pid: source.child.pid as number,
    })
  }
  const exporterPort = await freePort()
  const ne = start(
    'node_exporter',
    exporter,
    [`--web.listen-address=127.0.0.1:${exporterPort}`],
    process.env,
  )
  measured.push({
    label: 'node_exporter',
    command: `${exporter} --web.listen-address=127.0.0.1:PORT (default collectors)`,
    main: new Series('node_exporter'),
    pid: ne.child.pid as number,
  })
  const exporterVersion = (() => {
    try {
      return /version (\S+)/.exec(sh(exporter, ['--version']))?.[1] ?? '?'
    } catch (err) {
      const text = String((err as { stderr?: string }).stderr ?? '')
      return /version (\S+)/.exec(text)?.[1] ?? '?'
    }
  })()

  const intervalSeconds = Number(values.interval ?? 10)
  let scrapes = 0
  let scrapeBytes = 0
  const scrape = async () => {
    try {
      const text = await (await fetch(`http://127.0.0.1:${exporterPort}/metrics`)).text()
      scrapes++
      scrapeBytes = text.length
    } catch {
      // counted by its absence
    }
  }

  say(
    `agent ${bundle}, Node ${nodeVersion}${nodeOptions.length ? ` ${nodeOptions.join(' ')}` : ''}, link ${link.describe}; warm-up ${warmup} s, measuring ${duration} s`,
  )
  const { windowStart, windowEnd } = await sampleWindow({
    measured,
    link,
    scrape,
    warmup,
    duration,
    sampleMs,
    intervalSeconds,
  })
  const batches = await fleetBatches(url, admin)
  const windowSeconds = (windowEnd - windowStart) / 1000

  const rows = measured.flatMap((m) => (m.children ? [m.main, m.children] : [m.main]))
  const mib = (kib: number) => (kib / 1024).toFixed(1)
  const table = [
    [
      'process',
      'median RSS MiB',
      'max RSS MiB',
      'peak (VmHWM) MiB',
      '% of a core (avg)',
      'samples',
    ],
    ...rows.map((s) => [
      s.label,
      mib(median([...s.rss].sort((a, b) => a - b))),
      mib(Math.max(...s.rss, 0)),
      mib(s.hwmKiB),
      ((100 * s.ticks()) / CLK_TCK / windowSeconds).toFixed(2),
      String(s.rss.length),
    ]),
  ]
  const widths = table[0]?.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length))) ?? []
  const lines = table.map((r) =>
    r
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  '),
  )
  const agent = measured[0] as Measured
  const agentRss = median([...agent.main.rss].sort((a, b) => a - b)) / 1024
  const agentCpu = (100 * agent.main.ticks()) / CLK_TCK / windowSeconds
  const exporterRow = measured.find((m) => m.label === 'node_exporter') as Measured
  const exporterRss = median([...exporterRow.main.rss].sort((a, b) => a - b)) / 1024
  const exporterCpu = (100 * exporterRow.main.ticks()) / CLK_TCK / windowSeconds
  const verdict = (ok: boolean) => (ok ? 'MET' : 'MISSED')
  const out = [
    `${cpus().length} x ${cpus()[0]?.model.trim() ?? '?'}, Linux ${release()}, Node ${nodeVersion}, node_exporter ${exporterVersion}`,
    `agent interval ${intervalSeconds} s, capture on ${link.describe}`,
    `node_exporter scraped every ${intervalSeconds} s (${scrapes} scrapes, ${(scrapeBytes / 1024).toFixed(0)} KiB each)`,
    `measured ${windowSeconds.toFixed(0)} s after a ${warmup} s warm-up, sampled every ${sampleMs / 1000} s from /proc (CLK_TCK ${CLK_TCK})`,
    ...measured.map((m) => `${m.label}: ${m.command}`),
    `batches at the collector: ${batches}`,
    '',
    ...lines,
    '',
    `target: agent (without its tcpdump) <= ${TARGET_RSS_MIB} MiB RSS: ${agentRss.toFixed(1)} MiB ${verdict(agentRss <= TARGET_RSS_MIB)}; ` +
      `<= ${TARGET_CPU_PERCENT}% of a core: ${agentCpu.toFixed(2)}% ${verdict(agentCpu <= TARGET_CPU_PERCENT)}`,
    `against node_exporter in this run: RSS x${(agentRss / exporterRss).toFixed(1)}, CPU x${(agentCpu / exporterCpu).toFixed(1)}`,
  ]
  process.stdout.write(`${out.join('\n')}\n`)
  const results = join(values.tmp, 'results')
  mkdirSync(results, { recursive: true })
  const json = join(results, 'footprint-latest.json')
  writeFileSync(
    json,
    JSON.stringify(
      {
        when: new Date().toISOString(),
        windowSeconds,
        rows: rows.map((s) => ({
          label: s.label,
          rssMiBMedian: median([...s.rss].sort((a, b) => a - b)) / 1024,
          rssMiBMax: Math.max(...s.rss, 0) / 1024,
          hwmMiB: s.hwmKiB / 1024,
          cpuPercent: (100 * s.ticks()) / CLK_TCK / windowSeconds,
        })),
      },
      null,
      2,
    ),
  )
  say(`figures also in ${json}`)
}

try {
  await main()
} catch (err) {
  say(`failed: ${(err as Error).message}`)
  process.exitCode = 1
} finally {
  await stopAndClean()
}
