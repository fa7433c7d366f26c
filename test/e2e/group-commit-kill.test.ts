/**
 * Group commit under kill -9: a real collector process takes batches from several agents at
 * once (a load generator in this process, retrying each batch until it is acknowledged), and is
 * killed with SIGKILL at random moments, over and over, while it writes groups. Afterwards every
 * batch is stored exactly once in every table: one marker, its samples once, the rollup equal
 * to the raw rows, and its site usage counted once.
 */
import { afterAll, describe, expect, it } from 'vitest'
import {
  enrollAgents,
  gzipBatch,
  type LoadAgent,
  postBatch,
  realisticBatch,
  seeded,
} from '../../bench/ingest-load.ts'
import {
  CollectorProcess,
  freePort,
  queryStore,
  type TallyProcess,
  tmp,
  waitFor,
} from './harness.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const started: TallyProcess[] = []
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop('SIGKILL')))
})

const AGENTS = 12
const KILLS = 6
/** Larger groups than the default, so that a kill lands inside one more often. */
const ENV = { TALLY_INGEST_GROUP_WINDOW_MS: '40' }

interface Sent {
  agent: LoadAgent
  seq: number
  samples: number
  usageBytes: number
}

describe('group commit', () => {
  it(`stores every batch once across ${KILLS} kill -9 of the collector inside group inserts`, async () => {
    const dataDir = tmp('group-kill-data')
    const port = await freePort()
    const start = async () => {
      const p = new CollectorProcess(dataDir, port, ENV)
      started.push(p)
      return p.ready()
    }
    let collector = await start()
    const agents = await enrollAgents(collector.url, collector.adminToken(), 'site-k', AGENTS)
    const random = seeded(Number(process.env.TALLY_TEST_SEED ?? 20_261_202))

    // Each agent sends its batches in order, each until acknowledged (200), as a real agent does.
    const acknowledged: Sent[] = []
    let stopping = false
    const sender = async (agent: LoadAgent) => {
      for (let seq = 1; !stopping; seq++) {
        const batch = realisticBatch(agent.agent_id, seq, Date.now() - 1000, random)
        const body = gzipBatch(batch)
        for (;;) {
          const status = await postBatch(collector.url, agent.credential, body)
          if (status === 200) break
          expect([0, 503], `seq ${seq} answered ${status}`).toContain(status)
          await sleep(50)
        }
        acknowledged.push({
          agent,
          seq,
          samples: batch.samples.length,
          usageBytes: (batch.usage ?? []).reduce((sum, u) => sum + u.bytes, 0),
        })
      }
    }
    const senders = Promise.all(agents.map(sender))

    const delays: number[] = []
    let completedGroups = 0
    for (let round = 0; round < KILLS; round++) {
      const before = acknowledged.length
      await waitFor('batches acknowledged', () =>
        acknowledged.length >= before + AGENTS ? true : undefined,
      )
      const delay = Math.floor(random() * 400)
      delays.push(delay)
      await sleep(delay)
      await collector.stop('SIGKILL')
      collector = await start()
      completedGroups += collector
        .logged('ingest groups left by a crash completed')
        .reduce((n, l) => n + Number(l.groups ?? 0), 0)
    }
    const last = acknowledged.length
    await waitFor('batches after the last restart', () =>
      acknowledged.length >= last + AGENTS ? true : undefined,
    )
    stopping = true
    await senders
    expect(await collector.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    console.info(
      `kill delays (ms): ${delays.join(' ')}; groups completed at start: ${completedGroups}; ` +
        `batches acknowledged: ${acknowledged.length}`,
    )

    expect(completedGroups, 'kills landed inside groups').toBeGreaterThan(0)
    const perBatch = await queryStore<{ agent_id: string; seq: number; records: number }>(
      dataDir,
      `SELECT agent_id, seq, count() AS records FROM tally.ingest_batches
       GROUP BY agent_id, seq ORDER BY agent_id, seq`,
    )
    const rows = await queryStore<{ agent_id: string; seq: number; rows: number }>(
      dataDir,
      `SELECT agent_id, seq, count() AS rows FROM tally.host_metrics
       GROUP BY agent_id, seq ORDER BY agent_id, seq`,
    )
    const [sums] = await queryStore<{ raw: number; rolled: number; usage: number }>(
      dataDir,
      `SELECT (SELECT count() FROM tally.host_metrics) AS raw,
              (SELECT sum(samples) FROM tally.host_metrics_1m) AS rolled,
              (SELECT sum(bytes) FROM tally.usage_cells) AS usage`,
    )
    const key = (agentId: string, seq: number) => `${agentId}:${seq}`
    const records = new Map(perBatch.map((b) => [key(b.agent_id, Number(b.seq)), b.records]))
    const metricRows = new Map(rows.map((b) => [key(b.agent_id, Number(b.seq)), b.rows]))
    for (const sent of acknowledged) {
      const k = key(sent.agent.agent_id, sent.seq)
      expect(records.get(k), `${k} recorded once`).toBe(1)
      expect(metricRows.get(k), `${k} samples once`).toBe(sent.samples)
    }
    // Nothing stored but what was acknowledged: a batch cut short by a kill and never
    // acknowledged is the one its agent sent again, under the same seq.
    expect(perBatch.length, 'stored batches').toBe(acknowledged.length)
    for (const b of perBatch) expect(b.records, `${b.agent_id}:${b.seq}`).toBe(1)
    expect(Number(sums?.rolled), 'the rollup counts each row once').toBe(Number(sums?.raw))
    expect(Number(sums?.usage), 'site usage counts each batch once').toBe(
      acknowledged.reduce((sum, s) => sum + s.usageBytes, 0),
    )
  }, 240_000)
})
