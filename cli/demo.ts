/**
 * `tally demo` (what `npm start` runs): a collector on the embedded engine and an agent for this
 * host, enrolled automatically, on one machine and without root. Logs go to files in the data
 * directory; the screen shows where things are and what the fleet API reports.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadAgentConfig } from '../agent/config.ts'
import { readCredential } from '../agent/enroll.ts'
import { startAgent } from '../agent/run.ts'
import { callApi, readTokenFile } from '../collector/admin-client.ts'
import { formatFleet } from '../collector/cli.ts'
import { loadCollectorConfig } from '../collector/config.ts'
import { startCollector } from '../collector/server.ts'
import type { FleetAgent } from '../collector/store/fleet.ts'
import { createLogger } from '../common/log.ts'
import { untilSignal } from '../common/signals.ts'

export interface DemoOptions {
  config?: string
  port?: number
  dataDir?: string
  interval?: number
}

export async function runDemo(options: DemoOptions): Promise<void> {
  const config = loadCollectorConfig(options.config)
  if (options.port !== undefined) config.listen.port = options.port
  if (options.dataDir !== undefined) config.data_dir = options.dataDir
  if (options.interval !== undefined) config.enrollment.interval_seconds = options.interval
  const collectorLog = createLogger(
    config.log_level,
    'collector',
    join(config.data_dir, 'logs', 'collector.log'),
  )
  const collector = await startCollector(config, collectorLog)
  const token = readTokenFile(collector.adminTokenFile)
  const api = { collectorUrl: collector.url, token }

  const stateDir = join(collector.dataDir, 'agent')
  // The agent's own settings (capture.*, spool.*) come from TALLY_* variables as usual; where it
  // sends and keeps its state is the demo's.
  const agentConfig = loadAgentConfig()
  agentConfig.collector.url = collector.url
  agentConfig.state_dir = stateDir
  if (!existsSync(join(stateDir, 'credential.json')) || readCredential(stateDir) === undefined) {
    const issued = await callApi<{ token: string }>(api, 'POST', '/v1/admin/enroll-tokens', {
      site: 'demo',
      ttl_hours: 1,
      max_uses: 1,
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
  process.stdout.write(
    [
      'Tally demo: a collector and an agent for this host.',
      '',
      `  collector   ${collector.url}   (embedded ClickHouse engine)`,
      `  data        ${collector.dataDir}`,
      `  admin token ${collector.adminTokenFile}`,
      `  logs        ${join(collector.dataDir, 'logs')}/`,
      '',
      `The agent (${agent.agentId}) sends host metrics every ${interval} s. See the fleet:`,
      `  curl -s -H "Authorization: Bearer $(cat ${collector.adminTokenFile})" ${collector.url}/v1/fleet`,
      '  npm run tally -- fleet',
      '',
      agent.traffic === undefined
        ? 'Traffic capture is off (capture.interface: none).'
        : `Traffic: captured on ${agent.traffic.interface} with tcpdump (headers only) into site usage:`,
      ...(agent.traffic === undefined
        ? []
        : [
            `  curl -s -H "Authorization: Bearer $(cat ${collector.adminTokenFile})" "${collector.url}/v1/usage?by=service"`,
            `  A usage bucket is shown only when k=${config.usage.k} hosts or more contributed;` +
              ' to see this one host alone: TALLY_USAGE_K=1 npm start',
          ]),
      '',
      'Ctrl-C stops both and delivers what is in flight.',
      '',
    ].join('\n'),
  )
  let captureState = ''
  const report = setInterval(() => {
    const status = agent.traffic?.status
    if (status !== undefined && status.state !== captureState && status.state !== 'starting') {
      captureState = status.state
      process.stdout.write(
        status.state === 'running'
          ? `traffic capture running on ${agent.traffic?.interface}\n`
          : `traffic capture unavailable: ${status.reason}; host metrics go on\n`,
      )
    }
    callApi<{ agents: FleetAgent[] }>(api, 'GET', '/v1/fleet')
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
  await collector.close()
  process.stdout.write('stopped.\n')
}
