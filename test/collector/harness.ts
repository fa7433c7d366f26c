/**
 * A collector built in-process on the real embedded engine, for the collector's tests.
 *
 * chDB binds one data directory per process and vitest runs each test file in its own process,
 * so a test file opens one harness in beforeAll and closes it in afterAll.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import pino from 'pino'
import { expect } from 'vitest'
import { createApp } from '../../collector/app.ts'
import { createEnrollToken } from '../../collector/auth/enrollment.ts'
import type { Role } from '../../collector/auth/roles.ts'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { createUser } from '../../collector/auth/users.ts'
import { CollectorConfig } from '../../collector/config.ts'
import { openStore, type Store } from '../../collector/store/client.ts'
import { migrate } from '../../collector/store/migrations.ts'
import { selectRows } from '../../collector/store/rows.ts'
import { EnrollResponse, ErrorBody, type HostBatch } from '../../protocol/v1.ts'

export type App = ReturnType<typeof createApp>
export type ConfigInput = Parameters<typeof CollectorConfig.parse>[0]

export interface Harness {
  dir: string
  store: Store
  config: CollectorConfig
  /** The collector with `config`. */
  app: App
  /** Another collector on the same store, with other settings. */
  appWith(input: Record<string, unknown>): App
  close(): Promise<void>
}

export interface HarnessOptions {
  /** A data directory the caller made and removes (a tmpfs mount, say); default a temp dir. */
  dir?: string
  /** How long /readyz trusts its last write probe. */
  readyProbeMs?: number
}

export async function openHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'tally-collector-test-')))
  const store = openStore({ dataDir: dir })
  await migrate(store)
  const signingKey = loadOrCreateSigningKey(join(dir, 'grant-signing.pem'))
  const logger = pino({ level: 'silent' })
  const probe = options.readyProbeMs === undefined ? {} : { readyProbeMs: options.readyProbeMs }
  const appWith = (input: Record<string, unknown>): App => {
    const config = CollectorConfig.parse({ data_dir: dir, log_level: 'silent', ...input })
    return createApp({ store, config, logger, signingKey, ...probe })
  }
  const config = CollectorConfig.parse({ data_dir: dir, log_level: 'silent' })
  return {
    dir,
    store,
    config,
    app: createApp({ store, config, logger, signingKey, ...probe }),
    appWith,
    close: async () => {
      await store.close()
      if (options.dir === undefined) await rm(dir, { recursive: true, force: true })
    },
  }
}

export async function count(
  store: Store,
  table: string,
  where = '1',
  params: Record<string, unknown> = {},
): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    store,
    `SELECT count() AS n FROM ${table} WHERE ${where}`,
    params,
  )
  return Number(row?.n ?? Number.NaN)
}

export async function userToken(store: Store, roles: Role[], name = 'test user'): Promise<string> {
  const { token } = await createUser(store, name, roles, 'test')
  return token
}

export interface EnrolledAgent {
  agent_id: string
  host: string
  site: string
  credential: string
}

/** Creates an enrollment token for `site` and enrolls `hostname` through the API. */
export async function enrollAgent(
  h: Harness,
  site: string,
  hostname: string,
): Promise<EnrolledAgent> {
  const token = await createEnrollToken(h.store, {
    site,
    ttlHours: 1,
    maxUses: 1,
    createdBy: 'test',
  })
  const res = await h.app.request('/v1/agents/enroll', {
    method: 'POST',
    headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ hostname, agent_version: '0.1.0-test' }),
  })
  expect(res.status).toBe(201)
  const enrolled = EnrollResponse.parse(await res.json())
  return {
    agent_id: enrolled.agent_id,
    host: enrolled.host,
    site: enrolled.site,
    credential: enrolled.credential,
  }
}

/** Yesterday, on the hour: recent enough for every TTL. */
const BASE_MS = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 86_400_000

/** Where batch `seq` ends: minute `seq` after BASE_MS, so each batch has a rollup row of its own. */
export const batchEnd = (seq: number): number => BASE_MS + seq * 60_000

/** A batch of four samples (their values sum to SAMPLE_SUM). */
export function makeBatch(agentId: string, seq: number): HostBatch {
  const end = batchEnd(seq)
  return {
    version: 1,
    agent_id: agentId,
    seq,
    agent_version: '0.1.0-test',
    interval: { start: end - 10_000, end },
    samples: [
      { metric: 'system.cpu.utilization', value: 0.25, attributes: { 'cpu.mode': 'user' } },
      { metric: 'system.cpu.utilization', value: 0.5, attributes: { 'cpu.mode': 'idle' } },
      {
        metric: 'system.memory.usage',
        value: 1024,
        attributes: { 'system.memory.state': 'used' },
      },
      {
        metric: 'system.network.io',
        value: 4096,
        attributes: { 'network.interface.name': 'eth0', 'network.io.direction': 'receive' },
      },
    ],
  }
}

export const SAMPLE_SUM = 0.25 + 0.5 + 1024 + 4096

export const gz = (value: unknown): Buffer => gzipSync(Buffer.from(JSON.stringify(value)))

export interface PostOptions {
  credential?: string | undefined
  encoding?: string | undefined
  headers?: Record<string, string>
}

/** POST /v1/ingest with `body` as is (bytes) and gzip encoding unless told otherwise. */
export async function postIngest(
  app: App,
  body: Uint8Array,
  options: PostOptions = {},
): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  const encoding = 'encoding' in options ? options.encoding : 'gzip'
  if (encoding !== undefined) headers['content-encoding'] = encoding
  if (options.credential !== undefined) headers.authorization = `Bearer ${options.credential}`
  return app.request('/v1/ingest', {
    method: 'POST',
    headers: { ...headers, ...options.headers },
    body,
  })
}

/** Reads an error answer, checking it has the ErrorBody shape and the JSON content type. */
export async function errorBody(res: Response): Promise<ErrorBody> {
  expect(res.headers.get('content-type') ?? '').toMatch(/^application\/json/)
  return ErrorBody.parse(await res.json())
}
