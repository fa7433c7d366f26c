/** The `tally` command line. */
import { Command, CommanderError } from 'commander'
import { agentCommand } from '../agent/cli.ts'
import { AGENT_VERSION } from '../agent/version.ts'
import { caseCommand, oiosCommand } from './cases.ts'
import { adminCommand, collectorCommand, fleetCommand, usageCommand } from './collector.ts'
import { registerCommand } from './register.ts'

export function program(): Command {
  const tally = new Command('tally')
    .description(
      'Tally: privacy-first network telemetry. Agents on hosts send aggregated metrics to a ' +
        'collector that stores them in ClickHouse. Start with `tally demo` on one machine.',
    )
    .version(AGENT_VERSION)
  tally
    .command('demo')
    .description(
      'Run a collector on the embedded engine and an agent for this host, enrolled ' +
        'automatically (what `npm start` runs). Needs no root and no ClickHouse server.',
    )
    .option('-c, --config <file>', 'collector YAML config file')
    .option('-p, --port <port>', 'collector port (default 8080)', Number)
    .option('-d, --data-dir <dir>', 'data directory (default ./data)')
    .option('-i, --interval <seconds>', 'agent interval in seconds (default 10)', Number)
    .action(
      async (options: { config?: string; port?: number; dataDir?: string; interval?: number }) => {
        const { runDemo } = await import('./demo.ts')
        await runDemo(options)
      },
    )
  tally.addCommand(collectorCommand())
  tally.addCommand(agentCommand())
  tally.addCommand(adminCommand())
  tally.addCommand(fleetCommand())
  tally.addCommand(usageCommand())
  tally.addCommand(caseCommand())
  tally.addCommand(oiosCommand())
  tally.addCommand(registerCommand())
  return tally
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode)
    process.stderr.write(`tally: ${(err as Error).message}\n`)
    process.exit(1)
  }
}
