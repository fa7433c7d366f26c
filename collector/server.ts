/** Runs the collector: store, migrations, admin token, then the HTTP server. */
import { mkdirSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { serve } from '@hono/node-server'
import type { Logger } from 'pino'
import { REGISTERS } from '../protocol/api/names.ts'
import { type Collector, createCollector } from './app.ts'
import { isInside } from './auth/administration.ts'
import { recordGuardSettings } from './auth/guard-settings.ts'
import { loadOrCreateSigningKey } from './auth/signing-key.ts'
import { checkTokenHashes, type TokenHashesAtStart } from './auth/token-hashes.ts'
import { bindTokenKey, loadOrCreateTokenKey, TOKEN_KEY_FILE, type TokenKey } from './auth/tokens.ts'
import type { CollectorConfig } from './config.ts'
import { REGISTER_KEY_FILE, RegisterIntegrityError } from './register/register.ts'
import { startSelfMetrics } from './self-metrics.ts'
import { openStore, type Store } from './store/client.ts'
import { replayJournal } from './store/group-commit.ts'
import { IngestJournal, journalDir } from './store/ingest-journal.ts'
import { migrate } from './store/migrations.ts'
import { createUsageViews, releaseUsage } from './store/usage.ts'
import { loadOrCreateUsageHostKey } from './store/usage-host-key.ts'
import { createTelemetry } from './telemetry.ts'

/** Where the grant-signing key lives when grants.signing_key_file is not set. */
export const GRANT_KEY_FILE = 'grant-signing-key.pem'

/** How often expiry, suspension and notice delivery are looked at. */
const MAINTENANCE_MS = 15_000

export interface RunningCollector {
  url: string
  dataDir: string
  adminTokenFile: string
  /**
   * OIOS's bootstrap token, on the first start only and only when no oios.bootstrap_token_file
   * is set: the caller shows it once; it is stored nowhere.
   */
  oiosBootstrapToken?: string
  engine: 'embedded' | 'server'
  close(): Promise<void>
}

/** The grant, register and token keys, each with a warning when it lies inside the data dir. */
function loadKeys(config: CollectorConfig, dataDir: string, logger: Logger) {
  const grantKeyFile = resolve(config.grants.signing_key_file ?? join(dataDir, GRANT_KEY_FILE))
  const signingKey = loadOrCreateSigningKey(grantKeyFile)
  if (isInside(grantKeyFile, dataDir)) {
    logger.warn(
      { setting: 'grants.signing_key_file' },
      'the grant signing key is inside the data directory: whoever holds the directory can sign capture and access grants (the register still refuses cases it does not record as active)',
    )
  }
  const registerKeyFile = resolve(
    config.register.signing_key_file ?? join(dataDir, REGISTER_KEY_FILE),
  )
  const registerKey = loadOrCreateSigningKey(registerKeyFile)
  if (isInside(registerKeyFile, dataDir)) {
    logger.warn(
      { setting: 'register.signing_key_file' },
      'the register signing key is inside the data directory: whoever holds the directory can re-sign a rewritten register (auditors and agents that kept a head still detect it)',
    )
  }
  const tokenKeyFile = resolve(config.auth.token_key_file ?? join(dataDir, TOKEN_KEY_FILE))
  const tokenKey = loadOrCreateTokenKey(tokenKeyFile)
  if (isInside(tokenKeyFile, dataDir)) {
    logger.warn(
      { setting: 'auth.token_key_file' },
      'the token key is inside the data directory: whoever holds the directory can write the hash of a token of their own into any user or agent and act as them',
    )
  }
  return { signingKey, registerKey, tokenKey }
}

interface AdministrationStart {
  store: Store
  tokenKey: TokenKey
  config: CollectorConfig
  dataDir: string
  adminTokenFile: string
  logger: Logger
}

/**
 * Administration on the record before the first request: the founders, the roles the store
 * holds against the registers, the guard settings against the last ones registered. Answers
 * OIOS's bootstrap token when it was created now and no file was set for it.
 */
async function recordAdministration(
  collector: Collector,
  start: AdministrationStart,
): Promise<string | undefined> {
  const { store, tokenKey, config, dataDir, adminTokenFile, logger } = start
  let oiosBootstrapToken: string | undefined
  // Entries the collector did not write (a chain extended without the register key) or a
  // signed head the entries no longer give: said once here; nothing is signed over them, the
  // register's status shows it, and nothing trusts those entries.
  for (const name of REGISTERS) {
    try {
      await collector.register.checkStored(name)
    } catch (err) {
      if (!(err instanceof RegisterIntegrityError)) throw err
      logger.error(
        { register: name, seq: err.seq, reason: err.message },
        'register does not verify',
      )
    }
  }
  // First, so that roles written into the store behind the collector's back are gone before
  // anyone can use them (and, on an upgrade, so the users there are recorded as they are).
  for (const removed of await collector.administration.reconcile()) {
    logger.warn(
      { user_id: removed.user_id, roles: removed.removed },
      'roles without a register entry removed',
    )
  }
  // Before any token is checked (the founder's, below), and after the roles (an entry of its
  // own must not make a register that never recorded administration look as if it had):
  // hashes from before the token key are converted once; in the old form since, refused.
  reportTokenHashes(await checkTokenHashes(store, collector.register, tokenKey), tokenKey, logger)
  const founder = await collector.administration.ensureItsdFounder(adminTokenFile)
  if (founder === 'created' || founder === 'reissued') {
    logger.info({ file: adminTokenFile, founder }, 'admin token written')
  } else if (founder === 'none') {
    logger.warn('the founder admin was revoked: no admin token file is written')
  }
  const oiosFile = config.oios.bootstrap_token_file
  if (oiosFile !== undefined && isInside(oiosFile, dataDir)) {
    logger.warn(
      { setting: 'oios.bootstrap_token_file' },
      'the OIOS bootstrap token file is inside the data directory: whoever holds it holds the token; for a demo only',
    )
  }
  const oios = await collector.administration.ensureOiosFounder(oiosFile)
  if (oios.state === 'created') {
    if (oiosFile === undefined) oiosBootstrapToken = oios.token
    else logger.info({ file: oiosFile }, 'OIOS bootstrap token written')
  }
  for (const change of await recordGuardSettings(collector.register, config)) {
    logger.info({ setting: change.setting }, 'guard setting recorded in the register')
  }
  return oiosBootstrapToken
}

/** What the token-hash check found, in the log. */
function reportTokenHashes(hashes: TokenHashesAtStart, tokenKey: TokenKey, logger: Logger): void {
  if (hashes.recorded === 'bound') {
    logger.info({ converted: hashes.converted }, 'token hashes bound to the token key')
  } else if (hashes.recorded === 'key changed') {
    logger.error(
      {
        setting: 'auth.token_key_file',
        key_id: tokenKey.id,
        previous_key_id: hashes.previousKeyId,
      },
      'the token key is not the one the token hashes were bound to: no stored token, credential or enrollment token works (the founder gets a new admin token)',
    )
  }
  const refused = hashes.refused
  if (refused.users.length + refused.agents.length + refused.enroll_tokens.length > 0) {
    logger.error(
      refused,
      'token hashes in the old form after they were bound to the token key: written into the store, refused',
    )
  }
  for (const userId of hashes.restoredProvisional) {
    logger.error(
      { user_id: userId },
      'a provisional token its holder replaced was written back into the store: refused',
    )
  }
}

export async function startCollector(
  config: CollectorConfig,
  logger: Logger,
): Promise<RunningCollector> {
  const dataDir = resolve(config.data_dir)
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  // The key files first: an empty or corrupt one stops the start before the store is touched.
  const { signingKey, registerKey, tokenKey } = loadKeys(config, dataDir, logger)
  const store = openStore({
    dataDir,
    url: config.clickhouse.url,
    username: config.clickhouse.username,
    password: config.clickhouse.password,
  })
  // Every token issued or checked on this store is hashed under this key (auth/tokens.ts).
  bindTokenKey(store, tokenKey)
  const adminTokenFile = join(dataDir, 'admin.token')
  try {
    const applied = await migrate(store)
    if (applied.length > 0) logger.info({ applied }, 'migrations applied')
    await createUsageViews(store, config.usage.k, config.clickhouse.cluster)
    // Groups a crash left in the ingest journal are completed before any request is read, so
    // that the agents' retries find their batches stored (store/group-commit.ts).
    const completed = await replayJournal(store, new IngestJournal(journalDir(dataDir)), {
      hostKey: loadOrCreateUsageHostKey(dataDir),
      releaseAfterSeconds: config.usage.release_after_seconds,
    })
    if (completed > 0) logger.warn({ groups: completed }, 'ingest groups left by a crash completed')
  } catch (err) {
    // Release the engine (and its data directory) so the caller can report and exit cleanly.
    await store.close().catch(() => undefined)
    throw err
  }
  // Prometheus on /metrics; OTLP too when OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT is set.
  const telemetry = createTelemetry({ env: process.env, logger })
  // Known once the server listens; /readyz's write probe reports under it, as self-metrics do.
  let instance = hostname()
  const collector = createCollector({
    store,
    config,
    logger,
    signingKey,
    registerKey,
    telemetry,
    instance: () => instance,
  })
  const app = collector.app
  let oiosBootstrapToken: string | undefined
  try {
    oiosBootstrapToken = await recordAdministration(collector, {
      store,
      tokenKey,
      config,
      dataDir,
      adminTokenFile,
      logger,
    })
  } catch (err) {
    await telemetry.shutdown().catch(() => undefined)
    await store.close().catch(() => undefined)
    throw err
  }
  // Time moves cases on even when nobody calls: expiry and overdue written requests revoke
  // grants and purge; notices that could not be delivered are retried.
  const maintenance = setInterval(() => {
    collector.cases.sweep().catch((err: unknown) => logger.error({ err }, 'case sweep failed'))
    collector.outbox
      .deliverPending()
      .catch((err: unknown) => logger.error({ err }, 'outbox delivery failed'))
    releaseUsage(store, {
      k: config.usage.k,
      releaseAfterSeconds: config.usage.release_after_seconds,
    }).catch((err: unknown) => logger.error({ err }, 'site usage release failed'))
  }, MAINTENANCE_MS)
  maintenance.unref()

  const server = await new Promise<Server>((ready, fail) => {
    const s = serve(
      { fetch: app.fetch, hostname: config.listen.host, port: config.listen.port },
      () => ready(s as Server),
    )
    s.once('error', fail)
  })
  const { port } = server.address() as AddressInfo
  instance = `${hostname()}:${port}`
  // The collector's counters and the ITSD register's status, for the Grafana dashboards.
  const selfMetrics = startSelfMetrics({
    store,
    telemetry,
    register: collector.register,
    instance,
    logger,
  })
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`
  logger.info(
    { url, data_dir: dataDir, engine: config.clickhouse.url ? 'server' : 'embedded' },
    'collector listening',
  )

  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      clearInterval(maintenance)
      // Stop taking requests, let those in flight finish (their batches get stored and
      // acknowledged), then close the store and the metrics.
      await new Promise<void>((done) => {
        server.close(() => done())
        server.closeIdleConnections()
      })
      // Its last snapshot counts the requests just finished; the store must still be open.
      await selfMetrics.stop()
      try {
        await store.close()
      } finally {
        // Last, so the final OTLP export counts every request answered.
        await telemetry.shutdown()
      }
      logger.info('collector stopped')
    })())
  return {
    url,
    dataDir,
    adminTokenFile,
    ...(oiosBootstrapToken === undefined ? {} : { oiosBootstrapToken }),
    engine: config.clickhouse.url ? 'server' : 'embedded',
    close,
  }
}
