/**
 * Tier A on the real engine: contributions from agents' batches are stored as site-level cells
 * only, each batch counts once, a minute is released once with the k threshold, and every read
 * comes from released cells.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createUsageViews, releaseUsage } from '../../collector/store/usage.ts'
import type { HostBatch, UsageContribution } from '../../protocol/v1.ts'
import {
  count,
  type EnrolledAgent,
  enrollAgent,
  gz,
  type Harness,
  openHarness,
  postIngest,
  userToken,
} from './harness.ts'

const HOUR = 3600
/** Five minutes ago, on the minute: inside the release delay, so its usage counts. */
const MINUTE = Math.floor(Date.now() / 60_000) * 60 - 300
/** The hour around it, for the queries. */
const BASE = Math.floor(MINUTE / HOUR) * HOUR

const contribution = (
  service: string,
  bytes: number,
  extra: Partial<UsageContribution> = {},
): UsageContribution => ({
  direction: 'outbound',
  ip_version: 4,
  transport: service === 'dns' ? 'udp' : 'tcp',
  service,
  peer_class: 'internet',
  bytes,
  packets: 1,
  flows: 1,
  ...extra,
})

function usageBatch(
  agent: EnrolledAgent,
  seq: number,
  startSeconds: number,
  usage: UsageContribution[],
): HostBatch {
  return {
    version: 1,
    agent_id: agent.agent_id,
    seq,
    agent_version: 'test',
    interval: { start: startSeconds * 1000, end: (startSeconds + 10) * 1000 },
    samples: [],
    usage,
  }
}

describe('site usage with the k threshold', () => {
  let h: Harness
  let operator: string
  const agents: EnrolledAgent[] = []

  beforeAll(async () => {
    h = await openHarness()
    await createUsageViews(h.store, 3)
    operator = await userToken(h.store, ['operator'])
    for (let i = 0; i < 4; i++) agents.push(await enrollAgent(h, 'geneva-pm', `ws-${i}`))
    // https from four hosts, ssh from one, dns from two: with k = 3 only https is its own bucket;
    // ssh and dns fold into `other` (three distinct hosts: 0, 1 and 3).
    const plan: [number, UsageContribution[]][] = [
      [0, [contribution('https', 1000), contribution('ssh', 50)]],
      [1, [contribution('https', 2000), contribution('dns', 70)]],
      [2, [contribution('https', 3000)]],
      [3, [contribution('https', 4000), contribution('dns', 80)]],
    ]
    for (const [i, usage] of plan) {
      const agent = agents[i] as EnrolledAgent
      const res = await postIngest(h.app, gz(usageBatch(agent, 1, MINUTE + 20, usage)), {
        credential: agent.credential,
      })
      expect(res.status).toBe(200)
    }
    // The minute as the collector releases it once it closed (usage.release_after_seconds on).
    await releaseUsage(h.store, { k: 3, releaseAfterSeconds: 600, now: (MINUTE + 660) * 1000 })
  })
  afterAll(() => h?.close())

  const usage = async (query: string, token = operator) => {
    const res = await h.app.request(`/v1/usage?${query}`, {
      headers: { authorization: `Bearer ${token}` },
    })
    return {
      status: res.status,
      body: (await res.json()) as { k: number; buckets: Record<string, unknown>[] },
    }
  }
  const range = `site=geneva-pm&from=${BASE}&to=${BASE + 2 * HOUR}`

  it('shows buckets of at least k hosts and folds the rest into other', async () => {
    // The application's own k is the configured 5; the views were made with 3 for this data.
    const { status, body } = await usage(`${range}&by=service`)
    expect(status).toBe(200)
    expect(body.buckets).toEqual([
      expect.objectContaining({ service: 'https', bytes: 10_000, packets: 4, hosts: 4 }),
      expect.objectContaining({ service: 'other', bytes: 200, packets: 3, hosts: 3 }),
    ])
  })

  it('hides at once what was released under a smaller k when k is raised', async () => {
    await createUsageViews(h.store, 5)
    try {
      const { body } = await usage(`${range}&by=service`)
      expect(body.buckets).toEqual([])
    } finally {
      await createUsageViews(h.store, 3)
    }
  })

  it('answers every grouping and every resolution the same way', async () => {
    // Every grouping sums the same released cells: https (4 hosts) and other (ssh + dns,
    // 3 hosts); tcp, internet and outbound carry the same 10,000 + 200 bytes.
    for (const step of [60, 600, HOUR, 2 * HOUR]) {
      for (const by of ['transport', 'peer_class', 'direction', 'service'] as const) {
        const { body } = await usage(`${range}&by=${by}&step=${step}`)
        const total = body.buckets.reduce((sum, b) => sum + Number(b.bytes), 0)
        expect(total, `${by} step ${step}`).toBe(10_200)
        expect(body.buckets.find((b) => b[by] === 'other')).toMatchObject({ bytes: 200, hosts: 3 })
      }
    }
  })

  it('counts a retried batch once, and keeps nothing per host', async () => {
    const agent = agents[2] as EnrolledAgent
    const again = await postIngest(
      h.app,
      gz(usageBatch(agent, 1, MINUTE + 20, [contribution('https', 3000)])),
      {
        credential: agent.credential,
      },
    )
    expect(await again.json()).toMatchObject({ status: 'duplicate' })
    const { body } = await usage(`${range}&by=service`)
    expect(body.buckets[0]).toMatchObject({ service: 'https', bytes: 10_000 })
    // No stored table has a host column for usage: per-host rows went to a Null table.
    expect(await count(h.store, 'tally.usage_contributions')).toBe(0)
    const columns = await h.store.query({
      query:
        "SELECT table, name FROM system.columns WHERE database = 'tally' AND table IN (SELECT name FROM system.tables WHERE database = 'tally' AND name LIKE 'usage_%' AND engine LIKE '%MergeTree')",
      format: 'JSONEachRow',
    })
    const names = (await columns.json<{ name: string }>()).map((c) => c.name)
    expect(names).not.toContain('host')
    expect(names).toContain('hosts')
  })

  it('refuses bad queries with a 400 naming the parameter, and non-operators', async () => {
    const cases: [string, string][] = [
      ['by=host', 'by'],
      [`from=${BASE + 10}&to=${BASE}`, 'from'],
      ['from=yesterday', 'from'],
      ['step=1', 'step'],
      ['step=90', 'step'],
      ["site=geneva'; DROP TABLE tally.agents --", 'site'],
      ['address=10.0.0.1', '(top level)'],
    ]
    for (const [query, path] of cases) {
      const { status, body } = await usage(query)
      expect(status, query).toBe(400)
      expect(JSON.stringify(body), query).toContain(path)
    }
    const requester = await userToken(h.store, ['requester'])
    expect((await usage(range, requester)).status).toBe(403)
    expect(await count(h.store, 'tally.agents')).toBe(4)
  })

  it('refuses a contribution that could carry an address or an unknown service', async () => {
    const agent = agents[0] as EnrolledAgent
    const bad: unknown[] = [
      { ...contribution('https', 1), remote: '203.0.113.9' },
      { ...contribution('https', 1), service: '203.0.113.9' },
      { ...contribution('https', 1), service: 'port-47913' },
      { ...contribution('https', 1), peer_class: 'host-203.0.113.9' },
    ]
    for (const [i, entry] of bad.entries()) {
      const batch = { ...usageBatch(agent, 100 + i, MINUTE + 30, []), usage: [entry] }
      const res = await postIngest(h.app, gz(batch), { credential: agent.credential })
      expect(res.status, JSON.stringify(entry)).toBe(400)
    }
  })
})
