/**
 * No loss, no duplicates: every batch an agent produced is stored exactly once, whatever happens
 * to the collector or the agent in between (a stop, kill -9 during ingest, kill -9 of the agent).
 */
import { describe, expect, it } from 'vitest'
import {
  AgentProcess,
  CollectorProcess,
  freePort,
  queryStore,
  spooledOnDisk,
  tmp,
  waitFor,
} from './harness.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Per stored seq: how many batch records and how many metric rows, against what the batch had. */
async function storedBatches(dataDir: string) {
  return queryStore<{ seq: number; records: number; samples: number; rows: number }>(
    dataDir,
    `SELECT b.seq AS seq, b.records AS records, b.samples AS samples, m.rows AS rows
     FROM (SELECT seq, count() AS records, any(samples) AS samples FROM tally.ingest_batches GROUP BY seq) AS b
     LEFT JOIN (SELECT seq, count() AS rows FROM tally.host_metrics GROUP BY seq) AS m USING seq
     ORDER BY seq`,
  )
}

/**
 * Every produced seq is stored, once; but a batch still in an agent's spool is not lost (it goes
 * at the agent's next start), so `stillSpooled` need not be stored yet.
 */
async function expectExactlyOnce(dataDir: string, produced: number[], stillSpooled: number[] = []) {
  const stored = await storedBatches(dataDir)
  const storedSeqs = stored.map((b) => b.seq)
  expect(new Set(produced).size).toBe(produced.length) // no seq was produced twice
  for (const seq of produced) {
    if (!stillSpooled.includes(seq)) expect(storedSeqs, `batch ${seq} stored`).toContain(seq)
  }
  for (const batch of stored) {
    expect(batch.records, `batch ${batch.seq} recorded once`).toBe(1)
    expect(batch.rows, `batch ${batch.seq} metric rows written once`).toBe(batch.samples)
  }
  const [rollup] = await queryStore<{ raw: number; rolled: number }>(
    dataDir,
    'SELECT (SELECT count() FROM tally.host_metrics) AS raw, (SELECT sum(samples) FROM tally.host_metrics_1m) AS rolled',
  )
  expect(rollup?.rolled, 'the 1-minute rollup counts each row once').toBe(rollup?.raw)
  return stored
}

async function setup(name: string) {
  const dataDir = tmp(`${name}-data`)
  const port = await freePort()
  const collector = await new CollectorProcess(dataDir, port).ready()
  const token = await collector.enrollToken('site-a')
  const stateDir = tmp(`${name}-agent`)
  const agent = new AgentProcess(stateDir, collector.url, { TALLY_ENROLLMENT_TOKEN: token })
  return { dataDir, port, collector, agent, stateDir }
}

/**
 * Stops the agent as an operator would (SIGTERM). Its drain has a few seconds: what it could not
 * deliver in that time (a collector slowed by load) stays in its spool, which loses nothing, and
 * its next start delivers it. So when the stop left records, this starts the agent again until
 * they are gone and stops it again. Returns every seq produced, and what the last stop left.
 */
async function stopAgent(
  agent: AgentProcess,
  stateDir: string,
  collectorUrl: string,
): Promise<{ produced: number[]; stillSpooled: number[] }> {
  expect(await agent.stop('SIGTERM')).toEqual({ code: 0, signal: null })
  const left = spooledOnDisk(stateDir)
  // Not more: a delivery in flight at the drain's deadline may still be acknowledged before exit.
  expect(left.length, 'the spool holds what the agent said it left').toBeLessThanOrEqual(
    agent.leftAtStop() ?? 0,
  )
  for (const seq of left) expect(agent.spooledSeqs()).toContain(seq)
  if (left.length === 0) return { produced: agent.spooledSeqs(), stillSpooled: [] }
  const next = new AgentProcess(stateDir, collectorUrl)
  await waitFor('the batches left at the stop delivered by the next start', () =>
    spooledOnDisk(stateDir).some((seq) => left.includes(seq)) ? undefined : true,
  )
  expect(await next.stop('SIGTERM')).toEqual({ code: 0, signal: null })
  return {
    produced: [...agent.spooledSeqs(), ...next.spooledSeqs()],
    stillSpooled: spooledOnDisk(stateDir),
  }
}

const lastSeq = async (collector: CollectorProcess) => (await collector.fleet())[0]?.last_seq ?? 0

