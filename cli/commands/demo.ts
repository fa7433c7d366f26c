/** `tally demo`: a collector and an agent on one machine (cli/demo.ts runs them). */

import type { CommandSpec } from '../command-table.ts'
import type { DemoOptions } from '../demo.ts'

export const demoCommand: CommandSpec<DemoOptions> = {
  name: 'demo',
  description:
    'Run a collector on the embedded engine and an agent for this host, enrolled ' +
    'automatically (what `npm start` runs). Needs no root and no ClickHouse server. ' +
    'The web console is at URL/console/; the demo makes one person per role of a case, ' +
    'their tokens in DATA_DIR/people/ (demo only).',
  options: [
    { flags: '-c, --config <file>', description: 'collector YAML config file' },
    { flags: '-p, --port <port>', description: 'collector port (default 8080)', parse: Number },
    { flags: '-d, --data-dir <dir>', description: 'data directory (default ./data)' },
    {
      flags: '-i, --interval <seconds>',
      description: 'agent interval in seconds (default 10)',
      parse: Number,
    },
  ],
  run: async (options) => {
    const { runDemo } = await import('../demo.ts')
    await runDemo(options)
  },
}
