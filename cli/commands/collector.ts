/** `tally collector run | check | migrate`: the collector's own process and its configuration. */
import type { CommandSpec } from '../command-table.ts'
import { migrateCommand } from './migrate.ts'

const RUN: CommandSpec<{ config?: string }> = {
  name: 'run',
  isDefault: true,
  description:
    'Start the collector and serve until SIGINT or SIGTERM. On first start it creates the ' +
    'database schema, an admin token file (<data_dir>/admin.token) and a grant-signing key.',
  options: [
    {
      flags: '-c, --config <file>',
      description: 'YAML config file (every setting also has a TALLY_* environment override)',
    },
  ],
  run: async (options) => {
    // The server stack (engine, OpenTelemetry) loads only when a collector runs.
    const { loadCollectorConfig } = await import('../../collector/config.ts')
    const { createLogger } = await import('../../common/log.ts')
    const { untilSignal } = await import('../../common/signals.ts')
    const { startCollector } = await import('../../collector/server.ts')
    const { explainStartFailure, refuseSharedDataDir } = await import('../preflight.ts')
    const config = loadCollectorConfig(options.config)
    if (config.clickhouse.url === undefined) refuseSharedDataDir(config.data_dir)
    const logger = createLogger(config.log_level, 'collector')
    const running = await startCollector(config, logger).catch((err: unknown) => {
      throw explainStartFailure(err, config.clickhouse.url)
    })
    process.stderr.write(
      `collector listening on ${running.url} (${running.engine} engine, data in ${running.dataDir})\n` +
        `admin token: ${running.adminTokenFile}\n`,
    )
    if (running.oiosBootstrapToken !== undefined) {
      // Shown this once and stored nowhere (only its hash is): it is OIOS's, not the starter's.
      process.stderr.write(
        `\nOIOS bootstrap token (shown once; hand it to OIOS, who replaces it at once with\n` +
          `\`tally admin replace-token\`; set oios.bootstrap_token_file to have it written\n` +
          `outside the data directory instead):\n${running.oiosBootstrapToken}\n\n`,
      )
    }
    await untilSignal()
    await running.close()
  },
}

const CHECK: CommandSpec<{ config: string }> = {
  name: 'check',
  description:
    'Validate a collector config file and print the settings in effect, or exactly what is wrong',
  options: [
    { flags: '-c, --config <file>', description: 'YAML config file to check', required: true },
  ],
  run: async (options) => {
    const { loadCollectorConfig } = await import('../../collector/config.ts')
    const { maskSecrets } = await import('../../common/config.ts')
    const config = loadCollectorConfig(options.config)
    process.stdout.write(
      `${options.config}: valid\n${JSON.stringify(maskSecrets(config), null, 2)}\n`,
    )
  },
}

export const collectorCommands: CommandSpec = {
  name: 'collector',
  description:
    'Run the collector: the HTTP API agents send to, on ClickHouse (embedded by default), ' +
    'and the web console for the people of an investigation at /console/',
  commands: [RUN, CHECK, migrateCommand],
}
