/**
 * GET /v1/usage: site usage (tier A) with the k threshold applied, for operators. Answers are
 * made of whole released minutes (store/usage.ts): the range is widened to whole minutes and
 * the step is a multiple of a minute.
 */
import { Hono } from 'hono'
import { EARLIEST, MAX_RANGE, UsageQuery } from '../../protocol/api/usage.ts'
import { requireUser } from '../auth/middleware.ts'
import type { CollectorConfig } from '../config.ts'
import { DomainError } from '../errors.ts'
import { type CollectorEnv, zodIssues } from '../http.ts'
import type { Store } from '../store/client.ts'
import { GRID_SECONDS, queryUsage, toGrid } from '../store/usage.ts'

const MAX_BUCKETS = 10_000

const UsageParams = UsageQuery.transform((p, ctx) => {
  const asked = p.to ?? Math.floor(Date.now() / 1000)
  const askedFrom = p.from ?? asked - 3600
  if (askedFrom >= asked) {
    ctx.addIssue({ code: 'custom', path: ['from'], message: 'must be before to' })
  }
  const { from, to } = toGrid(askedFrom, asked)
  const step = p.step ?? to - from
  if (step % GRID_SECONDS !== 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['step'],
      message: `must be a whole number of minutes (a multiple of ${GRID_SECONDS} s)`,
    })
  }
  if (from < EARLIEST) {
    ctx.addIssue({ code: 'custom', path: ['from'], message: 'must not be before 1970' })
  }
  if (to - from > MAX_RANGE)
    ctx.addIssue({ code: 'custom', path: ['from'], message: 'range is over 800 days' })
  if ((to - from) / Math.max(step, 1) > MAX_BUCKETS) {
    ctx.addIssue({
      code: 'custom',
      path: ['step'],
      message: `more than ${MAX_BUCKETS} steps in the range`,
    })
  }
  return { site: p.site ?? '', from, to, by: p.by, step }
})

export function usageRoutes(store: Store, config: CollectorConfig) {
  return new Hono<CollectorEnv>().get(
    '/v1/usage',
    requireUser(store, ['operator', 'admin']),
    async (c) => {
      const params = UsageParams.safeParse(c.req.query())
      if (!params.success) {
        throw new DomainError('invalid', 'invalid_query', 'invalid usage query', {
          issues: zodIssues(params.error),
        })
      }
      const { site, from, to, by, step } = params.data
      const buckets = await queryUsage(store, params.data)
      return c.json({
        site: site === '' ? null : site,
        from: new Date(from * 1000).toISOString(),
        to: new Date(to * 1000).toISOString(),
        by,
        step,
        k: config.usage.k,
        buckets: buckets.map(({ value, ...rest }) => ({ ...rest, [by]: value })),
      })
    },
  )
}
