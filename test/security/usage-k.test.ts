/**
 * Insider attacks on site usage (tier A) and its k threshold, replayed through the real ingest
 * path on the real engine, with agents enrolled through the API:
 *
 * - 3: an operator differences k away: by=service minus by=direction for one window, or a
 *   longer window minus a shorter one, to get the bytes of the one host of a cell under k;
 * - 4: an admin floods k: four extra agents send zero-byte or backdated rows into a minute where
 *   one real host is alone, to make its bytes visible as "5 hosts";
 * - 2: Grafana's user reads the raw rollups or tests whether a known host is in a cell's state.
 *
 * Each attack yields nothing: answers are sums of released minute cells only (collector/store/
 * usage.ts), a host counts only with real traffic from a recent batch, host identities are keyed,
 * and grafana_ro reads the definer views only.
 */
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SHARDING_KEYS } from '../../collector/store/cluster.ts'
import { selectRows } from '../../collector/store/rows.ts'
import { createUsageViews, releaseUsage, usageViewSql } from '../../collector/store/usage.ts'
import { loadOrCreateUsageHostKey } from '../../collector/store/usage-host-key.ts'
import { USAGE_DIMENSIONS } from '../../protocol/api/names.ts'
import type { HostBatch, UsageContribution } from '../../protocol/v1.ts'
import {
  type EnrolledAgent,
  enrollAgent,
  gz,
  type Harness,
  openHarness,
  postIngest,
  userToken,
} from '../collector/harness.ts'

const K = 5
const SITE = 'bern-pm'
/** Eight minutes ago, on the minute: four minutes of attacks, all inside the release delay. */
const M = Math.floor(Date.now() / 60_000) * 60 - 480

const flow = (service: string, bytes: number, packets = 1): UsageContribution => ({
  direction: 'outbound',
  ip_version: 4,
  transport: service === 'dns' ? 'udp' : 'tcp',
  service,
  peer_class: 'internet',
  bytes,
  packets,
  flows: 1,
})

