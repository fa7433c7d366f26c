/**
 * `tally demo` (what `npm start` runs): a collector on the embedded engine and an agent for this
 * host, enrolled automatically, on one machine and without root. Logs go to files in the data
 * directory; the screen shows where things are and what the fleet API reports.
 */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { CaptureStatus } from '../agent/aggregate/live-traffic.ts'
import { loadAgentConfig } from '../agent/config.ts'
import { readCredential } from '../agent/enroll.ts'
import { startAgent } from '../agent/run.ts'
import { loadCollectorConfig } from '../collector/config.ts'
import { startCollector } from '../collector/server.ts'
import { writeFileAtomic } from '../common/atomic-file.ts'
import { createLogger } from '../common/log.ts'
import { untilSignal } from '../common/signals.ts'
import { admin, usage } from '../protocol/api/index.ts'
import { call, readTokenFile } from '../protocol/client.ts'
import { DEFAULT_COLLECTOR_URL, DEFAULT_TOKEN_FILE } from './api-options.ts'
import { formatFleet } from './commands/fleet-usage.ts'
import { makeDemoPeople, peopleDirOf } from './demo-people.ts'
import { refuseSharedDataDir } from './preflight.ts'

export interface DemoOptions {
  config?: string
  port?: number
  dataDir?: string
  interval?: number
}

/** How long the demo waits before it shows a minute of site usage (a site: 600 s). */
const DEMO_RELEASE_AFTER_SECONDS = 20

export async function runDemo(options: DemoOptions): Promise<void> {
  const config = loadCollectorConfig(options.config)
  if (options.port !== undefined) config.listen.port = options.port
  if (options.dataDir !== undefined) config.data_dir = options.dataDir
  if (options.interval !== undefined) config.enrollment.interval_seconds = options.interval
  refuseSharedDataDir(config.data_dir)
  // A site waits ten minutes for late batches before a minute of usage is judged against k; the
  // demo's agent sits beside its collector, so a newcomer sees usage within a minute or so.
  if (options.config === undefined && process.env.TALLY_USAGE_RELEASE_AFTER_SECONDS === undefined)
    config.usage.release_after_seconds = DEMO_RELEASE_AFTER_SECONDS
  const collectorLog = createLogger(
    config.log_level,
    'collector',
    join(config.data_dir, 'logs', 'collector.log'),
  )
  // One machine plays both sides of the demo: OIOS's bootstrap token is written beside the
  // data, where a site would never keep it (docs/privacy.md, "Roles and who grants them").
  const demoOiosFile =
    config.oios.bootstrap_token_file === undefined
      ? join(config.data_dir, 'oios-bootstrap.token')
      : undefined
  config.oios.bootstrap_token_file ??= demoOiosFile
  const collector = await startCollector(config, collectorLog)
  const token = readTokenFile(collector.adminTokenFile)
  const api = { collectorUrl: collector.url, token }
  const secondAdminFile = await demoSecondAdmin(api, collector.dataDir)
  // The people of a case are made while the agent starts; a line after the banner says how it
  // went, and a failure there leaves the demo running.
  const people = makeDemoPeople({
    collectorUrl: collector.url,
    adminToken: token,
    secondAdminFile: join(collector.dataDir, 'admin2.token'),
    oiosBootstrapFile: demoOiosFile,
    dataDir: collector.dataDir,
  })

  const stateDir = join(collector.dataDir, 'agent')
  // The agent's own settings (capture.*, spool.*) come from TALLY_* variables as usual; where it
  // sends and keeps its state is the demo's.
  const agentConfig = loadAgentConfig()
  agentConfig.collector.url = collector.url
  agentConfig.state_dir = stateDir
  if (!existsSync(join(stateDir, 'credential.json')) || readCredential(stateDir) === undefined) {
    const issued = await call(api, admin.createEnrollToken, {
      body: { site: 'demo', ttl_hours: 1, max_uses: 1 },
    })
    agentConfig.enrollment.token = issued.token
  }
  const stop = new AbortController()
  const agentLog = createLogger(
    config.log_level,
    'agent',
    join(collector.dataDir, 'logs', 'agent.log'),
  )
  const agent = await startAgent(agentConfig, agentLog, stop.signal)

  const interval = config.enrollment.interval_seconds
  // Say what the capture does only once tcpdump has started or failed: never claim a capture
  // that is not happening.
  const capture = await agent.traffic?.settled(CAPTURE_SETTLE_MS)
  const hints = demoHints({
    url: collector.url,
    tokenFile: collector.adminTokenFile,
    k: config.usage.k,
    options,
  })
  process.stdout.write(
    [
      'Tally demo: a collector and an agent for this host.',
      '',
      `  collector   ${collector.url}   (embedded ClickHouse engine)`,
      `  console     ${collector.url}/console/   (sign in with a user token)`,
      `  data        ${collector.dataDir}`,
      `  admin token ${collector.adminTokenFile}`,
      `  2nd admin   ${secondAdminFile}   (demo only: confirms what the first proposes)`,
      `  people      ${join(peopleDirOf(collector.dataDir), '*.token')}   (demo only: sign in to the console as each)`,
      `  logs        ${join(collector.dataDir, 'logs')}/`,
      '',
      `The agent (${agent.agentId}) sends host metrics every ${interval} s. See the fleet:`,
      ...hints.fleet.map((line) => `  ${line}`),
      '',
      ...captureLines(agent.traffic?.interface, capture),
      ...hints.usage.map((line) => `  ${line}`),
      '',
      'Ctrl-C stops both and delivers what is in flight.',
      '',
    ].join('\n'),
  )
  void people.then((line) => process.stdout.write(`${line}\n`))
  let captureState = capture?.state ?? ''
  const report = setInterval(() => {
    const status = agent.traffic?.status
    if (status !== undefined && status.state !== captureState && status.state !== 'starting') {
      captureState = status.state
      process.stdout.write(
        status.state === 'running'
          ? `traffic capture running on ${agent.traffic?.interface}\n`
          : `traffic capture not running: ${status.reason}; host metrics go on\n`,
      )
    }
    call(api, usage.fleet)
      .then((fleet) => {
        const active = fleet.agents.filter((a) => a.last_seen !== null)
        if (active.length > 0)
          process.stdout.write(`${new Date().toISOString()} fleet: ${formatFleet(active)}\n`)
      })
      .catch((err: Error) => process.stdout.write(`fleet unavailable: ${err.message}\n`))
  }, interval * 1000)

  await Promise.race([untilSignal(), agent.done])
  process.stdout.write('\nstopping: delivering spooled batches, then closing the collector...\n')
  clearInterval(report)
  stop.abort()
  await agent.done
  await people
  await collector.close()
  process.stdout.write('stopped.\n')
}

