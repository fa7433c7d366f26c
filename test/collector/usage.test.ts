/**
 * Tier A on the real engine: contributions from agents' batches are stored as site-level sums
 * only, each batch counts once, and every read applies the k threshold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createUsageViews } from '../../collector/store/usage.ts'
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
/** Two hours ago, on the hour: recent enough for the 10 s table's TTL. */
const BASE = Math.floor(Date.now() / 1000 / HOUR) * HOUR - 2 * HOUR

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
      const res = await postIngest(h.app, gz(usageBatch(agent, 1, BASE + 20, usage)), {
        credential: agent.credential,
      })
      expect(res.status).toBe(200)
    }
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
  const range = `site=geneva-pm&from=${BASE}&to=${BASE + HOUR}`

  it('shows buckets of at least k hosts and folds the rest into other', async () => {
    // The application's own k is the configured 5; the views were made with 3 for this data.
    const { status, body } = await usage(`${range}&by=service`)
    expect(status).toBe(200)
    expect(body.buckets).toEqual([
      expect.objectContaining({ service: 'https', bytes: 10_000, packets: 4, hosts: 4 }),
      expect.objectContaining({ service: 'other', bytes: 200, packets: 3, hosts: 3 }),
    ])
  })

  it('drops what stays under k after folding', async () => {
    await createUsageViews(h.store, 5)
    try {
      const { body } = await usage(`${range}&by=service`)
      expect(body.buckets).toEqual([])
    } finally {
      await createUsageViews(h.store, 3)
    }
  })

  it('answers every grouping and every resolution the same way', async () => {
    for (const step of [10, 60, HOUR]) {
      const { body } = await usage(`${range}&by=transport&step=${step}`)
      // tcp: four hosts; udp (dns): two hosts, folded into other with nobody else: dropped.
      expect(body.buckets, `step ${step}`).toEqual([
        expect.objectContaining({ transport: 'tcp', bytes: 10_050, hosts: 4 }),
      ])
    }
    const { body: byPeer } = await usage(`${range}&by=peer_class`)
    expect(byPeer.buckets).toEqual([
      expect.objectContaining({ peer_class: 'internet', bytes: 10_200, hosts: 4 }),
    ])
  })

  it('counts a retried batch once, and keeps nothing per host', async () => {
    const agent = agents[2] as EnrolledAgent
    const again = await postIngest(
      h.app,
      gz(usageBatch(agent, 1, BASE + 20, [contribution('https', 3000)])),
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
        "SELECT table, name FROM system.columns WHERE database = 'tally' AND table LIKE 'usage_site%'",
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
      const batch = { ...usageBatch(agent, 100 + i, BASE + 30, []), usage: [entry] }
      const res = await postIngest(h.app, gz(batch), { credential: agent.credential })
      expect(res.status, JSON.stringify(entry)).toBe(400)
    }
  })
})
