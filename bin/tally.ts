#!/usr/bin/env node
// Node caches compiled code between runs (a no-op where the cache is unavailable); the program
// is imported after this so its modules use the cache. `tally agent ...` loads the agent's
// commands alone (cli/agent-main.ts), not the collector's.
import module from 'node:module'

module.enableCompileCache?.()
const { main } =
  process.argv[2] === 'agent'
    ? await import('../cli/agent-main.ts')
    : await import('../cli/main.ts')
await main(process.argv)
