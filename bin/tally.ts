#!/usr/bin/env node
// Node caches compiled code between runs (a no-op where the cache is unavailable); the program
// is imported after this so its modules use the cache. `tally agent ...` loads the agent's
// commands alone (cli/agent-main.ts), not the collector's.
import module from 'node:module'
import { detachStdinFromEngine } from '../common/stdin.ts'

module.enableCompileCache?.()
// The commands that may open the embedded engine keep stdin away from it before any thread of
// theirs could open a file (common/stdin.ts says why).
if (process.argv[2] === 'demo' || process.argv[2] === 'collector') detachStdinFromEngine()
const { main } =
  process.argv[2] === 'agent'
    ? await import('../cli/agent-main.ts')
    : await import('../cli/main.ts')
await main(process.argv)
