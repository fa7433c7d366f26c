/**
 * Enrollment: an agent trades an enrollment token for its credential, served with its contract
 * (protocol/api/agents.ts). The agent's other routes are ingest (routes/ingest.ts) and the grants
 * poll, the cases' (routes/cases.ts).
 */
import * as api from '../../protocol/api/agents.ts'
import { enroll } from '../auth/enrollment.ts'
import type { GrantSigningKey } from '../auth/signing-key.ts'
import type { CollectorConfig } from '../config.ts'
import { ContractRoutes } from '../contract.ts'
import type { Register } from '../register/register.ts'
import type { Store } from '../store/client.ts'

export function agentRoutes(
  store: Store,
  config: CollectorConfig,
  signingKey: GrantSigningKey,
  register: Register,
) {
  return new ContractRoutes(store).serve(api.enrollAgent, async ({ c, token, body }) => {
    const { response: enrolled, replayed } = await enroll(
      store,
      token,
      await body(),
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
    return enrolled
  }).app
}
