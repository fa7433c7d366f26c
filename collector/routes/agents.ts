/** Enrollment (agents) and the fleet view (operators). */
import { Hono } from 'hono'
import { FleetQuery } from '../../protocol/api/admin.ts'
import { EnrollRequest } from '../../protocol/v1.ts'
import { enroll } from '../auth/enrollment.ts'
import { requireUser } from '../auth/middleware.ts'
import type { GrantSigningKey } from '../auth/signing-key.ts'
import { bearer } from '../auth/tokens.ts'
import type { CollectorConfig } from '../config.ts'
import { DomainError } from '../errors.ts'
import { type CollectorEnv, jsonBody } from '../http.ts'
import type { Register } from '../register/register.ts'
import type { Store } from '../store/client.ts'
import { listFleet } from '../store/fleet.ts'

export function agentRoutes(
  store: Store,
  config: CollectorConfig,
  signingKey: GrantSigningKey,
  register: Register,
) {
  return new Hono<CollectorEnv>()
    .post('/v1/agents/enroll', async (c) => {
      const token = bearer(c.req.header('authorization'))
      if (token === undefined) {
        throw new DomainError(
          'unauthenticated',
          'unauthenticated',
          'an enrollment token is required (Authorization: Bearer ...)',
        )
      }
      const request = await jsonBody(c, EnrollRequest)
      const { response: enrolled, replayed } = await enroll(
        store,
        token,
        request,
        signingKey.publicJwk,
        config.enrollment.interval_seconds,
        Date.now(),
        // Every enrollment, a replayed one too, is on the ITSD register before it is answered.
        (enrollment) =>
          register.append({
            register: 'itsd',
            kind: 'agent enrolled',
            actor: `enrollment token ${enrollment.token_id}`,
            details: enrollment,
          }),
      )
      c.get('log').info(
        { agent_id: enrolled.agent_id, host: enrolled.host, site: enrolled.site, replayed },
        replayed
          ? 'agent enrolled again with the same token and instance: new credential, the previous one revoked'
          : 'agent enrolled',
      )
      return c.json(enrolled, 201)
    })
    .get('/v1/fleet', requireUser(store, ['operator', 'admin']), async (c) => {
      const query = FleetQuery.safeParse(c.req.query())
      if (!query.success) {
        throw new DomainError(
          'invalid',
          'invalid_query',
          `unknown or invalid query parameter: ${query.error.issues[0]?.message}`,
        )
      }
      return c.json({ agents: await listFleet(store, query.data.site) })
    })
}
