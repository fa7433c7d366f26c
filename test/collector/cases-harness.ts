/**
 * The investigation workflow over HTTP on the real embedded engine: a collector made by
 * createCollector with a real Register, users with roles, enrolled agents, and a local webhook
 * (node:http) standing in for the outbox's mail relay, recording every POST it gets.
 *
 * One harness per test file (chDB binds one data directory per process).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { expect } from 'vitest'
import { type Collector, createCollector } from '../../collector/app.ts'
import { createEnrollToken } from '../../collector/auth/enrollment.ts'
import { conflictsIn } from '../../collector/auth/roles.ts'
import { type GrantSigningKey, loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { createUser, revokeUser } from '../../collector/auth/users.ts'
import type { Case } from '../../collector/cases/model.ts'
import { CollectorConfig } from '../../collector/config.ts'
import { openStore, type Store } from '../../collector/store/client.ts'
import { migrate } from '../../collector/store/migrations.ts'
import { selectRows } from '../../collector/store/rows.ts'
import type { CaseRequest } from '../../protocol/api/cases.ts'
import type { Role } from '../../protocol/api/names.ts'
import { EnrollResponse, ErrorBody } from '../../protocol/v1.ts'
import { type Administrators, gz, proposeAndConfirm, setUpAdministrators } from './harness.ts'

export type App = Collector['app']

/** What the webhook received: one POST per message. */
export interface WebhookPost {
  message_id: string
  case_id: string
  to: string
  subject: string
  body: string
}

export interface Webhook {
  url: string
  posts: WebhookPost[]
  /** While set, the webhook answers 500 (a relay that is down). */
  failing: boolean
  postsFor(caseId: string): WebhookPost[]
  close(): Promise<void>
}

