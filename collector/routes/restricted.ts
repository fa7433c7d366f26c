/**
 * Tier I over HTTP: agents' ingest under a capture grant, investigators' drill-down and exports
 * under an access grant, the receiving official's downloads and receipt. The routes parse and
 * call the tier I service (restricted/service.ts); the rules and the register entries live there,
 * and its refusals (DomainError) are answered by app.onError.
 */
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { z } from 'zod'
import { RestrictedBatch } from '../../protocol/grants.ts'
import { requireAgent, requireUser } from '../auth/middleware.ts'
import type { Role } from '../auth/roles.ts'
import { DomainError } from '../errors.ts'
import { type CollectorEnv, jsonBody, problem, zodIssues } from '../http.ts'
import { GRANT_HEADER } from '../restricted/access.ts'
import { type BodyLimits, readAgentJson } from '../restricted/body.ts'
import { MANIFEST, Receipt } from '../restricted/export.ts'
import { DRILL_CATEGORIES, type DrillCategory } from '../restricted/narrowing.ts'
import type { RestrictedIngestAck } from '../restricted/openapi.ts'
import { TierIService, type TierIServiceDeps } from '../restricted/service.ts'

/** The tier I service's dependencies, and how the routes cap bodies (the `restricted` settings). */
export interface RestrictedRoutesDeps extends TierIServiceDeps {
  limits: BodyLimits
}

const INVESTIGATORS: Role[] = ['itsd_investigator', 'oios_investigator']

export function restrictedRoutes(deps: RestrictedRoutesDeps) {
  const { store } = deps
  const tierI = new TierIService(deps)
  const { limits } = deps
  const investigator = requireUser(store, INVESTIGATORS)
  const reader = requireUser(store, [...INVESTIGATORS, 'receiving_official'])
  const official = requireUser(store, ['receiving_official'])
  const app = new Hono<CollectorEnv>()

  app.post(
    '/v1/restricted/ingest',
    bodyLimit({
      maxSize: limits.max_body_bytes,
      onError: (c) =>
        problem(c, 413, 'body_too_large', `request body exceeds ${limits.max_body_bytes} bytes`),
    }),
    requireAgent(store),
    async (c) => {
      const agent = c.get('agent')
      const parsed = RestrictedBatch.safeParse(await readAgentJson(c, limits))
      if (!parsed.success) {
        throw new DomainError(
          'invalid',
          'invalid_batch',
          'batch does not match the restricted batch schema',
          { issues: zodIssues(parsed.error) },
        )
      }
      const batch = parsed.data
      const outcome = await tierI.ingest(agent, batch, c.get('log'))
      const ack: RestrictedIngestAck = {
        agent_id: agent.agent_id,
        grant_id: batch.grant_id,
        seq: batch.seq,
        status: outcome.kind,
        counts: outcome.counts,
      }
      return c.json(ack)
    },
  )

  const caseId = (c: Context) => c.req.param('id') ?? ''
  const grantOf = (c: Context) => c.req.header(GRANT_HEADER)

  const drill = (category: DrillCategory) => async (c: Context<CollectorEnv>) => {
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
  }
  for (const category of DRILL_CATEGORIES) {
    app.get(`/v1/cases/:id/${category}`, investigator, drill(category))
  }

  app.post('/v1/cases/:id/exports', investigator, async (c) => {
    // The body is optional; when given it must be an empty object.
    if ((await c.req.text()).trim() !== '') await jsonBody(c, z.strictObject({}))
    const made = await tierI.createExport(c.get('user'), grantOf(c), caseId(c), c.get('log'))
    return c.json(made, 201)
  })

  const download = (pick: (c: Context) => string) => async (c: Context<CollectorEnv>) => {
    const name = pick(c)
    const exportId = c.req.param('export_id') ?? ''
    const bytes = await tierI.download(c.get('user'), grantOf(c), caseId(c), exportId, name)
    return c.body(new Uint8Array(bytes), 200, {
      'content-type': contentType(name),
      'content-disposition': `attachment; filename="${name}"`,
      'cache-control': 'no-store',
    })
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
    // Asked before the body is read: anyone else learns nothing from a body's errors.
    const doc = await tierI.mayReceive(user, caseId(c))
    const receipt = await jsonBody(c, Receipt)
    const exportId = c.req.param('export_id') ?? ''
    return c.json(await tierI.signReceipt(user, doc, exportId, receipt))
  })

  return app
}

function contentType(name: string): string {
  if (name.endsWith('.json')) return 'application/json; charset=UTF-8'
  if (name.endsWith('.csv')) return 'text/csv; charset=UTF-8'
  if (name.endsWith('.pcap')) return 'application/vnd.tcpdump.pcap'
  return 'application/octet-stream'
}