/**
 * The demo's second admin: every role grant is confirmed by an admin other than the one who
 * proposed it, so one machine needs two. The founder makes its one extra admin on the first
 * run, and the demo replaces that provisional token at once, as the second person would.
 */
async function demoSecondAdmin(
  api: { collectorUrl: string; token: string },
  dataDir: string,
): Promise<string> {
  const file = join(dataDir, 'admin2.token')
  if (existsSync(file)) return file
  const made = await call(api, admin.proposeUser, {
    body: { name: 'second admin (demo)', roles: ['admin'] },
  })
  if (made.token === undefined) return `${file} (not made: this collector has its second admin)`
  const replaced = await call(
    { collectorUrl: api.collectorUrl, token: made.token },
    admin.replaceOwnToken,
  )
  writeFileAtomic(file, `${replaced.token}\n`, 0o600)
  return file
}

/** How long the banner waits for tcpdump to start capturing or to fail. */
const CAPTURE_SETTLE_MS = 5_000

/** The banner's lines about the capture, true to its state. */
export function captureLines(
  iface: string | undefined,
  status: CaptureStatus | undefined,
): string[] {
  if (iface === undefined || status === undefined)
    return ['Traffic capture is off (capture.interface: none).']
  switch (status.state) {
    case 'running':
      return [`Traffic: capturing packet headers on ${iface} with tcpdump, into site usage:`]
    case 'starting':
      return [
        `Traffic: tcpdump is starting on ${iface}; a line below says when it captures, or why not.`,
      ]
    default:
      return [
        `Traffic capture on ${iface} is not running: ${status.reason}`,
        'Host metrics go on. Site usage, once capture works:',
      ]
  }
}

/**
 * The commands the banner suggests, for the collector and token file actually in effect: the
 * CLI's defaults are http://127.0.0.1:8080 and ./data/admin.token, so anything else is spelled
 * out, and a restart hint repeats the demo's own options.
 */
export function demoHints(what: {
  url: string
  tokenFile: string
  k: number
  options: DemoOptions
}): { fleet: string[]; usage: string[] } {
  const target = [
    ...(what.url === DEFAULT_COLLECTOR_URL ? [] : ['--collector', what.url]),
    ...(resolve(what.tokenFile) === resolve(DEFAULT_TOKEN_FILE)
      ? []
      : ['--token-file', shellWord(what.tokenFile)]),
  ]
  const tally = (command: string) => ['npm run tally --', command, ...target].join(' ')
  const bearer = `-H "Authorization: Bearer $(cat ${shellWord(what.tokenFile)})"`
  const again = [
    ...(what.options.config === undefined ? [] : ['--config', shellWord(what.options.config)]),
    ...(what.options.port === undefined ? [] : ['--port', String(what.options.port)]),
    ...(what.options.dataDir === undefined ? [] : ['--data-dir', shellWord(what.options.dataDir)]),
    ...(what.options.interval === undefined ? [] : ['--interval', String(what.options.interval)]),
  ]
  return {
    fleet: [tally('fleet'), `curl -s ${bearer} ${what.url}/v1/fleet`],
    usage: [
      tally('usage --by service'),
      `curl -s ${bearer} "${what.url}/v1/usage?by=service"`,
      `A minute of usage shows once it is over (about a minute later), and only when k=${what.k} hosts or more contributed;` +
        ` to see this one host alone: TALLY_USAGE_K=1 npm start${again.length === 0 ? '' : ` -- ${again.join(' ')}`}`,
    ],
  }
}

/** A path as one shell word (the banner's lines are meant to be pasted). */
const shellWord = (text: string): string =>
  /^[\w./:@%+=-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`
