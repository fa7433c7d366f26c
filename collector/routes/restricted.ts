/**
 * Tier I over HTTP: agents' ingest under a capture grant, investigators' drill-down and exports
 * under an access grant, the receiving official's downloads and receipt. The routes parse and
 * call the tier I service (restricted/service.ts); the rules and the register entries live there,
 * and its refusals (DomainError) are answered by app.onError.
 */
import type { Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { z } from 'zod'
import * as api from '../../protocol/api/restricted.ts'
import { type ContractRequest, ContractRoutes } from '../contract.ts'
import { DomainError } from '../errors.ts'
import { jsonBody, zodIssues } from '../http.ts'
import { GRANT_HEADER } from '../restricted/access.ts'
import { type BodyLimits, readAgentJson } from '../restricted/body.ts'
import { MANIFEST } from '../restricted/export.ts'
import type { DrillCategory } from '../restricted/narrowing.ts'
import { TierIService, type TierIServiceDeps } from '../restricted/service.ts'

/** The tier I service's dependencies, and how the routes cap bodies (the `restricted` settings). */
export interface RestrictedRoutesDeps extends TierIServiceDeps {
  limits: BodyLimits
}

const grantOf = (c: Context) => c.req.header(GRANT_HEADER)

export function restrictedRoutes(deps: RestrictedRoutesDeps) {
  const tierI = new TierIService(deps)
  const { limits } = deps

  /** The drill-down answers the JSON it registered, byte for byte (its digest is on record). */
  const drill =
    (category: DrillCategory) =>
    async ({ c, user, params }: DrillRequest) => {
      // The query is the service's to check, against the grant, once access is settled.
      const { body } = await tierI.drill(user, grantOf(c), params.id, category, c.req.queries())
      return c.body(body, 200, {
        'content-type': 'application/json; charset=UTF-8',
        'cache-control': 'no-store',
      })
    }

  const download = async (
    { c, user, params }: ContractRequest<typeof api.exportManifest>,
    name: string,
  ) => {
    const bytes = await tierI.download(user, grantOf(c), params.id, params.export_id, name)
    return c.body(new Uint8Array(bytes), 200, {
      'content-type': contentType(name),
      'content-disposition': `attachment; filename="${name}"`,
      'cache-control': 'no-store',
    })
  }

  return new ContractRoutes(deps.store)
    .serve(
      api.restrictedIngest,
      async ({ c, agent, body }) => {
        const batch = await body()
        const outcome = await tierI.ingest(agent, batch, c.get('log'))
        return {
          agent_id: agent.agent_id,
          grant_id: batch.grant_id,
          seq: batch.seq,
          status: outcome.kind,
          counts: outcome.counts,
        }
      },
      {
        // The compressed body is capped before the credential is read, as before any route.
        before: [
          bodyLimit({
            maxSize: limits.max_body_bytes,
            onError: () => {
              throw new DomainError(
                'too_large',
                'body_too_large',
                `request body exceeds ${limits.max_body_bytes} bytes`,
              )
            },
          }),
        ],
        bodyReader: {
          read: (c) => readAgentJson(c, limits),
          refuse: (error) =>
            new DomainError(
              'invalid',
              'invalid_batch',
              'batch does not match the restricted batch schema',
              { issues: zodIssues(error) },
            ),
        },
      },
    )
    .serve(api.drillFlows, drill('flows'))
    .serve(api.drillDns, drill('dns'))
    .serve(api.drillWeb, drill('web'))
    .serve(api.createExport, async ({ c, user, params }) => {
      // The body is optional; when given it must be an empty object.
      if ((await c.req.text()).trim() !== '') await jsonBody(c, z.strictObject({}))
      return tierI.createExport(user, grantOf(c), params.id, c.get('log'))
    })
    .serve(api.listExports, ({ c, user, params }) => tierI.listExports(user, grantOf(c), params.id))
    .serve(api.exportManifest, (request) => download(request, MANIFEST))
    .serve(api.exportFile, (request) => download(request, request.params.name))
    .serve(api.signReceipt, async ({ user, params, body }) => {
      // Asked before the body is read: anyone else learns nothing from a body's errors.
      const doc = await tierI.mayReceive(user, params.id)
      return tierI.signReceipt(user, doc, params.export_id, await body())
    }).app
}

/** The three drill-downs take the same request: the case, the caller, the grant header. */
type DrillRequest = Pick<ContractRequest<typeof api.drillFlows>, 'c' | 'user' | 'params'>

function contentType(name: string): string {
  if (name.endsWith('.json')) return 'application/json; charset=UTF-8'
  if (name.endsWith('.csv')) return 'text/csv; charset=UTF-8'
  if (name.endsWith('.pcap')) return 'application/vnd.tcpdump.pcap'
  return 'application/octet-stream'
}
