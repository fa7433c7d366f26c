#!/usr/bin/env node
/**
 * `tally-agent`: the agent's commands alone (run, check, aggregate), for a delegation host. This is
 * the entry `npm run build:agent` bundles into one file, dist/tally-agent.mjs, so it must import
 * nothing from collector/ (the build fails if it does). In the repository it also runs as is:
 * `node bin/tally-agent.ts run -c deploy/agent.yaml`.
 */
import { CommanderError } from 'commander'
import { agentCommand } from '../agent/cli.ts'
import { AGENT_VERSION } from '../agent/version.ts'

function agentProgram() {
  return agentCommand()
    .name('tally-agent')
    .description(
      'The Tally agent: it sends host metrics and aggregated site usage to the collector every ' +
        'interval. `tally-agent run --config /etc/tally/agent.yaml` is what the service runs.',
    )
    .version(AGENT_VERSION)
}

try {
  await agentProgram().parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode)
  process.stderr.write(`tally-agent: ${(err as Error).message}\n`)
  process.exit(1)
}
