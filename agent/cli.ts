/**
 * `tally agent ...`: what runs on a delegation host. Imports nothing from the collector, and each
 * command loads its implementation when it runs, so `tally agent aggregate` starts without the
 * agent's network, config and logging stack.
 */
import { Command } from 'commander'
import { DEFAULT_ORGANISATION_PREFIXES } from './aggregate/prefixes.ts'

export function agentCommand(): Command {
  const agent = new Command('agent').description(
    'Run the agent on a host: host metrics and traffic aggregates every interval, subject captures only under a verified grant',
  )
  agent
    .command('run', { isDefault: true })
    .description(
      'Start the agent and run until SIGINT or SIGTERM. At its first start it enrolls with ' +
        'enrollment.token (from `tally admin enroll-token`) and keeps its own credential in ' +
        'state_dir. Batches wait in an on-disk spool until the collector acknowledges them.',
    )
    .option(
      '-c, --config <file>',
      'YAML config file (every setting also has a TALLY_* environment override)',
    )
    .action(async (options: { config?: string }) => {
      const { loadAgentConfig } = await import('./config.ts')
      const { createLogger } = await import('../common/log.ts')
      const { untilSignal } = await import('../common/signals.ts')
      const { startAgent } = await import('./run.ts')
      const config = loadAgentConfig(options.config)
      const log = createLogger(config.log_level, 'agent')
      const stop = new AbortController()
      const run = await startAgent(config, log, stop.signal)
      process.stderr.write(`agent ${run.agentId} sending to ${config.collector.url}\n`)
      await Promise.race([untilSignal().then(() => stop.abort()), run.done])
      stop.abort()
      await run.done
    })
  agent
    .command('check')
    .description(
      'Validate an agent config file and print the settings in effect, or exactly what is wrong',
    )
    .requiredOption('-c, --config <file>', 'YAML config file to check')
    .action(async (options: { config: string }) => {
      const { loadAgentConfig } = await import('./config.ts')
      const { maskSecrets } = await import('../common/config.ts')
      const config = loadAgentConfig(options.config)
      process.stdout.write(
        `${options.config}: valid\n${JSON.stringify(maskSecrets(config), null, 2)}\n`,
      )
    })
  agent
    .command('aggregate')
    .description(
      'Print the aggregates of a capture file (pcap or pcapng) and how fast they were made: ' +
        'bytes, packets and new flows by direction, IP version, transport, service and peer class, ' +
        'as the live agent sends them. Never prints an address.',
    )
    .argument('<file>', 'a pcap (tcpdump -w) or pcapng (Wireshark, dumpcap) file')
    .option('--json', 'print one JSON document')
    .option(
      '--mode <mode>',
      'gateway: directions relative to --site-prefix; host: relative to --local-address',
      'gateway',
    )
    .option('--site-prefix <cidr...>', "the site's address ranges", [])
    .option('--local-address <address...>', "the host's own addresses (host mode)", [])
    .option(
      '--organisation-prefix <cidr...>',
      "the organisation's ranges",
      DEFAULT_ORGANISATION_PREFIXES,
    )
    .option(
      '--flow-idle-seconds <seconds>',
      'a flow idle this long counts as new again',
      Number,
      60,
    )
    .action(
      async (
        file: string,
        options: {
          json?: boolean
          mode: string
          sitePrefix: string[]
          localAddress: string[]
          organisationPrefix: string[]
          flowIdleSeconds: number
        },
      ) => {
        const { aggregateFile, formatReport } = await import('./aggregate/offline.ts')
        const { parsePrefix } = await import('./aggregate/prefixes.ts')
        if (options.mode !== 'host' && options.mode !== 'gateway') {
          throw new Error(`--mode must be host or gateway, not ${options.mode}`)
        }
        const report = await aggregateFile(file, {
          mode: options.mode,
          localAddresses: options.localAddress.map(parsePrefix),
          sitePrefixes: options.sitePrefix.map(parsePrefix),
          organisationPrefixes: options.organisationPrefix.map(parsePrefix),
          flowIdleMs: options.flowIdleSeconds * 1000,
        })
        process.stdout.write(
          options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`,
        )
      },
    )
  return agent
}
