/**
 * Every test file: no process it started may outlive it. The file's processes carry a tag of
 * their own in their environment; after the file's own afterAll hooks (this one is registered
 * first, so it runs last), whatever still runs with the tag is printed, killed, and fails the file.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, expect } from 'vitest'
import {
  FILE_TAG,
  findLeftovers,
  formatLeftovers,
  killLeftovers,
  RUN_TAG,
  settleLeftovers,
} from './leftovers.ts'

/** Time for processes just signalled to end by themselves before they count as left behind. */
const GRACE_MS = Number(process.env.TALLY_LEFTOVER_GRACE_MS ?? 10_000)

const run = process.env[RUN_TAG] ?? randomUUID()
process.env[RUN_TAG] = run
const tag = `${run}:${process.pid}`
process.env[FILE_TAG] = tag
const file = expect.getState().testPath ?? 'this test file'

afterAll(async () => {
  const left = await settleLeftovers(
    () => findLeftovers(FILE_TAG, tag, { root: process.pid }),
    GRACE_MS,
  )
  if (left.length === 0) return
  killLeftovers(left)
  const message = `${file} left ${left.length} process(es) running after its last hook (killed now):\n${formatLeftovers(left)}`
  console.error(`\n*** ${message}\n`)
  throw new Error(message)
}, GRACE_MS + 10_000)
