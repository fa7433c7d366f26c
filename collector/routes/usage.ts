/**
 * GET /v1/usage: site usage (tier A) with the k threshold applied, for operators. Answers are
 * made of whole released minutes (store/usage.ts): the range is widened to whole minutes and
 * the step is a multiple of a minute.
 */
import { Hono } from 'hono'
import { z } from 'zod'
import { SITE_NAME } from '../auth/enrollment.ts'
import { requireUser } from '../auth/middleware.ts'
import type { CollectorConfig } from '../config.ts'
import { type CollectorEnv, problem, zodIssues } from '../http.ts'
import type { Store } from '../store/client.ts'
import { GRID_SECONDS, queryUsage, toGrid, USAGE_DIMENSIONS } from '../store/usage.ts'

/**
 * The instants the store can hold and bucket: DateTime is seconds since 1970 in a UInt32, and a
 * bucket's start is `from + n * step`, so both ends stay before 2100 with room to spare.
 */
const EARLIEST = 0
const LATEST = Date.UTC(2100, 0, 1) / 1000
const DAY = 86_400
const MAX_RANGE = 800 * DAY

/** A time as ISO 8601 or seconds since the epoch, to whole seconds, from 1970 to 2100. */
const instant = z.string().transform((text, ctx) => {
  const ms = /^\d{1,12}$/.test(text) ? Number(text) * 1000 : Date.parse(text)
  if (!Number.isFinite(ms)) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO 8601 time or seconds since the epoch' })
    return z.NEVER
  }
  const seconds = Math.floor(ms / 1000)
  if (seconds < EARLIEST || seconds > LATEST) {
    ctx.addIssue({ code: 'custom', message: 'must be between 1970 and 2100' })
    return z.NEVER
  }
  return seconds
})

const MAX_BUCKETS = 10_000

export const UsageParams = z
  .strictObject({
    site: z.string().regex(SITE_NAME, 'must be a site name').optional(),
    from: instant.optional(),
    to: instant.optional(),
    by: z.enum(USAGE_DIMENSIONS).default('service'),
    step: z.coerce.number().int().min(10).max(MAX_RANGE).optional(),
  })
  .transform((p, ctx) => {
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
        return problem(c, 400, 'invalid_query', 'invalid usage query', zodIssues(params.error))
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
