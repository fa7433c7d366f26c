#!/usr/bin/env node
// Node caches compiled code between runs (a no-op where the cache is unavailable); the program
// is imported after this so its modules use the cache.
import module from 'node:module'

module.enableCompileCache?.()
const { main } = await import('../cli/main.ts')
await main(process.argv)
