/**
 * A reporter that prints, after the run, the slowest tests and the slowest beforeAll/afterAll
 * hooks with the share of their timeout they used (for hooks: the configured hookTimeout): a test
 * that creeps towards its timeout shows here long before it fails on a slower machine. Figures
 * only; it never fails the run.
 */
import type { ReportedHookContext, Reporter, TestCase, TestModule } from 'vitest/node'

const SHOWN = 10

interface Timed {
  what: string
  ms: number
  timeoutMs: number
}

export default class SlowestReporter implements Reporter {
  #testTimeout = 5_000
  #hookTimeout = 10_000
  readonly #tests: Timed[] = []
  readonly #hooks: Timed[] = []
  readonly #hookStarts = new Map<string, number>()

  onInit(vitest: { config: { testTimeout: number; hookTimeout: number } }): void {
    this.#testTimeout = vitest.config.testTimeout
    this.#hookTimeout = vitest.config.hookTimeout
  }

  onTestCaseResult(test: TestCase): void {
    const ms = test.diagnostic()?.duration
    if (ms === undefined || test.result().state === 'skipped') return
    this.#tests.push({
      what: `${test.module.relativeModuleId} > ${test.fullName}`,
      ms,
      timeoutMs: test.options.timeout ?? this.#testTimeout,
    })
  }

  onHookStart(hook: ReportedHookContext): void {
    if (hook.name === 'beforeAll' || hook.name === 'afterAll') {
      this.#hookStarts.set(`${hook.entity.id} ${hook.name}`, Date.now())
    }
  }

  onHookEnd(hook: ReportedHookContext): void {
    if (hook.name !== 'beforeAll' && hook.name !== 'afterAll') return
    const started = this.#hookStarts.get(`${hook.entity.id} ${hook.name}`)
    if (started === undefined) return
    const entity = hook.entity
    const where =
      entity.type === 'module'
        ? entity.relativeModuleId
        : `${entity.module.relativeModuleId} > ${entity.fullName}`
    // Measured here, from the worker's reports: accurate to a fraction of a second.
    this.#hooks.push({
      what: `${hook.name} ${where}`,
      ms: Date.now() - started,
      timeoutMs: this.#hookTimeout,
    })
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>): void {
    const table = (title: string, rows: Timed[]) => {
      const lines = [...rows]
        .sort((a, b) => b.ms - a.ms)
        .slice(0, SHOWN)
        .map(
          ({ what, ms, timeoutMs }) =>
            `  ${(ms / 1000).toFixed(1).padStart(6)} s ${`${Math.round((100 * ms) / timeoutMs)}%`.padStart(4)} of ${timeoutMs / 1000} s  ${what}`,
        )
      return [title, ...lines].join('\n')
    }
    process.stdout.write(
      `\n${table('slowest tests (time, share of its timeout):', this.#tests)}\n${table('slowest beforeAll/afterAll hooks (time, share of the hook timeout):', this.#hooks)}\n`,
    )
  }
}
