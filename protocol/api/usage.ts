/**
 * What operators read (tier A): the fleet of agents, and site usage (byte, packet, flow and host
 * counts per bucket, k threshold applied).
 */
import { z } from 'zod'
import { AUTH_ERRORS, route } from './contract.ts'
import { SITE_NAME, USAGE_DIMENSIONS } from './names.ts'

/**
 * The instants the store can hold and bucket: DateTime is seconds since 1970 in a UInt32, and a
 * bucket's start is `from + n * step`, so both ends stay before 2100 with room to spare.
 */
export const EARLIEST = 0
const LATEST = Date.UTC(2100, 0, 1) / 1000
const DAY = 86_400
export const MAX_RANGE = 800 * DAY

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

/** The query as sent; the collector aligns it to its grid and checks the range (routes/usage.ts). */
export const UsageQuery = z.strictObject({
  site: z.string().regex(SITE_NAME, 'must be a site name').optional(),
  from: instant.optional(),
  to: instant.optional(),
  by: z.enum(USAGE_DIMENSIONS).default('service'),
  step: z.coerce.number().int().min(10).max(MAX_RANGE).optional(),
})

export const UsageResponse = z.strictObject({
  site: z.string().nullable().describe('the site asked for, null for every site'),
  from: z.string(),
  to: z.string(),
  by: z.enum(USAGE_DIMENSIONS),
  step: z.number().int().describe('seconds per bucket'),
  k: z.number().int().describe('values seen on fewer hosts than this are summed as `other`'),
  buckets: z.array(
    z
      .object({
        ts: z.string(),
        site: z.string(),
        bytes: z.number(),
        packets: z.number(),
        flows: z.number(),
        hosts: z.number(),
      })
      .catchall(z.string())
      .describe('plus one property named after `by`, holding the value of that dimension'),
  ),
})

export const usage = route({
  method: 'GET',
  path: '/v1/usage',
  operationId: 'usage',
  summary: 'Site usage (tier A) with the k threshold applied (operator, admin)',
  security: 'user',
  roles: ['operator', 'admin'],
  query: UsageQuery,
  status: 200,
  answer: { description: 'usage buckets', schema: UsageResponse },
  errors: { '400': 'an unknown or invalid query parameter', ...AUTH_ERRORS },
})

export const FleetQuery = z.strictObject({ site: z.string().max(63).optional() })

export const FleetAgent = z.strictObject({
  agent_id: z.string(),
  host: z.string(),
  site: z.string(),
  version: z.string().nullable(),
  enrolled_at: z.string(),
  revoked: z.boolean(),
  last_seen: z.string().nullable(),
  last_seq: z.number().int().nullable(),
  batches: z.number().int(),
  spool_depth: z.number().nullable(),
})
export const FleetResponse = z.strictObject({ agents: z.array(FleetAgent) })
export const fleet = route({
  method: 'GET',
  path: '/v1/fleet',
  operationId: 'fleet',
  summary: 'Enrolled agents, versions, last seen, last sequence number (operator, admin)',
  security: 'user',
  roles: ['operator', 'admin'],
  query: FleetQuery,
  status: 200,
  answer: { description: 'the fleet', schema: FleetResponse },
  errors: { '400': 'an unknown or invalid query parameter', ...AUTH_ERRORS },
})

export const USAGE_RESPONSES = { FleetAgent, FleetResponse, UsageResponse }
