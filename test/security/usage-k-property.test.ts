/**
 * The k rule of site usage as a property, on the real engine: for random sites (hosts, minutes,
 * contributions) and random pairs of queries (groupings, windows, steps), no suppressed cell's
 * value can be recovered by subtracting answers.
 *
 * Shown by indistinguishability: two worlds hold the same contributions except that one cell
 * under k carries other bytes (moved from another suppressed cell of the same minute when the
 * site's 'other' cell is visible, so that what is released is the same). Every answer, and so
 * every difference of two answers, is the same in both worlds; whatever an operator computes
 * from answers cannot tell the cell's value.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Store } from '../../collector/store/client.ts'
import { createUsageViews, queryUsage, releaseUsage } from '../../collector/store/usage.ts'
import { USAGE_DIMENSIONS, type UsageDimension } from '../../protocol/api/names.ts'
import { type Harness, openHarness } from '../collector/harness.ts'

const K = 3
const RUNS = 20
/** Three minutes per run, all within the raw cells' life (migration 010) and the catch-up. */
const MINUTES_PER_RUN = 3
const START = Math.floor(Date.now() / 60_000) * 60 - 100 * 60

interface Contribution {
  minute: number
  host: number
  service: 'https' | 'dns' | 'ssh'
  direction: 'inbound' | 'outbound'
  peer_class: 'internet' | 'lan'
  bytes: number
  packets: number
}

const contribution = fc.record({
  minute: fc.integer({ min: 0, max: MINUTES_PER_RUN - 1 }),
  host: fc.integer({ min: 0, max: 5 }),
  service: fc.constantFrom('https', 'dns', 'ssh'),
  direction: fc.constantFrom('inbound', 'outbound'),
  peer_class: fc.constantFrom('internet', 'lan'),
  bytes: fc.integer({ min: 1, max: 100_000 }),
  packets: fc.integer({ min: 0, max: 3 }),
}) as fc.Arbitrary<Contribution>

const query = fc.record({
  by: fc.constantFrom(...USAGE_DIMENSIONS),
  // Offsets from the run's first minute, in seconds; any alignment (the API widens to minutes,
  // Grafana calls the views directly).
  from: fc.constantFrom(-3600, -60, 0, 30, 60, 90, 120),
  length: fc.constantFrom(10, 60, 90, 120, 180, 240, 3600, 7200),
  step: fc.constantFrom(60, 120, 180, 3600, 7200),
})

const transportOf = (service: string) => (service === 'dns' ? 'udp' : 'tcp')
const cellOf = (c: Contribution) =>
  [c.minute, c.direction, transportOf(c.service), c.service, c.peer_class].join('|')
const counts = (c: Contribution) => c.packets > 0 && c.bytes > 0

/** The cells under k, and whether each minute's 'other' reaches k. */
function suppressed(world: Contribution[]) {
  const hosts = new Map<string, Set<number>>()
  for (const c of world) {
    const set = hosts.get(cellOf(c)) ?? new Set<number>()
    if (counts(c)) set.add(c.host)
    hosts.set(cellOf(c), set)
  }
  const under = new Set([...hosts].filter(([, set]) => set.size < K).map(([cell]) => cell))
  const otherHosts = new Map<number, Set<number>>()
  for (const c of world) {
    if (!under.has(cellOf(c)) || !counts(c)) continue
    const set = otherHosts.get(c.minute) ?? new Set<number>()
    set.add(c.host)
    otherHosts.set(c.minute, set)
  }
  const otherVisible = (minute: number) => (otherHosts.get(minute)?.size ?? 0) >= K
  return { under, otherVisible }
}

/**
 * World B: the bytes of one contribution in a suppressed cell changed, the site's released
 * totals kept. Undefined when the world has no such change to make.
 */
function perturb(world: Contribution[], pick: number): Contribution[] | undefined {
  const { under, otherVisible } = suppressed(world)
  const targets = world.map((c, i) => [c, i] as const).filter(([c]) => under.has(cellOf(c)))
  if (targets.length === 0) return undefined
  const [target, at] = targets[pick % targets.length] as (typeof targets)[number]
  const b = world.map((c) => ({ ...c }))
  const changed = b[at] as Contribution
  if (!otherVisible(target.minute)) {
    changed.bytes += 1 + (pick % 5000)
    return b
  }
  // 'other' is released: move bytes between two suppressed cells of the minute, so its sum
  // stays; every byte count stays above zero so no host's counting changes.
  const partner = targets.find(
    ([c]) => c.minute === target.minute && cellOf(c) !== cellOf(target) && c.bytes >= 2,
  )
  if (partner === undefined) return undefined
  const moved = 1 + (pick % (partner[0].bytes - 1))
  changed.bytes += moved
  ;(b[partner[1]] as Contribution).bytes -= moved
  return b
}

async function insertWorld(store: Store, site: string, base: number, world: Contribution[]) {
  await store.insert({
    table: 'tally.usage_contributions',
    format: 'JSONEachRow',
    values: world.map((c) => ({
      ts: base + c.minute * 60 + 7,
      site,
      host: `host-${c.host}`,
      direction: c.direction,
      ip_version: 4,
      transport: transportOf(c.service),
      service: c.service,
      peer_class: c.peer_class,
      bytes: c.bytes,
      packets: c.packets,
      flows: 1,
    })),
    clickhouse_settings: { insert_deduplication_token: '' },
  })
}

describe('site usage: no pair of answers recovers a suppressed cell', () => {
  let h: Harness
  let run = 0

  beforeAll(async () => {
    h = await openHarness()
    await createUsageViews(h.store, K)
  })
  afterAll(() => h?.close())

  it(`holds for ${RUNS} random sites and query pairs (k = ${K})`, async () => {
    let perturbed = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(contribution, { minLength: 1, maxLength: 30 }),
        fc.nat(),
        fc.tuple(query, query),
        async (world, pick, pair) => {
          const other = perturb(world, pick)
          const base = START + run * MINUTES_PER_RUN * 60
          run++
          expect(run * MINUTES_PER_RUN).toBeLessThan(90)
          const a = `pa-${run}`
          const b = `pb-${run}`
          await insertWorld(h.store, a, base, world)
          await insertWorld(h.store, b, base, other ?? world)
          const closed = base + MINUTES_PER_RUN * 60
          await releaseUsage(h.store, {
            k: K,
            releaseAfterSeconds: 600,
            now: (closed + 600) * 1000,
          })
          if (other !== undefined) perturbed++
          const answer = async (site: string, q: (typeof pair)[number]) => {
            const from = base + q.from
            const rows = await queryUsage(h.store, {
              site,
              from,
              to: from + q.length,
              by: q.by as UsageDimension,
              step: q.step,
            })
            return rows.map(({ site: _site, ...rest }) => rest)
          }
          const [first, second] = pair
          const a1 = await answer(a, first)
          const a2 = await answer(a, second)
          const b1 = await answer(b, first)
          const b2 = await answer(b, second)
          // Each answer, and so any difference of the pair, is the same in both worlds.
          expect(b1).toEqual(a1)
          expect(b2).toEqual(a2)
          const total = (rows: { bytes: number }[]) => rows.reduce((s, r) => s + r.bytes, 0)
          expect(total(b1) - total(b2)).toBe(total(a1) - total(a2))
        },
      ),
      { numRuns: RUNS, endOnFailure: true },
    )
    // Not vacuous: most runs had a suppressed cell to change.
    expect(perturbed).toBeGreaterThan(RUNS / 2)
  }, 150_000)
})
