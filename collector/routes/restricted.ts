/**
 * Tier I over HTTP: agents' ingest under a capture grant, investigators' drill-down and exports
 * under an access grant, the receiving official's downloads and receipt. The routes parse, call
 * the tier I service (restricted/service.ts) and map its answer or refusal; the rules and the
 * register entries live there.
 */
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { z } from 'zod'
import { RestrictedBatch } from '../../protocol/grants.ts'
import { requireAgent, requireUser } from '../auth/middleware.ts'
import type { Role } from '../auth/roles.ts'
import { type CollectorEnv, problem, readJson, zodIssues } from '../http.ts'
import { AccessDenied, GRANT_HEADER } from '../restricted/access.ts'
import { type BodyLimits, RESTRICTED_BODY_LIMITS, readAgentJson } from '../restricted/body.ts'
import { DRILL_CATEGORIES, type DrillCategory, ScopeError } from '../restricted/drilldown.ts'
import { MANIFEST, Receipt } from '../restricted/export.ts'
import type { RestrictedIngestAck } from '../restricted/openapi.ts'
import { TierIRefused, TierIService, type TierIServiceDeps } from '../restricted/service.ts'

/** The tier I service's dependencies, and how the routes cap bodies and ask for retries. */
export interface RestrictedRoutesDeps extends TierIServiceDeps {
  limits?: BodyLimits
  retryAfterSeconds?: number
}

const INVESTIGATORS: Role[] = ['itsd_investigator', 'oios_investigator']

const isRegisterDown = (err: unknown) => err instanceof Error && err.name === 'RegisterUnavailable'

export function restrictedRoutes(deps: RestrictedRoutesDeps) {
  const { store } = deps
  const tierI = new TierIService(deps)
  const limits = deps.limits ?? RESTRICTED_BODY_LIMITS
  const retryAfter = String(deps.retryAfterSeconds ?? 5)
  const investigator = requireUser(store, INVESTIGATORS)
  const reader = requireUser(store, [...INVESTIGATORS, 'receiving_official'])
  const official = requireUser(store, ['receiving_official'])
  const app = new Hono<CollectorEnv>()

  const registerDown = (c: Context) => {
    c.header('Retry-After', retryAfter)
    return problem(
      c,
      503,
      'register_unavailable',
      'the register could not be written, so nothing was done; retry later',
    )
  }
  /** A refusal of the service as its answer; anything else goes on to app.onError. */
  const refused = (c: Context, err: unknown): Response => {
    if (err instanceof TierIRefused) {
      return problem(
        c,
        err.status,
        err.code,
        err.message,
        err.details.length > 0 ? err.details : undefined,
      )
    }
    if (err instanceof AccessDenied || err instanceof ScopeError) {
      return problem(c, err.status, err.code, err.message)
    }
    if (isRegisterDown(err)) return registerDown(c)
    throw err
  }

  app.post(
    '/v1/restricted/ingest',
    bodyLimit({
      maxSize: limits.maxBodyBytes,
      onError: (c) =>
        problem(c, 413, 'body_too_large', `request body exceeds ${limits.maxBodyBytes} bytes`),
    }),
    requireAgent(store),
    async (c) => {
      const agent = c.get('agent')
      const body = await readAgentJson(c, limits)
      if (!body.ok) return body.response
      const parsed = RestrictedBatch.safeParse(body.value)
      if (!parsed.success) {
        return problem(
          c,
          400,
          'invalid_batch',
          'batch does not match the restricted batch schema',
          zodIssues(parsed.error),
        )
      }
      const batch = parsed.data
      try {
        const outcome = await tierI.ingest(agent, batch)
        if (outcome.kind === 'rejected') return problem(c, 403, outcome.code, outcome.message)
        if (outcome.kind === 'invalid') return problem(c, 400, outcome.code, outcome.message)
        const ack: RestrictedIngestAck = {
          agent_id: agent.agent_id,
          grant_id: batch.grant_id,
          seq: batch.seq,
          status: outcome.kind,
          counts: outcome.counts,
        }
        return c.json(ack)
      } catch (err) {
        if (isRegisterDown(err)) return registerDown(c)
        c.get('log').error(
          { err, agent_id: agent.agent_id, seq: batch.seq },
          'restricted store write failed',
        )
        c.header('Retry-After', retryAfter)
        return problem(
          c,
          503,
          'store_unavailable',
          'the store could not take the batch; retry later',
        )
      }
    },
  )

  const caseId = (c: Context) => c.req.param('id') ?? ''
  const grantOf = (c: Context) => c.req.header(GRANT_HEADER)

  const drill = (category: DrillCategory) => async (c: Context<CollectorEnv>) => {
    try {
      const { body } = await tierI.drill(
        c.get('user'),
        grantOf(c),
        caseId(c),
        category,
        c.req.queries(),
      )
      return c.body(body, 200, {
        'content-type': 'application/json; charset=UTF-8',
        'cache-control': 'no-store',
      })
    } catch (err) {
      return refused(c, err)
    }
  }
  for (const category of DRILL_CATEGORIES) {
    app.get(`/v1/cases/:id/${category}`, investigator, drill(category))
  }

  app.post('/v1/cases/:id/exports', investigator, async (c) => {
    const text = await c.req.text()
    if (text.trim() !== '') {
      const body = await readJson(c, z.strictObject({}))
      if (!body.ok) return body.response
    }
    try {
      const made = await tierI.createExport(c.get('user'), grantOf(c), caseId(c), c.get('log'))
      return c.json(made, 201)
    } catch (err) {
      return refused(c, err)
    }
  })

  const download = (pick: (c: Context) => string) => async (c: Context<CollectorEnv>) => {
    try {
      const name = pick(c)
      const exportId = c.req.param('export_id') ?? ''
      const bytes = await tierI.download(c.get('user'), grantOf(c), caseId(c), exportId, name)
      return c.body(new Uint8Array(bytes), 200, {
        'content-type': contentType(name),
        'content-disposition': `attachment; filename="${name}"`,
        'cache-control': 'no-store',
      })
    } catch (err) {
      return refused(c, err)
    }
  }
  app.get(
    '/v1/cases/:id/exports/:export_id/manifest',
    reader,
    download(() => MANIFEST),
  )
  app.get(
    '/v1/cases/:id/exports/:export_id/files/:name',
    reader,
    download((c) => c.req.param('name') ?? ''),
  )

  app.post('/v1/cases/:id/exports/:export_id/receipt', official, async (c) => {
    const user = c.get('user')
    try {
      const doc = await tierI.mayReceive(user, caseId(c))
      const receipt = await readJson(c, Receipt)
      if (!receipt.ok) return receipt.response
      const exportId = c.req.param('export_id') ?? ''
      return c.json(await tierI.signReceipt(user, doc, exportId, receipt.value))
    } catch (err) {
      return refused(c, err)
    }
  })

  return app
}

function contentType(name: string): string {
  if (name.endsWith('.json')) return 'application/json; charset=UTF-8'
  if (name.endsWith('.csv')) return 'text/csv; charset=UTF-8'
  if (name.endsWith('.pcap')) return 'application/vnd.tcpdump.pcap'
  return 'application/octet-stream'
}