const seqs = new Map<string, number>()
function batch(agent: EnrolledAgent, startSeconds: number, usage: UsageContribution[]): HostBatch {
  const seq = (seqs.get(agent.agent_id) ?? 0) + 1
  seqs.set(agent.agent_id, seq)
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

interface Bucket {
  ts: string
  bytes: number
  hosts: number
  [grouping: string]: string | number
}

describe('site usage: k cannot be differenced, flooded or read around', () => {
  let h: Harness
  let operator: string
  const real: EnrolledAgent[] = []
  const sybils: EnrolledAgent[] = []

  const send = async (agent: EnrolledAgent, start: number, usage: UsageContribution[]) => {
    const res = await postIngest(h.app, gz(batch(agent, start, usage)), {
      credential: agent.credential,
    })
    expect(res.status, await res.clone().text()).toBe(200)
  }

  const usage = async (query: string): Promise<Bucket[]> => {
    const res = await h.app.request(`/v1/usage?site=${SITE}&${query}`, {
      headers: { authorization: `Bearer ${operator}` },
    })
    expect(res.status, await res.clone().text()).toBe(200)
    return ((await res.json()) as { buckets: Bucket[] }).buckets
  }
  const total = (buckets: Bucket[]) => buckets.reduce((sum, b) => sum + b.bytes, 0)

  beforeAll(async () => {
    h = await openHarness()
    await createUsageViews(h.store, K)
    operator = await userToken(h.store, ['operator'])
    for (let i = 0; i < 6; i++) real.push(await enrollAgent(h, SITE, `ws-${i}`))
    // Minute M: six hosts on https, and ws-0 alone on ssh (3).
    for (const [i, agent] of real.entries()) {
      await send(agent, M + 5, [
        flow('https', 1000 * (i + 1)),
        ...(i === 0 ? [flow('ssh', 777)] : []),
      ])
    }
    // Minutes M+1 and M+2: six hosts on https, then ws-1 alone (3, windows).
    for (const [i, agent] of real.entries()) await send(agent, M + 65, [flow('https', 100 + i)])
    await send(real[1] as EnrolledAgent, M + 125, [flow('https', 4242)])
    // Minute M+3: ws-2 alone; four agents the admin enrolled flood it (4).
    await send(real[2] as EnrolledAgent, M + 185, [flow('https', 31_337)])
    for (let i = 0; i < 4; i++) sybils.push(await enrollAgent(h, SITE, `sybil-${i}`))
    for (const sybil of sybils) {
      // Zero-byte, zero-packet rows for the minute: present, but no traffic.
      await send(sybil, M + 185, [flow('https', 0, 0)])
      // Backdated: a batch twenty minutes old is plausible (spooled) and is stored, but its
      // usage is not: it could only count into minutes judged or about to be judged.
      await send(sybil, M + 185 - 20 * 60, [flow('https', 1, 1)])
    }
    // Every minute released once, as the collector does once they closed.
    await releaseUsage(h.store, { k: K, releaseAfterSeconds: 600, now: (M + 240 + 600) * 1000 })
  })
  afterAll(() => h?.close())

  it('3: by=service minus by=direction for one window gives nothing', async () => {
    const window = `from=${M}&to=${M + 60}`
    const byService = await usage(`${window}&by=service`)
    const byDirection = await usage(`${window}&by=direction`)
    // The cells the answers are made of: https of six hosts (21,000 bytes); ssh, one host, is
    // suppressed and so is its site's 'other' (one host).
    expect(byService).toEqual([
      expect.objectContaining({ service: 'https', bytes: 21_000, hosts: 6 }),
    ])
    expect(byDirection).toEqual([
      expect.objectContaining({ direction: 'outbound', bytes: 21_000, hosts: 6 }),
    ])
    expect(total(byDirection) - total(byService)).toBe(0)
    for (const by of USAGE_DIMENSIONS) {
      expect(total(await usage(`${window}&by=${by}`)), by).toBe(21_000)
    }
  })

  it('3: a longer window minus a shorter one gives nothing', async () => {
    const longer = await usage(`from=${M + 60}&to=${M + 180}&by=service`)
    const shorter = await usage(`from=${M + 60}&to=${M + 120}&by=service`)
    expect(total(shorter)).toBe(615)
    expect(total(longer) - total(shorter)).toBe(0)
    // The attack as filed, in 10 s windows: both are whole minutes, the same cells.
    const t0 = M + 60
    const twenty = await usage(`from=${t0}&to=${t0 + 20}&by=service&step=60`)
    const ten = await usage(`from=${t0}&to=${t0 + 10}&by=service&step=60`)
    expect(twenty).toEqual(ten)
    // Any step, any window: a sum of whole released minutes (M: 21,000; M+1: 615), never with
    // the 4242 bytes of ws-1's lone minute.
    for (const step of [60, 120, 180, 3600, 7200]) {
      for (const [from, to, expected] of [
        [M, M + 180, 21_615],
        [M + 60, M + 240, 615],
        [M + 120, M + 180, 0],
        [M - 3600, M + 3600, 21_615],
      ] as const) {
        const buckets = await usage(`from=${from}&to=${to}&by=direction&step=${step}`)
        expect(total(buckets), `${from - M}..${to - M} step ${step}`).toBe(expected)
      }
    }
  })

  it('3: a step that is not whole minutes is refused', async () => {
    const res = await h.app.request(`/v1/usage?site=${SITE}&from=${M}&to=${M + 20}&step=10`, {
      headers: { authorization: `Bearer ${operator}` },
    })
    expect(res.status).toBe(400)
    expect(await res.text()).toContain('step')
  })

  it('4: four zero-byte and backdated agents do not make a lone host visible', async () => {
    const minute = await usage(`from=${M + 180}&to=${M + 240}&by=service`)
    expect(minute).toEqual([])
    const hosts = await selectRows<{ hosts: number }>(
      h.store,
      `SELECT uniqMerge(hosts) AS hosts FROM tally.usage_cells
       WHERE site = {site:String} AND ts = toDateTime({minute:UInt32})`,
      { site: SITE, minute: M + 180 },
    )
    // ws-2 alone: the zero-byte rows are there but count no host.
    expect(Number(hosts[0]?.hosts)).toBe(1)
    // The backdated usage was not stored at all.
    const backdated = await selectRows<{ n: number }>(
      h.store,
      `SELECT count() AS n FROM tally.usage_cells
       WHERE site = {site:String} AND ts < toDateTime({before:UInt32})`,
      { site: SITE, before: M },
    )
    expect(Number(backdated[0]?.n)).toBe(0)
    // Over the whole hour no answer ever shows ws-2's 31,337 bytes.
    const hour = await usage(`from=${M - 3600}&to=${M + 3600}&by=service&step=7200`)
    expect(total(hour)).toBe(21_000 + 615)
  })

  it('2: the k views are SQL SECURITY DEFINER, on the engine as rendered', async () => {
    for (const by of USAGE_DIMENSIONS) {
      expect(usageViewSql(by, K)).toMatch(/^CREATE OR REPLACE VIEW \S+ SQL SECURITY DEFINER AS/)
      const [row] = await selectRows<{ q: string }>(
        h.store,
        "SELECT create_table_query AS q FROM system.tables WHERE database = 'tally' AND name = {n:String}",
        { n: `usage_by_${by}` },
      )
      expect(row?.q).toMatch(/ SQL SECURITY DEFINER AS /)
      // They read released cells only, never the raw ones.
      expect(row?.q).not.toMatch(/usage_cells|usage_contributions/)
    }
  })

  it('2: a reader of the states cannot test whether a known host is in a cell', async () => {
    // The worst case: someone reads tally.usage_released as the collector does. Adding a known
    // host's name or agent id to a cell's state always raises the count: none of them is there.
    const candidates = real.flatMap((a) => [a.host, a.agent_id])
    const rows = await selectRows<{ candidate: string; before: number; after: number }>(
      h.store,
      `SELECT candidate, uniqMerge(hosts) AS before,
              uniqMerge(arrayReduce('uniqMergeState', [hosts, arrayReduce('uniqState', [candidate])])) AS after
       FROM (SELECT uniqMergeState(hosts) AS hosts FROM tally.usage_released
             WHERE site = {site:String} AND ts = toDateTime({minute:UInt32}) AND folded = 0)
       ARRAY JOIN {candidates:Array(String)} AS candidate
       GROUP BY candidate`,
      { site: SITE, minute: M, candidates },
    )
    expect(rows).toHaveLength(candidates.length)
    for (const row of rows) expect(Number(row.after), row.candidate).toBe(Number(row.before) + 1)
    // With the collector's key (not Grafana's to read) the same test finds all six: the key
    // is what stands between a reader and the hosts.
    const key = loadOrCreateUsageHostKey(h.dir)
    const keyed = await selectRows<{ after: number; before: number }>(
      h.store,
      `SELECT uniqMerge(hosts) AS before,
              uniqMerge(arrayReduce('uniqMergeState', [hosts, arrayReduce('uniqState', {ids:Array(String)})])) AS after
       FROM (SELECT uniqMergeState(hosts) AS hosts FROM tally.usage_released
             WHERE site = {site:String} AND ts = toDateTime({minute:UInt32}) AND folded = 0)`,
      { site: SITE, minute: M, ids: real.map((a) => key.idOf(a.agent_id)) },
    )
    expect(Number(keyed[0]?.after)).toBe(Number(keyed[0]?.before))
  })

  it('2: grafana_ro is revoked from every usage table and reads the k views only', () => {
    const xml = readFileSync(
      new URL('../../deploy/clickhouse/users.d/tally.xml', import.meta.url),
      'utf8',
    )
    const reader = /<tally_reader>([\s\S]*?)<\/tally_reader>/.exec(xml)?.[1] ?? ''
    const queries = [...reader.matchAll(/<query>([^<]*)<\/query>/g)].map((m) => m[1] as string)
    expect(queries[0]).toBe('GRANT SELECT ON tally.*')
    expect(queries.slice(1).every((q) => q.startsWith('REVOKE SELECT'))).toBe(true)
    const revoked = new Set(
      queries.map((q) => /^REVOKE SELECT ON (\S+)$/.exec(q)?.[1]).filter((t) => t !== undefined),
    )
    // Every usage table and materialized view the migrations leave, and its cluster shard.
    const live = liveUsageObjects()
    expect(live).toEqual([
      'tally.usage_cells',
      'tally.usage_cells_mv',
      'tally.usage_contributions',
      'tally.usage_release_marks',
      'tally.usage_released',
      'tally.usage_released_1h',
      'tally.usage_released_1h_mv',
    ])
    for (const table of live) {
      expect(revoked, table).toContain(table)
      if (Object.hasOwn(SHARDING_KEYS, table)) expect(revoked, table).toContain(`${table}_local`)
    }
    for (const by of USAGE_DIMENSIONS) expect(revoked).not.toContain(`tally.usage_by_${by}`)
  })

  it('2: the engine, loading the users file, computes the same grants for grafana_ro', async () => {
    // chDB runs as its one user and cannot act as another (no impersonation): what it can do is
    // load deploy's users file as a server does and say what grafana_ro may do.
    const dir = await mkdtemp(join(tmpdir(), 'tally-engine-grants-'))
    try {
      const { stdout } = await run(
        process.execPath,
        [new URL('./engine-grants.ts', import.meta.url).pathname, dir],
        {
          timeout: 50_000,
          killSignal: 'SIGKILL',
          env: { ...process.env, TALLY_GRAFANA_CH_PASSWORD: 'x', TALLY_COLLECTOR_CH_PASSWORD: 'y' },
        },
      )
      const grants = JSON.parse(stdout) as { grafana_ro: string[]; tally_reader: string[] }
      expect(grants.grafana_ro).toEqual(['GRANT tally_reader TO grafana_ro'])
      const reader = new Set(grants.tally_reader)
      expect(reader).toContain('GRANT SELECT ON tally.* TO tally_reader')
      for (const table of liveUsageObjects()) {
        expect(reader, table).toContain(`REVOKE SELECT ON ${table} FROM tally_reader`)
        if (Object.hasOwn(SHARDING_KEYS, table)) {
          expect(reader, table).toContain(`REVOKE SELECT ON ${table}_local FROM tally_reader`)
        }
      }
      for (const line of reader) expect(line).not.toMatch(/usage_by_/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

const run = promisify(execFile)

/** Every usage table and materialized view the migrations leave in place. */
function liveUsageObjects(): string[] {
  const dir = new URL('../../collector/store/migrations/', import.meta.url)
  const made = new Set<string>()
  const dropped = new Set<string>()
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql'))) {
    const sql = readFileSync(new URL(file, dir), 'utf8')
    for (const m of sql.matchAll(
      /CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS (tally\.usage_\w+)/g,
    )) {
      made.add(m[1] as string)
    }
    for (const m of sql.matchAll(/DROP (?:TABLE|VIEW) IF EXISTS (tally\.usage_\w+)/g)) {
      dropped.add(m[1] as string)
    }
  }
  return [...made].filter((t) => !dropped.has(t)).sort()
}
