/**
 * A wall clock that steps back under a running agent (NTP, an operator): every batch still has
 * an interval that ends after it starts and is no longer than what was measured, so the
 * collector stores them all; none is refused or lost.
 */
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  AgentProcess,
  CollectorProcess,
  freePort,
  queryStore,
  type TallyProcess,
  tmp,
  waitFor,
} from './harness.ts'

const started: TallyProcess[] = []
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop('SIGKILL')))
})

const CLOCK_STEP = join(new URL('.', import.meta.url).pathname, 'clock-step.mjs')

describe('agent across a backwards wall-clock step', () => {
  it('sends every batch with a sound interval when the clock steps back an hour', async () => {
    const dataDir = tmp('clock-data')
    const collector = await new CollectorProcess(dataDir, await freePort()).ready()
    started.push(collector)
    const agent = new AgentProcess(tmp('clock-agent'), collector.url, {
      TALLY_ENROLLMENT_TOKEN: await collector.enrollToken('site-a'),
      TALLY_CAPTURE_INTERFACE: 'none',
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${CLOCK_STEP}`.trim(),
      TALLY_TEST_CLOCK_STEP_AFTER_MS: '4000',
      TALLY_TEST_CLOCK_STEP_MS: String(-3_600_000),
    })
    started.push(agent)
    // Batches on both sides of the step.
    await waitFor('batches after the step', () => {
      const times = agent.lines.filter((l) => l.msg === 'batch spooled').map((l) => Number(l.time))
      return times.some((t, i) => i > 0 && t < (times[i - 1] ?? 0)) &&
        agent.spooledSeqs().length >= 6
        ? true
        : undefined
    })
    expect(await agent.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    await collector.stop('SIGTERM')

    expect(agent.logged('collector rejected a batch; it was removed from the spool')).toEqual([])
    const stored = await queryStore<{ seq: number; interval_ms: number }>(
      dataDir,
      `SELECT seq, any(interval_ms) AS interval_ms FROM tally.host_metrics
       WHERE metric = 'tally.agent.spool.depth' GROUP BY seq ORDER BY seq`,
    )
    expect(stored.map((b) => b.seq)).toEqual(agent.spooledSeqs())
    for (const batch of stored) {
      // 1 s intervals: never negative, never the hour the clock jumped.
      expect(batch.interval_ms, `seq ${batch.seq}`).toBeGreaterThan(0)
      expect(batch.interval_ms, `seq ${batch.seq}`).toBeLessThan(10_000)
    }
  }, 90_000)
})
