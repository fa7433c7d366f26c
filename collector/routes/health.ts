/**
 * GET /healthz (the process answers) and GET /readyz (the store takes writes), served with their
 * contracts (protocol/api/health.ts). Ready means a write succeeds: a full disk leaves reads and
 * pings working (store/health.ts).
 */
import * as api from '../../protocol/api/health.ts'
import { ContractRoutes } from '../contract.ts'
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import type { WriteProbe } from '../store/health.ts'

export function healthRoutes(store: Store, writes: WriteProbe) {
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
    }).app
}
