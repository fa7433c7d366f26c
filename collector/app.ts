/**
 * The collector as a Hono app. Everything it needs comes in as arguments, so tests build it with
 * a real engine and call it in-process, and the server entry only adds a socket.
 */
import { join } from 'node:path'
import { Hono } from 'hono'
import type { Logger } from 'pino'
import { RoleAdministration } from './auth/administration.ts'
import type { GrantSigningKey } from './auth/signing-key.ts'
import { ensureTokenKey, TOKEN_KEY_FILE } from './auth/tokens.ts'
import { rolesOf } from './auth/users.ts'
import { bodyCapMiddleware, bodyCaps } from './body-caps.ts'
import { GrantIssuer } from './cases/grants.ts'
import { Outbox } from './cases/outbox.ts'
import { CaseService, type Purger } from './cases/workflow.ts'
import type { CollectorConfig } from './config.ts'
import { consoleRoutes } from './console/routes.ts'
import { DomainError } from './errors.ts'
import { type CollectorEnv, problem, problemOf } from './http.ts'
import { openApiDocument } from './openapi.ts'
import { Register } from './register/register.ts'
import { createPurger } from './restricted/purge.ts'
import { adminRoutes } from './routes/admin.ts'
import { agentRoutes } from './routes/agents.ts'
import { caseRoutes } from './routes/cases.ts'
import { healthRoutes } from './routes/health.ts'
import { ingestRoutes } from './routes/ingest.ts'
import { registerRoutes } from './routes/register.ts'
import { restrictedRoutes } from './routes/restricted.ts'
import { usageRoutes } from './routes/usage.ts'
import type { Store } from './store/client.ts'
import { isStoreUnavailable, WriteProbe } from './store/health.ts'
import { createTelemetry, requestRouteLabel, type Telemetry } from './telemetry.ts'

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
  /** Signs the register's checkpoints; a key apart from the grant key on a real collector. */
  registerKey?: GrantSigningKey
  /** Deletes a case's tier I data (closing, expiry, receipt). */
  purge?: Purger
  /** How long /readyz trusts its last write probe (default 5 s). */
  readyProbeMs?: number
  /** This collector's name in tally.collector_metrics (host:port once listening). */
  instance?: () => string
}

/** The collector's app and the services behind it, for the server's periodic work and tests. */
export interface Collector {
  app: ReturnType<typeof buildApp>
  cases: CaseService
  register: Register
  outbox: Outbox
  grants: GrantIssuer
  administration: RoleAdministration
}

export function createCollector(deps: CollectorDeps): Collector {
  const { store, config, logger, signingKey } = deps
  // Tokens are hashed under the store's token key: server.ts binds it at start (and warns when
  // it is inside the data directory); a collector built in-process loads it as configured.
  ensureTokenKey(store, config.auth.token_key_file ?? join(config.data_dir, TOKEN_KEY_FILE))
  const register = new Register(store, (deps.registerKey ?? signingKey).privateKey, {
    onCheckpointError: (err) => logger.error({ err }, 'register checkpoint failed'),
  })
  const grants = new GrantIssuer(store, signingKey)
  const outbox = new Outbox(store, config.cases.outbox, logger)
  const purge = deps.purge ?? createPurger(store, config.clickhouse.cluster)
  const cases = new CaseService({
    store,
    register,
    records: register,
    grants,
    outbox,
    policy: config.cases,
    log: logger,
    rolesOf: (userId) => rolesOf(store, userId),
    purge,
  })
  const administration = new RoleAdministration(store, register)
  return {
    app: buildApp(deps, { cases, register, grants, purge, administration }),
    cases,
    register,
    outbox,
    grants,
    administration,
  }
}

export function createApp(deps: CollectorDeps) {
  return createCollector(deps).app
}

function buildApp(
  deps: CollectorDeps,
  services: {
    cases: CaseService
    register: Register
    grants: GrantIssuer
    purge: Purger
    administration: RoleAdministration
  },
) {
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
        route: requestRouteLabel(c),
        status: c.res.status,
        ms: Math.round(performance.now() - started),
      },
      'request',
    )
  })
  // Before every route, so before any authentication: an oversized body is refused unread.
  const caps = bodyCaps(config)
  app.use(bodyCapMiddleware(caps))
  const writes = new WriteProbe(store, { maxAgeMs: deps.readyProbeMs, instance: deps.instance })
  const retryAfter = String(config.ingest.retry_after_seconds)
  app.route(
    '/',
    healthRoutes(store, writes, {
      metrics: () => telemetry.prometheus(),
      document: openApiDocument(caps),
    }),
  )
  app.route('/', ingestRoutes(store, config, telemetry))
  app.route('/', agentRoutes(store, config, signingKey, services.register))
  app.route('/', adminRoutes(store, config, services.register, services.administration))
  app.route('/', usageRoutes(store, config))
  app.route('/', caseRoutes(store, services.cases, services.register))
  app.route('/', registerRoutes(store, services.register))
  app.route('/', consoleRoutes({ store, cases: services.cases }))
  app.route(
    '/',
    restrictedRoutes({
      store,
      cases: services.cases,
      grants: services.grants,
      register: services.register,
      purge: services.purge,
      dataDir: config.data_dir,
      masterKeyFile: config.cases.master_key_file,
      logger,
      cluster: config.clickhouse.cluster,
      limits: config.restricted,
    }),
  )
  app.notFound((c) => problem(c, 404, 'not_found', `no route ${c.req.method} ${c.req.path}`))
  app.onError((err, c) => {
    // The domain's refusals and failures, answered in one place (collector/errors.ts).
    if (err instanceof DomainError) {
      // Not logged: which register failed, and for which case, would tell the ITSD's log about
      // OIOS's work; the store's own failure is in the store's log.
      if (err.failure === 'unavailable') {
        c.header('Retry-After', retryAfter)
        // A register that could not be written because the store cannot take writes makes
        // /readyz say so, as the store's own failure does.
        if (isStoreUnavailable(err.cause)) writes.failed(err.cause)
      }
      return problemOf(c, err)
    }
    // A store that cannot work now (full, read-only, unreachable, overloaded) is a 503 the
    // client may retry, and makes /readyz say so; anything else is a bug of ours.
    if (isStoreUnavailable(err)) {
      writes.failed(err)
      logger.warn({ err, route: requestRouteLabel(c) }, 'store unavailable')
      c.header('Retry-After', retryAfter)
      return problem(c, 503, 'store_unavailable', 'the store is unavailable; retry later')
    }
    logger.error({ err, route: requestRouteLabel(c) }, 'request failed')
    return problem(
      c,
      500,
      'internal_error',
      'the collector failed to handle this request; see its log',
    )
  })
  return app
}
