/**
 * `tally agent ...`: the agent's commands, which the agent builds itself (agent/cli.ts) so that
 * `tally agent` can load them alone (cli/agent-main.ts).
 */
import { agentCommand } from '../../agent/cli.ts'
import type { BuiltCommand } from '../command-table.ts'

export const agentCommands: BuiltCommand = { name: 'agent', build: agentCommand }
