/**
 * `tally agent ...`: the agent's commands under the tally name, for bin/tally.ts to load instead
 * of the whole command line (cli/main.ts) when the first word is `agent`. An agent never needs
 * the collector's command modules nor the schema library they import, and loading them cost
 * `tally agent aggregate` about a sixth of its run on a million packets.
 */
import { Command, CommanderError } from 'commander'
import { agentCommand } from '../agent/cli.ts'
import { AGENT_VERSION } from '../agent/version.ts'

export async function main(argv: string[]): Promise<void> {
  try {
    await new Command('tally').version(AGENT_VERSION).addCommand(agentCommand()).parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode)
    process.stderr.write(`tally: ${(err as Error).message}\n`)
    process.exit(1)
  }
}
