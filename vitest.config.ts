import { availableParallelism } from 'node:os'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // chDB binds one data directory per process: every test file gets its own process (forks,
    // isolated), and a file reads another process's store only through test/e2e/query-store.ts.
    pool: 'forks',
    // Two files at a time even on two cores (vitest would take one, cores - 1): most of the
    // suite's time is spent waiting on agents' intervals, collectors starting and traffic, not
    // computing, so a second file overlaps that wait. The network-namespace tests name their
    // LANs apart (test/e2e/netns/lan.ts) and every server takes a free port.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // No process a test starts may outlive its file, nor the run (see test/setup/leftovers.ts).
    globalSetup: ['test/setup/global.ts'],
    setupFiles: ['test/setup/per-file.ts'],
  },
})