describe('delivery', () => {
  it('keeps spooling while the collector is stopped and delivers everything once it is back', async () => {
    const { dataDir, port, collector, agent, stateDir } = await setup('outage')
    await waitFor('first batches', async () => ((await lastSeq(collector)) >= 2 ? true : undefined))
    expect(await collector.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    const before = agent.spooledSeqs().length
    await sleep(4_000)
    expect(
      agent.spooledSeqs().length,
      'the agent spooled during the outage',
    ).toBeGreaterThanOrEqual(before + 3)
    expect(agent.logged('batch delivery failed, will retry').length).toBeGreaterThan(0)

    const restarted = await new CollectorProcess(dataDir, port).ready()
    const target = Math.max(...agent.spooledSeqs()) + 1
    await waitFor('backlog delivered', async () =>
      (await lastSeq(restarted)) >= target ? true : undefined,
    )
    const { produced, stillSpooled } = await stopAgent(agent, stateDir, restarted.url)
    await restarted.stop('SIGTERM')
    const stored = await expectExactlyOnce(dataDir, produced, stillSpooled)
    expect(stored.length).toBeGreaterThanOrEqual(produced.length - stillSpooled.length)
    expect(stored.length).toBeLessThanOrEqual(produced.length)
  })

  it('stores every batch once across kill -9 of the collector during ingest', async () => {
    const { dataDir, port, collector, agent, stateDir } = await setup('crash')
    await waitFor('first batches', async () => ((await lastSeq(collector)) >= 1 ? true : undefined))
    let current = collector
    // Each round: an outage builds a backlog, the restarted collector is killed while the agent
    // pushes that backlog at it as fast as it is acknowledged.
    for (const killAfterMs of [50, 150, 300, 600]) {
      await current.stop('SIGKILL')
      await sleep(2_500)
      current = await new CollectorProcess(dataDir, port).ready()
      await sleep(killAfterMs)
    }
    const target = Math.max(...agent.spooledSeqs()) + 1
    // After repeated failures the agent's backoff may have grown to its 60 s cap (with jitter).
    await waitFor(
      'everything delivered',
      async () => ((await lastSeq(current)) >= target ? true : undefined),
      120_000,
    )
    const { produced, stillSpooled } = await stopAgent(agent, stateDir, current.url)
    await current.stop('SIGTERM')
    await expectExactlyOnce(dataDir, produced, stillSpooled)
  }, 240_000)

  it('keeps in its spool what a stopping agent could not deliver, and sends it at its next start', async () => {
    const { dataDir, collector, agent, stateDir } = await setup('drain')
    await waitFor('first batches', async () => ((await lastSeq(collector)) >= 2 ? true : undefined))
    // A collector that takes the connection but never answers (frozen): the agent's shutdown
    // drain cannot get an acknowledgement within its time.
    const pid = collector.child.pid as number
    process.kill(pid, 'SIGSTOP')
    let frozen = true
    try {
      expect(await agent.stop('SIGTERM')).toEqual({ code: 0, signal: null })
      process.kill(pid, 'SIGCONT')
      frozen = false
      const left = spooledOnDisk(stateDir)
      expect(left.length, 'the last batch, spooled at the stop, is still there').toBeGreaterThan(0)
      expect(left).toContain(Math.max(...agent.spooledSeqs()))
      expect(left.length).toBe(agent.leftAtStop())
      const { produced, stillSpooled } = await stopAgent(agent, stateDir, collector.url)
      expect(stillSpooled.filter((seq) => left.includes(seq))).toEqual([])
      await collector.stop('SIGTERM')
      await expectExactlyOnce(dataDir, produced, stillSpooled)
    } finally {
      if (frozen) process.kill(pid, 'SIGCONT')
    }
  }, 120_000)

  it('resends what was not acknowledged after kill -9 of the agent, without reusing a seq', async () => {
    const { dataDir, collector, agent, stateDir } = await setup('agent-crash')
    await waitFor('first batches', async () => ((await lastSeq(collector)) >= 2 ? true : undefined))
    await agent.stop('SIGKILL')
    const firstRun = agent.spooledSeqs()

    // The restarted agent has its credential; the enrollment token (single use) is not needed.
    const again = new AgentProcess(stateDir, collector.url)
    await waitFor('second run batches', () => (again.spooledSeqs().length >= 2 ? true : undefined))
    expect(Math.min(...again.spooledSeqs())).toBeGreaterThan(Math.max(...firstRun))
    const target = Math.max(...again.spooledSeqs())
    await waitFor('delivered', async () =>
      (await lastSeq(collector)) >= target ? true : undefined,
    )
    const { produced, stillSpooled } = await stopAgent(again, stateDir, collector.url)
    await collector.stop('SIGTERM')
    await expectExactlyOnce(dataDir, [...firstRun, ...produced], stillSpooled)
  })
})
