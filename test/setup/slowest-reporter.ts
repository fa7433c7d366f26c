/**
 * A reporter that prints, after the run, the slowest tests with the share of their timeout they
 * used, and the slowest beforeAll/afterAll hooks: a test that creeps towards its timeout shows
 * here long before it fails on a slower machine. Figures only; it never fails the run.
 *
 * A hook's own timeout is not known here (only the configured default), so hooks get their time
 * alone, measured from the workers' reports as they arrive: approximate, and a hook whose start
 * was reported late shows too short.
 */
import type { ReportedHookContext, Reporter, TestCase, TestModule } from 'vitest/node'

const SHOWN = 10

interface Timed {
  what: string
  ms: number
  timeoutMs?: number
}

export default class SlowestReporter implements Reporter {
  #testTimeout = 5_000
  readonly #tests: Timed[] = []
  readonly #hooks: Timed[] = []
  readonly #hookStarts = new Map<string, number>()

  onInit(vitest: { config: { testTimeout: number } }): void {
    this.#testTimeout = vitest.config.testTimeout
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
    this.#hooks.push({ what: `${hook.name} ${where}`, ms: Date.now() - started })
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>): void {
    const table = (title: string, rows: Timed[]) => {
      const lines = [...rows]
        .sort((a, b) => b.ms - a.ms)
        .slice(0, SHOWN)
        .map(
          ({ what, ms, timeoutMs }) =>
            `  ${(ms / 1000).toFixed(1).padStart(6)} s ${
              timeoutMs === undefined
                ? ''
                : `${`${Math.round((100 * ms) / timeoutMs)}%`.padStart(4)} of ${timeoutMs / 1000} s `
            } ${what}`,
        )
      return [title, ...lines].join('\n')
    }
    process.stdout.write(
      `\n${table('slowest tests (time, share of its timeout):', this.#tests)}\n${table('slowest beforeAll/afterAll hooks (approximate time):', this.#hooks)}\n`,
    )
  }
}
