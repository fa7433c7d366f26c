/**
 * A collector built in-process on the real embedded engine, for the collector's tests.
 *
 * chDB binds one data directory per process and vitest runs each test file in its own process,
 * so a test file opens one harness in beforeAll and closes it in afterAll.
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import pino from 'pino'
import { expect } from 'vitest'
import { createApp, createCollector } from '../../collector/app.ts'
import type { RoleAdministration } from '../../collector/auth/administration.ts'
import { createEnrollToken } from '../../collector/auth/enrollment.ts'
import { SIDE_OF } from '../../collector/auth/roles.ts'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { createUser } from '../../collector/auth/users.ts'
import { CollectorConfig } from '../../collector/config.ts'
import { REGISTER_KEY_FILE } from '../../collector/register/register.ts'
import { openStore, type Store } from '../../collector/store/client.ts'
import { migrate } from '../../collector/store/migrations.ts'
import { selectRows } from '../../collector/store/rows.ts'
import type { Telemetry } from '../../collector/telemetry.ts'
import type { Role } from '../../protocol/api/names.ts'
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
  appWith(input: Record<string, unknown>, parts?: AppParts): App
  /** Role administration of `app`'s collector (setUpAdministrators, proposeAndConfirm). */
  administration: RoleAdministration
  close(): Promise<void>
}

/** What appWith may take other than the harness's own: a store, a telemetry of its own. */
export interface AppParts {
  store?: Store
  telemetry?: Telemetry
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
  // The register's own key, as a real collector has it: a test that makes its own Register on
  // this store (restricted.test.ts) signs with the same one as the app's enrollments do.
  const registerKey = loadOrCreateSigningKey(join(dir, REGISTER_KEY_FILE))
  const logger = pino({ level: 'silent' })
  const probe = options.readyProbeMs === undefined ? {} : { readyProbeMs: options.readyProbeMs }
  const appWith = (input: Record<string, unknown>, parts: AppParts = {}): App => {
    const config = CollectorConfig.parse({ data_dir: dir, log_level: 'silent', ...input })
    return createApp({ store, config, logger, signingKey, registerKey, ...probe, ...parts })
  }
  const config = CollectorConfig.parse({ data_dir: dir, log_level: 'silent' })
  const collector = createCollector({ store, config, logger, signingKey, registerKey, ...probe })
  return {
    dir,
    store,
    config,
    app: collector.app,
    administration: collector.administration,
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

// --- People, the two-person way (collector/auth/administration.ts) -----------------------------

/** Two administrators of each side: tokens that work (founders' and extras' replaced). */
export interface Administrators {
  itsd: [AdminToken, AdminToken]
  oios: [AdminToken, AdminToken]
}

export interface AdminToken {
  user_id: string
  token: string
}

type Call = (
  method: 'GET' | 'POST',
  path: string,
  token: string,
  body?: unknown,
) => Promise<{ status: number; body: Record<string, unknown> }>

/** One JSON request to an in-process app. */
export function caller(app: { request: App['request'] }): Call {
  return async (method, path, token, body) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const res = await app.request(path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    })
    const text = await res.text()
    return {
      status: res.status,
      body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
    }
  }
}

function must(
  answer: { status: number; body: Record<string, unknown> },
  status: number,
  what: string,
): Record<string, unknown> {
  expect(answer.status, `${what}: ${JSON.stringify(answer.body)}`).toBe(status)
  return answer.body
}

/** A provisional token replaced by its holder, as the founder's extras and OIOS's founder do. */
async function replaced(call: Call, token: string, what: string): Promise<AdminToken> {
  const body = must(await call('POST', '/v1/users/me/token', token), 201, `${what}: replace`)
  return { user_id: String(body.user_id), token: String(body.token) }
}

/**
 * Sets up a collector's administrators as a site does: the ITSD founder (admin.token in `dir`)
 * makes its one extra admin, OIOS's founder (its bootstrap token) its one extra chief; each
 * extra replaces its provisional token. Call once per store.
 */
export async function setUpAdministrators(
  app: { request: App['request'] },
  administration: RoleAdministration,
  dir: string,
): Promise<Administrators> {
  const call = caller(app)
  const adminFile = join(dir, 'admin.token')
  await administration.ensureItsdFounder(adminFile)
  const founderToken = readFileSync(adminFile, 'utf8').trim()
  const founder = must(await call('GET', '/v1/admin/users', founderToken), 200, 'founder')
  const founderId = String(
    (founder.users as { user_id: string; roles: string[] }[]).find((u) => u.roles.includes('admin'))
      ?.user_id,
  )
  const second = must(
    await call('POST', '/v1/admin/users', founderToken, { name: 'second admin', roles: ['admin'] }),
    201,
    'second admin',
  )
  const itsd2 = await replaced(call, String(second.token), 'second admin')
  const oios = await administration.ensureOiosFounder()
  if (oios.state !== 'created') throw new Error('OIOS founder made already on this store')
  const chief1 = await replaced(call, oios.token, 'OIOS founder')
  const deputy = must(
    await call('POST', '/v1/admin/users', chief1.token, {
      name: 'OIOS deputy',
      roles: ['oios_chief'],
    }),
    201,
    'second OIOS chief',
  )
  const chief2 = await replaced(call, String(deputy.token), 'second OIOS chief')
  return {
    itsd: [{ user_id: founderId, token: founderToken }, itsd2],
    oios: [chief1, chief2],
  }
}

/**
 * A user with `roles`, made as the system allows it: proposed by one administrator of each
 * role's side, confirmed by the other, the token joined from the two parts.
 */
export async function proposeAndConfirm(
  app: { request: App['request'] },
  admins: Administrators,
  roles: Role[],
  name = roles.join('+'),
): Promise<{ user_id: string; token: string }> {
  const call = caller(app)
  const itsdRoles = roles.filter((r) => SIDE_OF[r] === 'itsd')
  const oiosRoles = roles.filter((r) => SIDE_OF[r] === 'oios')
  const home = itsdRoles.length > 0 ? 'itsd' : 'oios'
  const [proposer, confirmer] = admins[home]
  const proposed = must(
    await call('POST', '/v1/admin/users', proposer.token, {
      name,
      roles: home === 'itsd' ? itsdRoles : oiosRoles,
    }),
    201,
    `propose ${name}`,
  )
  const confirmed = must(
    await call('POST', `/v1/admin/proposals/${proposed.proposal_id}/confirm`, confirmer.token),
    200,
    `confirm ${name}`,
  )
  const userId = String(proposed.user_id)
  if (home === 'itsd' && oiosRoles.length > 0) {
    // OIOS grants its own roles (oios_designee) to an ITSD officer.
    const [chief, deputy] = admins.oios
    const more = must(
      await call('POST', `/v1/admin/users/${userId}/roles`, chief.token, { roles: oiosRoles }),
      201,
      `propose ${oiosRoles.join(',')} for ${name}`,
    )
    must(
      await call('POST', `/v1/admin/proposals/${more.proposal_id}/confirm`, deputy.token),
      200,
      `confirm ${oiosRoles.join(',')} for ${name}`,
    )
  }
  return { user_id: userId, token: `${proposed.token_part}${confirmed.token_part}` }
}
