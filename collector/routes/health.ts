/**
 * GET /healthz (the process answers) and GET /readyz (the store takes writes). Ready means a
 * write succeeds: a full disk leaves reads and pings working (store/health.ts).
 */
import { Hono } from 'hono'
import { DomainError } from '../errors.ts'
import type { CollectorEnv } from '../http.ts'
import type { Store } from '../store/client.ts'
import type { WriteProbe } from '../store/health.ts'

export function healthRoutes(store: Store, writes: WriteProbe) {
  return new Hono<CollectorEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
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
      return c.json({ status: 'ready' })
    })
}
