/**
 * What operators read (tier A), each route served with its contract (protocol/api/usage.ts):
 * GET /v1/fleet, the enrolled agents; GET /v1/usage, site usage with the k threshold applied.
 * Usage answers are made of whole released minutes (store/usage.ts): the range is widened to
 * whole minutes and the step is a multiple of a minute.
 */
import * as api from '../../protocol/api/usage.ts'
import type { ErrorBody } from '../../protocol/v1.ts'
import type { CollectorConfig } from '../config.ts'
import { ContractRoutes, queryRefusal } from '../contract.ts'
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import { listFleet } from '../store/fleet.ts'
import { GRID_SECONDS, queryUsage, toGrid } from '../store/usage.ts'

const MAX_BUCKETS = 10_000
const INVALID = 'invalid usage query'

/**
 * The query on the store's grid: the range widened to whole minutes, the step a multiple of one,
 * no more than MAX_BUCKETS buckets; or the 400 that names every problem (as the schema's are).
 */
function onGrid(p: {
  from?: number | undefined
  to?: number | undefined
  step?: number | undefined
}) {
  const issues: NonNullable<ErrorBody['issues']> = []
  const asked = p.to ?? Math.floor(Date.now() / 1000)
  const askedFrom = p.from ?? asked - 3600
  if (askedFrom >= asked) issues.push({ path: 'from', message: 'must be before to' })
  const { from, to } = toGrid(askedFrom, asked)
  const step = p.step ?? to - from
  if (step % GRID_SECONDS !== 0) {
    issues.push({
      path: 'step',
      message: `must be a whole number of minutes (a multiple of ${GRID_SECONDS} s)`,
    })
  }
  if (from < api.EARLIEST) issues.push({ path: 'from', message: 'must not be before 1970' })
  if (to - from > api.MAX_RANGE) issues.push({ path: 'from', message: 'range is over 800 days' })
  if ((to - from) / Math.max(step, 1) > MAX_BUCKETS) {
    issues.push({ path: 'step', message: `more than ${MAX_BUCKETS} steps in the range` })
  }
  if (issues.length > 0) throw new DomainError('invalid', 'invalid_query', INVALID, { issues })
  return { from, to, step }
}

export function usageRoutes(store: Store, config: CollectorConfig) {
  return new ContractRoutes(store)
    .serve(api.fleet, async ({ query }) => ({ agents: await listFleet(store, query().site) }))
    .serve(
      api.usage,
      async ({ query }) => {
        const asked = query()
        const { from, to, step } = onGrid(asked)
        const { by } = asked
        const site = asked.site ?? ''
        const buckets = await queryUsage(store, { site, from, to, by, step })
        return {
          site: site === '' ? null : site,
          from: new Date(from * 1000).toISOString(),
          to: new Date(to * 1000).toISOString(),
          by,
          step,
          k: config.usage.k,
          // The dimension's value under its own name, after the counts (an index signature
          // beside numeric fields is written as an intersection).
          buckets: buckets.map(({ value, ...rest }) => Object.assign({ ...rest }, { [by]: value })),
        }
      },
      { refuseQuery: queryRefusal('invalid_query', INVALID) },
    ).app
}
