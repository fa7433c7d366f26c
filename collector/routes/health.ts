/**
 * The process's own routes, served with their contracts (protocol/api/health.ts): GET /healthz
 * (the process answers), GET /readyz (the store takes writes), GET /metrics (its own metrics,
 * Prometheus text) and GET /v1/openapi.json (the API document). Ready means a write succeeds: a
 * full disk leaves reads and pings working (store/health.ts).
 */
import * as api from '../../protocol/api/health.ts'
import { ContractRoutes } from '../contract.ts'
import { DomainError } from '../errors.ts'
import type { OpenApiDocument } from '../openapi.ts'
import type { Store } from '../store/client.ts'
import type { WriteProbe } from '../store/health.ts'
import { PROMETHEUS_CONTENT_TYPE } from '../telemetry.ts'

/** What the process says of itself: its metrics as Prometheus text, and the API document. */
export interface SelfDescription {
  metrics: () => Promise<string>
  document: OpenApiDocument
}

export function healthRoutes(store: Store, writes: WriteProbe, self: SelfDescription) {
  return new ContractRoutes(store)
    .serve(api.healthz, () => ({ status: 'ok' as const }))
    .serve(api.readyz, async () => {
      const ping = await store.ping()
      if (!ping.success) {
        throw new DomainError(
          'unavailable',
          'store_unavailable',
          `store is not reachable: ${ping.error.message}`,
        )
      }
      const health = await writes.check()
      if (!health.ok) {
        throw new DomainError(
          'unavailable',
          'store_not_writable',
          `the store does not take writes (${health.reason})`,
        )
      }
      return { status: 'ready' as const }
    })
    .serve(api.metrics, async ({ c }) =>
      c.text(await self.metrics(), 200, { 'content-type': PROMETHEUS_CONTENT_TYPE }),
    )
    .serve(api.openapi, ({ c }) => c.json(self.document)).app
}
