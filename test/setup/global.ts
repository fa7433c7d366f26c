/**
 * The whole run: every process the tests start carries TALLY_TEST_RUN in its environment. At the
 * end, anything still running with it (a worker killed before its file's hooks ran, a process
 * that escaped its file's check) is printed, killed, and fails the run.
 */
import { randomUUID } from 'node:crypto'
import {
  findLeftovers,
  formatLeftovers,
  killLeftovers,
  RUN_TAG,
  settleLeftovers,
} from './leftovers.ts'

export function setup(): () => Promise<void> {
  const run = randomUUID()
  process.env[RUN_TAG] = run
  return async () => {
    // The workers may still be shutting down when the teardown starts; give them a moment.
    const left = await settleLeftovers(
      () => findLeftovers(RUN_TAG, run).filter((p) => !p.command.includes('vitest/dist/workers')),
      Number(process.env.TALLY_LEFTOVER_GRACE_MS ?? 10_000),
    )
    if (left.length === 0) return
    killLeftovers(left)
    console.error(
      `\n*** The tests left ${left.length} process(es) running (killed now):\n${formatLeftovers(left)}\n`,
    )
    // An error thrown here is only logged by vitest; the exit status must say it too.
    process.exitCode = 1
  }
}
