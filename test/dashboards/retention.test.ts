/**
 * Migration 012 on an install that already holds data: the hourly rollup and the fleet's
 * summaries are filled from what is stored before their views start, once (a run again after
 * a failure adds nothing), and the views carry on from there. The per-minute rollup's history
 * beyond its new 35 days survives in the hourly one.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore, type Store } from '../../collector/store/client.ts'
import { migrate, readMigrations } from '../../collector/store/migrations.ts'
import { insertRows, selectRows } from '../../collector/store/rows.ts'

let dir: string
let store: Store

const HOUR = 3_600_000
const DAY = 24 * HOUR
/** On the hour, so each sample's hour is known. */
const BASE = Math.floor(Date.now() / HOUR) * HOUR

/** Two samples a day for 100 days (the old per-minute rollup kept 395), value = day number. */
const SAMPLES = Array.from({ length: 200 }, (_, n) => ({
  ts: BASE - Math.floor(n / 2) * DAY - (n % 2) * 10 * 60_000 - 60_000,
  interval_ms: 10_000,
  site: 'geneva',
  host: 'gva-ws-01',
  metric: 'system.memory.utilization',
  attributes: {},
  value: Math.floor(n / 2),
  agent_id: 'a-1',
  seq: n + 1,
}))

const BATCHES = [
  ...[1, 2, 3].map((seq) => ({ agent_id: 'a-1', seq, site: 'geneva', host: 'gva-ws-01' })),
  ...[7, 8].map((seq) => ({ agent_id: 'a-2', seq, site: 'nairobi', host: 'nbo-ws-01' })),
].map((b, i) => ({
  ...b,
  agent_version: b.seq === 3 ? '0.2.0' : '0.1.0',
  interval_start: BASE - 2 * DAY + i * 60_000 - 10_000,
  interval_end: BASE - 2 * DAY + i * 60_000,
  received_at: BASE - 2 * DAY + i * 60_000 + 500,
  samples: 40,
  digest: `d${i}`,
}))

const one = async <T>(sql: string): Promise<T> => {
  const [row] = await selectRows<T>(store, sql)
  if (row === undefined) throw new Error(`no row: ${sql}`)
  return row
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tally-retention-test-'))
  store = openStore({ dataDir: dir })
  // An install before migration 012, with its history.
  await migrate(
    store,
    readMigrations().filter((m) => m.version < 12),
  )
  await insertRows(store, 'tally.host_metrics', SAMPLES, 'history-samples')
  await insertRows(store, 'tally.ingest_batches', BATCHES, 'history-batches')
  // The same batch record twice (before a merge): counted once.
  await insertRows(store, 'tally.ingest_batches', BATCHES.slice(0, 1), 'history-batch-again')
  expect(await migrate(store)).toContain(12)
}, 120_000)

afterAll(async () => {
  await store?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe('migration 012 on stored data', () => {
  it('fills the hourly rollup with every stored hour, older than the per-minute retention too', async () => {
    const hourly = await one<{ rows: number; samples: number; sum: number; oldest: number }>(
      `SELECT count() AS rows, sum(samples) AS samples, sum(sum) AS sum,
              toUnixTimestamp(min(ts)) AS oldest
       FROM (SELECT ts, sum(samples) AS samples, sum(sum) AS sum FROM tally.host_metrics_1h GROUP BY ts)`,
    )
    expect(Number(hourly.samples)).toBe(SAMPLES.length)
    expect(Number(hourly.sum)).toBe(SAMPLES.reduce((n, s) => n + s.value, 0))
    // Each day's two samples are ten minutes apart, before the hour: one hourly row a day.
    expect(Number(hourly.rows)).toBe(100)
    expect(Number(hourly.oldest) * 1000).toBe(BASE - 99 * DAY - HOUR)
  })

  it("fills each agent's summary and the per-site minutes from the batch records", async () => {
    const agents = await selectRows<{
      agent_id: string
      batches: number
      last_seq: number
      version: string
    }>(
      store,
      `SELECT agent_id, sum(batches) AS batches, max(last_seq) AS last_seq,
              argMaxMerge(agent_version) AS version
       FROM tally.agent_last_batch GROUP BY agent_id ORDER BY agent_id`,
    )
    expect(
      agents.map((a) => [a.agent_id, Number(a.batches), Number(a.last_seq), a.version]),
    ).toEqual([
      ['a-1', 3, 3, '0.2.0'],
      ['a-2', 2, 8, '0.1.0'],
    ])
    const minutes = await one<{ batches: number; samples: number; agents: number }>(
      'SELECT sum(batches) AS batches, sum(samples) AS samples, uniqMerge(agents) AS agents FROM tally.ingest_site_1m',
    )
    expect([Number(minutes.batches), Number(minutes.samples), Number(minutes.agents)]).toEqual([
      5, 200, 2,
    ])
  })

  it('adds nothing when its statements run again, and the views carry on', async () => {
    const totals = () =>
      one<{ h: number; a: number; m: number }>(
        `SELECT (SELECT sum(samples) FROM tally.host_metrics_1h) AS h,
                (SELECT sum(batches) FROM tally.agent_last_batch) AS a,
                (SELECT sum(batches) FROM tally.ingest_site_1m) AS m`,
      )
    const before = await totals()
    const [m012] = readMigrations().filter((m) => m.version === 12)
    for (const statement of m012?.statements ?? []) await store.command({ query: statement })
    expect(await totals()).toEqual(before)

    await insertRows(store, 'tally.host_metrics', [{ ...SAMPLES[0], ts: BASE + 60_000 }], 'later')
    await insertRows(
      store,
      'tally.ingest_batches',
      [{ ...BATCHES[0], seq: 4, received_at: BASE + 60_000 }],
      'later-batch',
    )
    expect(await totals()).toEqual({
      h: Number(before.h) + 1,
      a: Number(before.a) + 1,
      m: Number(before.m) + 1,
    })
  })
})