export async function startWebhook(): Promise<Webhook> {
  const posts: WebhookPost[] = []
  const state = { failing: false }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      if (req.method !== 'POST' || state.failing) {
        res.writeHead(state.failing ? 500 : 405).end()
        return
      }
      posts.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as WebhookPost)
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/notices`,
    posts,
    get failing() {
      return state.failing
    },
    set failing(value: boolean) {
      state.failing = value
    },
    postsFor: (caseId) => posts.filter((p) => p.case_id === caseId),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export interface TestUser {
  user_id: string
  token: string
  roles: Role[]
}

export interface TestAgent {
  agent_id: string
  credential: string
}

export interface CasesHarness {
  dir: string
  store: Store
  signingKey: GrantSigningKey
  webhook: Webhook
  config: CollectorConfig
  collector: Collector
  app: App
  /** How many writes (inserts, commands, statements other than reads) the store has taken. */
  writes(): number
  /** Two administrators of each side, as role administration needs them. */
  admins: Administrators
  /** Another collector on the same store and key, with other `cases` settings. */
  collectorWith(cases: Record<string, unknown>): Collector
  user(roles: Role[], name?: string): Promise<TestUser>
  revokedUser(roles: Role[]): Promise<TestUser>
  agent(host?: string): Promise<TestAgent>
  close(): Promise<void>
}

const silent = pino({ level: 'silent' })

export async function openCasesHarness(): Promise<CasesHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-cases-test-'))
  const store = openStore({ dataDir: dir })
  await migrate(store)
  const signingKey = loadOrCreateSigningKey(join(dir, 'grant-signing.pem'))
  const writes = countWrites(store)
  const webhook = await startWebhook()
  const configWith = (cases: Record<string, unknown>) =>
    CollectorConfig.parse({
      data_dir: dir,
      log_level: 'silent',
      cases: { outbox: { webhook_url: webhook.url }, ...cases },
    })
  const config = configWith({})
  const collector = createCollector({ store, config, logger: silent, signingKey })
  const admins = await setUpAdministrators(collector.app, collector.administration, dir)
  // Users are proposed by one administrator and confirmed by another, as on a site. Roles one
  // person may never hold together (roles.ts CONFLICTS) cannot be made so: such a user is written
  // straight into the store, as a store from before the conflict rules might hold one, to show
  // that the workflow's own checks refuse them too.
  const user = async (roles: Role[], name = roles.join('+')): Promise<TestUser> => {
    if (conflictsIn(roles).length > 0) {
      const { user: made, token } = await createUser(store, name, roles, 'test (conflicting roles)')
      return { user_id: made.user_id, token, roles }
    }
    const made = await proposeAndConfirm(collector.app, admins, roles, name)
    return { ...made, roles }
  }
  let hosts = 0
  return {
    dir,
    store,
    signingKey,
    webhook,
    config,
    collector,
    app: collector.app,
    admins,
    writes,
    collectorWith: (cases) =>
      createCollector({ store, config: configWith(cases), logger: silent, signingKey }),
    user,
    revokedUser: async (roles) => {
      const made = await user(roles, 'revoked')
      await revokeUser(store, made.user_id)
      return made
    },
    agent: async (host = `pc-${++hosts}`) => {
      const token = await createEnrollToken(store, {
        site: 'geneva-pm',
        ttlHours: 1,
        maxUses: 1,
        createdBy: 'test',
      })
      const res = await collector.app.request('/v1/agents/enroll', {
        method: 'POST',
        headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ hostname: host, agent_version: '0.1.0-test' }),
      })
      expect(res.status).toBe(201)
      const enrolled = EnrollResponse.parse(await res.json())
      return { agent_id: enrolled.agent_id, credential: enrolled.credential }
    },
    close: async () => {
      await webhook.close()
      await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Counts every call that can change the store: inserts, commands, and any non-read query. */
function countWrites(store: Store): () => number {
  let writes = 0
  const insert = store.insert.bind(store)
  const command = store.command.bind(store)
  const exec = store.exec.bind(store)
  const query = store.query.bind(store)
  store.insert = ((params: Parameters<Store['insert']>[0]) => {
    writes += 1
    return insert(params)
  }) as Store['insert']
  store.command = (params) => {
    writes += 1
    return command(params)
  }
  store.exec = (params) => {
    writes += 1
    return exec(params)
  }
  store.query = ((params: Parameters<Store['query']>[0]) => {
    if (!/^\s*(SELECT|WITH|SHOW|DESCRIBE|EXISTS)\b/i.test(params.query)) writes += 1
    return query(params)
  }) as Store['query']
  return () => writes
}

// --- Calling the API ---------------------------------------------------------------------------

export interface Answer {
  status: number
  body: unknown
  text: string
}

/** One request; `token` undefined sends no Authorization header; `body` is sent as JSON. */
export async function call(
  app: App,
  method: 'GET' | 'POST',
  path: string,
  token?: string,
  body?: unknown,
): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const init: RequestInit = { method, headers }
  if (body !== undefined) {
    headers['content-type'] = 'application/json'
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
  }
  const res = await app.request(path, init)
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: res.status, body: parsed, text }
}

/** A tier I batch as the agent sends it: gzip'd JSON under its own credential. */
export function postTierI(app: App, credential: string, batch: unknown): Promise<Response> {
  return Promise.resolve(
    app.request('/v1/restricted/ingest', {
      method: 'POST',
      headers: {
        authorization: `Bearer ${credential}`,
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      },
      body: gz(batch),
    }),
  )
}

/** Asserts a success and returns the body as a case. */
export function expectCase(answer: Answer, status: number, what: string): Case {
  expect(answer.status, `${what}: ${answer.text}`).toBe(status)
  return answer.body as Case
}

/** Asserts an error answer with the ErrorBody shape; returns it. */
export function expectError(answer: Answer, statuses: number[], what: string): ErrorBody {
  expect(statuses, `${what}: answered ${answer.status} ${answer.text}`).toContain(answer.status)
  const parsed = ErrorBody.safeParse(answer.body)
  expect(parsed.success, `${what}: not an ErrorBody: ${answer.text}`).toBe(true)
  return parsed.data as ErrorBody
}

// --- Bodies ------------------------------------------------------------------------------------

const HOUR = 3_600_000
export const iso = (ms: number): string => new Date(ms).toISOString()

/** A unique marker, so that a test can tell whether a case's text leaked into an answer. */
export const marker = (prefix: string): string => `${prefix}-${randomBytes(6).toString('hex')}`

export interface People {
  requester: TestUser
  receiving_official: TestUser
}

/** A valid written request (8.4a) for `agents`, its free text unique to this request. */
export function caseRequest(
  receivingOfficial: string,
  agents: string[],
  overrides: Partial<CaseRequest> = {},
): CaseRequest {
  const now = Date.now()
  const tag = marker('req')
  return {
    data_required: `flow records and DNS names of the subject's host (${tag})`,
    categories: ['flows', 'dns'],
    staff_member: { name: `Staff ${tag}`, email: `staff.${tag}@example.org` },
    supervisor: { name: `Supervisor ${tag}`, email: `supervisor.${tag}@example.org` },
    receiving_official: receivingOfficial,
    requesting_office: `Office ${tag}`,
    justification: `reason to believe misconduct occurred (${tag})`,
    subjects: agents.map((agent_id) => ({ agent_id, addresses: [] })),
    window: { start: iso(now - 60_000), end: iso(now + 48 * HOUR) },
    ...overrides,
  }
}

