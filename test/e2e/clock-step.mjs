// Preloaded into an agent (NODE_OPTIONS=--import) to step its wall clock: after
// TALLY_TEST_CLOCK_STEP_AFTER_MS of the process's life, Date.now() jumps by
// TALLY_TEST_CLOCK_STEP_MS (negative: backwards), as NTP or an operator would make it.
// The monotonic clock (performance.now) is left alone, as a real step leaves it.
const after = Number(process.env.TALLY_TEST_CLOCK_STEP_AFTER_MS ?? 0)
const step = Number(process.env.TALLY_TEST_CLOCK_STEP_MS ?? 0)
const realNow = Date.now
const startedAt = realNow()
Date.now = () => {
  const now = realNow()
  return now - startedAt >= after ? now + step : now
}
