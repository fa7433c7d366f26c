/** The `tally` command line: the table of command families, and commander built from it. */
import { Command, CommanderError } from 'commander'
import { AGENT_VERSION } from '../agent/version.ts'
import { buildCommand, type CommandEntry } from './command-table.ts'
import { adminCommands } from './commands/admin.ts'
import { agentCommands } from './commands/agent.ts'
import { caseCommands, oiosCommands } from './commands/cases.ts'
import { collectorCommands } from './commands/collector.ts'
import { demoCommand } from './commands/demo.ts'
import { fleetCommand, usageCommand } from './commands/fleet-usage.ts'
import { registerCommands } from './commands/register.ts'

/** Every command of `tally`, in the order --help lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  demoCommand,
  collectorCommands,
  agentCommands,
  adminCommands,
  fleetCommand,
  usageCommand,
  caseCommands,
  oiosCommands,
  registerCommands,
]

export function program(): Command {
  const tally = new Command('tally')
    .description(
      'Tally: privacy-first network telemetry. Agents on hosts send aggregated metrics to a ' +
        'collector that stores them in ClickHouse. Start with `tally demo` on one machine.',
    )
    .version(AGENT_VERSION)
  for (const entry of COMMANDS) tally.addCommand(buildCommand(entry))
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