/** What a written request (8.4b) repeats of the verbal request it confirms. */
export type VerbalRequest = Pick<
  CaseRequest,
  'staff_member' | 'supervisor' | 'subjects' | 'categories' | 'receiving_official'
>

/**
 * The written request that confirms a verbal one (8.4b): the same staff member, supervisor,
 * subjects, categories and receiving official as `verbal` (the emergency body), its own free text.
 */
export function writtenRequest(
  verbal: VerbalRequest,
  overrides: Partial<CaseRequest> = {},
): CaseRequest {
  const same = structuredClone({
    staff_member: verbal.staff_member,
    supervisor: verbal.supervisor,
    subjects: verbal.subjects,
    categories: verbal.categories,
    receiving_official: verbal.receiving_official,
  })
  return { ...caseRequest(verbal.receiving_official, []), ...same, ...overrides }
}

// --- The database, seen directly ---------------------------------------------------------------

/**
 * What a refused call must leave as it was, cheaply: the store's write count and the size of
 * both registers.
 */
export async function snapshot(h: CasesHarness): Promise<string> {
  const [row] = await selectRows<{ n: number }>(
    h.store,
    'SELECT count() AS n FROM tally.register_entries',
  )
  return `writes ${h.writes()}, register entries ${row?.n}`
}

/**
 * A fingerprint of every table a case step writes: a step that did nothing leaves it as it was.
 * ReplacingMergeTree tables are compared by their FINAL row count and highest version (a
 * background merge may drop superseded rows, never the newest); the register by its row count.
 */
export async function fingerprint(store: Store): Promise<string> {
  const [row] = await selectRows<Record<string, string | number>>(
    store,
    `SELECT
       (SELECT count() FROM tally.register_entries) AS register_entries,
       (SELECT count() FROM tally.register_checkpoints FINAL) AS checkpoints,
       (SELECT count() FROM tally.cases FINAL) AS cases,
       (SELECT max(version) FROM tally.cases) AS cases_version,
       (SELECT count() FROM tally.grants FINAL) AS grants,
       (SELECT max(version) FROM tally.grants) AS grants_version,
       (SELECT count() FROM tally.outbox FINAL) AS outbox,
       (SELECT max(version) FROM tally.outbox) AS outbox_version,
       (SELECT count() FROM tally.oios_designations FINAL) AS designations,
       (SELECT max(version) FROM tally.oios_designations) AS designations_version,
       (SELECT count() FROM tally.users FINAL) AS users`,
  )
  return JSON.stringify(row)
}

/** The stored case document as written (no refresh applied), or undefined. */
export async function storedCase(store: Store, caseId: string): Promise<string | undefined> {
  const [row] = await selectRows<{ doc: string }>(
    store,
    'SELECT doc FROM tally.cases FINAL WHERE case_id = {id:String}',
    { id: caseId },
  )
  return row?.doc
}

export async function registerSize(store: Store, register: 'itsd' | 'oios'): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    store,
    'SELECT count() AS n FROM tally.register_entries WHERE register = {r:String}',
    { r: register },
  )
  return Number(row?.n)
}

/** The case's grant rows: live ones and revoked ones. */
export async function grantRows(
  store: Store,
  caseId: string,
): Promise<{ grant_id: string; audience: string; subject: string; revoked: number }[]> {
  return selectRows(
    store,
    `SELECT grant_id, audience, subject, revoked_at IS NOT NULL AS revoked
     FROM tally.grants FINAL WHERE case_id = {id:String}`,
    { id: caseId },
  )
}

/** Every string a case holds that says something about it (what an error must not show). */
export function caseSecrets(doc: Case): string[] {
  const values = [
    doc.description,
    doc.justification,
    doc.requesting_office,
    doc.staff_member?.name,
    doc.staff_member?.email,
    doc.supervisor?.name,
    doc.supervisor?.email,
    doc.requester,
    doc.investigator,
    doc.receiving_official,
    doc.consultation?.summary,
    doc.closing?.outcome,
    ...doc.subjects.flatMap((s) => [s.agent_id, ...s.addresses]),
    ...(doc.notify ?? []).flatMap((p) => [p.name, p.email]),
  ]
  return values.filter((v): v is string => typeof v === 'string' && v.length >= 6)
}
