/**
 * The collector as a Hono app. Everything it needs comes in as arguments, so tests build it with
 * a real engine and call it in-process, and the server entry only adds a socket.
 */
import { Hono } from 'hono'
import type { Logger } from 'pino'
import type { GrantSigningKey } from './auth/signing-key.ts'
import type { CollectorConfig } from './config.ts'
import { type CollectorEnv, problem } from './http.ts'
import { openApiDocument } from './openapi.ts'
import { adminRoutes } from './routes/admin.ts'
import { agentRoutes } from './routes/agents.ts'
import { ingestRoutes } from './routes/ingest.ts'
import { usageRoutes } from './routes/usage.ts'
import type { Store } from './store/client.ts'
import { createTelemetry, PROMETHEUS_CONTENT_TYPE, type Telemetry } from './telemetry.ts'

export interface CollectorDeps {
  store: Store
  config: CollectorConfig
  logger: Logger
  signingKey: GrantSigningKey
  /**
   * Metrics. Whoever passes one shuts it down (server.ts does, with the OTLP settings of the
   * environment); without one the app makes its own, Prometheus only, with no timers to stop.
   */
  telemetry?: Telemetry
}

export function createApp(deps: CollectorDeps) {
  const { store, config, logger, signingKey } = deps
  const telemetry = deps.telemetry ?? createTelemetry({ logger })
  const app = new Hono<CollectorEnv>()
  app.use(telemetry.middleware)
  app.use(async (c, next) => {
    const started = performance.now()
    c.set('log', logger)
    await next()
    // Method, route and status only: never a query string or a body.
    logger.debug(
      {
        method: c.req.method,
        path: c.req.routePath,
        status: c.res.status,
        ms: Math.round(performance.now() - started),
      },
      'request',
    )
  })
  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', async (c) => {
    const ping = await store.ping()
    if (!ping.success)
      return problem(c, 503, 'store_unavailable', `store is not reachable: ${ping.error.message}`)
    return c.json({ status: 'ready' })
  })
  app.get('/metrics', async (c) =>
    c.text(await telemetry.prometheus(), 200, { 'content-type': PROMETHEUS_CONTENT_TYPE }),
  )
  app.get('/v1/openapi.json', (c) => c.json(openApiDocument()))
  app.route('/', ingestRoutes(store, config, telemetry))
  app.route('/', agentRoutes(store, config, signingKey))
  app.route('/', adminRoutes(store, config))
  app.route('/', usageRoutes(store, config))
  app.notFound((c) => problem(c, 404, 'not_found', `no route ${c.req.method} ${c.req.path}`))
  app.onError((err, c) => {
    logger.error({ err, path: c.req.routePath }, 'request failed')
    return problem(
      c,
      500,
      'internal_error',
      'the collector failed to handle this request; see its log',
    )
  })
  return app
}
