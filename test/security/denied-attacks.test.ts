/**
 * The attacks of issue 9 that were already denied, replayed as an insider would try them, through
 * the real app on the real engine: forged, expired, other-case and alg=none grants (the agents'
 * capture grants and the investigator's access grant), self-approval, role escalation from
 * non-admin tokens, cross-agent ingest, SQL metacharacters in parameters, path traversal, and
 * OIOS by route and by timing.
 *
 * Each test asserts the refusal and that nothing was written or revealed: no tier I row, no
 * register entry of a success, no tier I value in the answer. The longer tests of the same
 * checks stay where they are (test/collector/restricted.test.ts, cases-authz.test.ts,
 * ingest.test.ts, admin.test.ts, test/agent/grants/verify.test.ts); these are short replays.
 *
 * One active case c1 with agent A as its subject and one tier I flow stored, a second active case
 * c2 on agent B with another investigator, and an OIOS case on agent C.
 */
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GrantRejected, verifyGrant } from '../../agent/grants/verify.ts'
import { ACCESS_GRANT_TYPE, DRILLDOWN_AUDIENCE } from '../../collector/cases/grants.ts'
import type { Case } from '../../collector/cases/model.ts'
import type { Store } from '../../collector/store/client.ts'
import { selectRows } from '../../collector/store/rows.ts'
import type { Role } from '../../protocol/api/names.ts'
import { GRANT_ISSUER, type RestrictedBatch } from '../../protocol/grants.ts'
import {
  type Answer,
  type App,
  type CasesHarness,
  call,
  caseRequest,
  expectCase,
  expectError,
  fingerprint,
  grantRows,
  iso,
  marker,
  openCasesHarness,
  postTierI as sendTierI,
  storedCase,
  type TestAgent,
  type TestUser,
} from '../collector/cases-harness.ts'
import { gz, makeBatch, postIngest } from '../collector/harness.ts'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
/** The remote address of the one stored tier I flow: no refused answer may carry it. */
const SECRET_ADDRESS = '198.51.100.7'
const UNKNOWN_CASE = 'c-0000000000000000'

let h: CasesHarness
let app: App
const u: Record<string, TestUser> = {}
let agentA: TestAgent
let agentB: TestAgent
let agentC: TestAgent
/** Active, subject agent A, investigator u.investigator, one flow stored. */
let c1: Case
/** Active, subject agent B, investigator u.investigator2. */
let c2: Case
/** OIOS's, subject agent C. */
let oiosCase: Case
let access1: string
let access2: string
let captureA: { grant_id: string; token: string }
let captureB: { grant_id: string; token: string }

const person = (name: string): TestUser => {
  const found = u[name]
  if (found === undefined) throw new Error(`no user ${name}`)
  return found
}
const as = (name: string, method: 'GET' | 'POST', path: string, body?: unknown) =>
  call(app, method, path, person(name).token, body)
const ok = async (name: string, path: string, body: unknown, status = 200): Promise<Case> =>
  expectCase(await as(name, 'POST', path, body), status, `POST ${path} as ${name}`)

/** A GET with an access grant in its header, as an investigator drills down. */
async function withGrant(path: string, token: string, grant: string): Promise<Answer> {
  const res = await app.request(path, {
    headers: { authorization: `Bearer ${token}`, 'x-tally-grant': grant },
  })
  const text = await res.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  return { status: res.status, body, text }
}

/** A written request taken to active: filed, consulted, approved, noticed in person. */
async function activeCase(agent: TestAgent, investigator: string): Promise<Case> {
  const filed = await ok(
    'requester',
    '/v1/cases',
    caseRequest(person('receiving').user_id, [agent.agent_id]),
    201,
  )
  await ok('chief', `/v1/cases/${filed.case_id}/consultation`, { summary: 'no conflict' })
  await ok('approver', `/v1/cases/${filed.case_id}/approval`, {
    investigator: person(investigator).user_id,
  })
  const active = await ok('approver', `/v1/cases/${filed.case_id}/notice`, {
    method: 'in_person',
    given_by: 'Head of unit',
    witness: 'Deputy head of unit',
    given_at: iso(Date.now()),
    to: ['staff_member', 'supervisor'],
  })
  expect(active.state).toBe('active')
  return active
}

async function captureGrantOf(agent: TestAgent): Promise<{ grant_id: string; token: string }> {
  const poll = await call(app, 'GET', '/v1/agents/grants', agent.credential)
  expect(poll.status, poll.text).toBe(200)
  const [grant] = (poll.body as { grants: { grant_id: string; token: string }[] }).grants
  if (grant === undefined) throw new Error('no capture grant')
  return grant
}

async function accessGrantOf(doc: Case, investigator: string): Promise<string> {
  const answer = await as(investigator, 'GET', `/v1/cases/${doc.case_id}/access-grant`)
  expect(answer.status, answer.text).toBe(200)
  return (answer.body as { token: string }).token
}

function tierIBatch(agentId: string, grantId: string, seq: number): RestrictedBatch {
  const t = Date.now()
  return {
    version: 1,
    agent_id: agentId,
    grant_id: grantId,
    seq,
    flows: [
      {
        start: t,
        end: t + 100,
        ip_version: 4,
        protocol: 6,
        src: '10.9.0.5',
        dst: SECRET_ADDRESS,
        src_port: 50_123,
        dst_port: 443,
        bytes: 1_234,
        packets: 3,
        tcp_flags: 0x1b,
        community_id: `1:denied-${seq}`,
      },
    ],
    dns: [],
    web: [],
    pcap: [],
  }
}

async function postTierI(agent: TestAgent, batch: unknown): Promise<Answer> {
  const res = await sendTierI(app, agent.credential, batch)
  const text = await res.text()
  return { status: res.status, body: JSON.parse(text) as unknown, text }
}

async function count(store: Store, from: string, where: string, params = {}): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    store,
    `SELECT count() AS n FROM ${from} WHERE ${where}`,
    params,
  )
  return Number(row?.n)
}

/** What a refused tier I attempt must leave as it was: stored rows and success entries. */
async function tierIState(): Promise<string> {
  const rows: Record<string, number> = {}
  for (const table of ['flows', 'dns', 'web', 'pcap_segments', 'exports'])
    rows[table] = await count(h.store, `tally_restricted.${table}`, '1')
  const successes = await count(
    h.store,
    'tally.register_entries',
    `kind IN ('restricted_ingest', 'drilldown', 'export_created', 'export_downloaded')`,
  )
  return JSON.stringify({ rows, successes })
}

/** The answer of a refusal: this status and code, and nothing of a tier I record in it. */
function refusedBlind(answer: Answer, status: number, code: string, what: string): void {
  expect(expectError(answer, [status], what).error, `${what}: ${answer.text}`).toBe(code)
  expect(answer.text, what).not.toContain(SECRET_ADDRESS)
  expect(answer.text, what).not.toContain('"rows"')
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** The token's header and payload with `alg: none` and no signature. */
const algNone = (token: string): string =>
  `${b64url({ ...decodeProtectedHeader(token), alg: 'none' })}.${b64url(decodeJwt(token))}.`

/** The same claims signed with a key of the attacker's own. */
async function forged(token: string): Promise<string> {
  return new SignJWT(decodeJwt(token))
    .setProtectedHeader(decodeProtectedHeader(token) as { alg: string })
    .sign(generateKeyPairSync('ed25519').privateKey)
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(GrantRejected)
    return (error as GrantRejected).reason
  }
  throw new Error('the grant was accepted')
}

beforeAll(async () => {
  h = await openCasesHarness()
  app = h.app
  const people: Record<string, Role[]> = {
    requester: ['requester'],
    approver: ['approver'],
    chief: ['oios_chief'],
    investigator: ['itsd_investigator'],
    investigator2: ['itsd_investigator'],
    receiving: ['receiving_official'],
    auditor: ['auditor'],
    operator: ['operator'],
    lead: ['itsd_lead'],
    oios: ['oios_investigator'],
  }
  for (const [name, roles] of Object.entries(people)) u[name] = await h.user(roles, name)
  u.admin = { ...h.admins.itsd[0], roles: ['admin'] }
  agentA = await h.agent('pc-subject-a')
  agentB = await h.agent('pc-subject-b')
  agentC = await h.agent('pc-subject-c')
  c1 = await activeCase(agentA, 'investigator')
  c2 = await activeCase(agentB, 'investigator2')
  captureA = await captureGrantOf(agentA)
  captureB = await captureGrantOf(agentB)
  const stored = await postTierI(agentA, tierIBatch(agentA.agent_id, captureA.grant_id, 1))
  expect(stored.status, stored.text).toBe(200)
  access1 = await accessGrantOf(c1, 'investigator')
  access2 = await accessGrantOf(c2, 'investigator2')
  // The control: the real grant reads the real flow.
  const read = await withGrant(
    `/v1/cases/${c1.case_id}/flows`,
    person('investigator').token,
    access1,
  )
  expect(read.status, read.text).toBe(200)
  expect(read.text).toContain(SECRET_ADDRESS)
  const now = Date.now()
  oiosCase = await ok(
    'oios',
    '/v1/cases/oios',
    {
      description: 'an OIOS inquiry (denied attacks test)',
      categories: ['flows'],
      subjects: [{ agent_id: agentC.agent_id, addresses: [] }],
      window: { start: iso(now - MINUTE), end: iso(now + 6 * HOUR) },
      receiving_official: person('receiving').user_id,
    },
    201,
  )
}, 60_000)

afterAll(async () => {
  await h?.close()
})

describe("the agents' capture grants", () => {
  // The agent trusts only the key it pinned at enrollment (the collector's grant key); whatever
  // reaches it (a tampered poll answer, a file dropped in its state directory) is verified.
  const pinned = () => h.signingKey.publicJwk

  it('the real grant verifies (the control of the four below)', async () => {
    const grant = await verifyGrant(captureA.token, pinned(), agentA.agent_id, Date.now())
    expect(grant.caseId).toBe(c1.case_id)
  })

  it('forged capture grant: signed with another key, refused by the agent', async () => {
    const token = await forged(captureA.token)
    expect(await rejection(verifyGrant(token, pinned(), agentA.agent_id, Date.now()))).toBe(
      'signature',
    )
  })

  it('expired capture grant: refused by the agent past its end', async () => {
    const exp = Number(decodeJwt(captureA.token).exp) * 1000
    expect(await rejection(verifyGrant(captureA.token, pinned(), agentA.agent_id, exp + 1))).toBe(
      'expired',
    )
  })

  it("other-case capture grant: another case's grant (agent B's) is refused by agent A, and by the collector", async () => {
    expect(
      await rejection(verifyGrant(captureB.token, pinned(), agentA.agent_id, Date.now())),
    ).toBe('agent')
    const before = await tierIState()
    const answer = await postTierI(agentA, tierIBatch(agentA.agent_id, captureB.grant_id, 2))
    refusedBlind(answer, 403, 'not_your_grant', "agent A's batch under agent B's grant")
    expect(await tierIState()).toBe(before)
  })

  it('alg=none capture grant: refused by the agent', async () => {
    const reason = await rejection(
      verifyGrant(algNone(captureA.token), pinned(), agentA.agent_id, Date.now()),
    )
    expect(['algorithm', 'malformed']).toContain(reason)
  })
})

describe("the investigator's access grant", () => {
  const flows = (grant: string, who = 'investigator', caseId = c1.case_id) =>
    withGrant(`/v1/cases/${caseId}/flows`, person(who).token, grant)

  it('forged access grant: the same claims signed with another key, 401, no rows, no entry', async () => {
    const before = await tierIState()
    refusedBlind(await flows(await forged(access1)), 401, 'grant_invalid', 'forged access grant')
    expect(await tierIState()).toBe(before)
  })

  it('expired access grant: 401 grant_expired, no rows, no entry', async () => {
    // The grant exactly as issued (same id, on record, case active), only its exp past: signed
    // with the collector's key so that the expiry alone is what refuses it.
    const claims = decodeJwt(access1)
    const exp = Math.floor(Date.now() / 1000) - 60
    const expired = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', typ: ACCESS_GRANT_TYPE })
      .setIssuer(GRANT_ISSUER)
      .setAudience(DRILLDOWN_AUDIENCE)
      .setNotBefore(exp - 3_600)
      .setExpirationTime(exp)
      .sign(h.signingKey.privateKey)
    const before = await tierIState()
    refusedBlind(await flows(expired), 401, 'grant_expired', 'expired access grant')
    expect(await tierIState()).toBe(before)
  })

  it("other-case access grant: c2's grant on c1, 403 wrong_case, no rows, no entry", async () => {
    const before = await tierIState()
    // Held by c2's own investigator, and borrowed by c1's.
    refusedBlind(await flows(access2, 'investigator2'), 403, 'wrong_case', "c2's grant on c1")
    refusedBlind(await flows(access2, 'investigator'), 403, 'not_your_grant', 'a borrowed grant')
    expect(await tierIState()).toBe(before)
  })

  it('alg=none access grant: 401 grant_invalid, no rows, no entry', async () => {
    const before = await tierIState()
    refusedBlind(await flows(algNone(access1)), 401, 'grant_invalid', 'alg=none access grant')
    expect(await tierIState()).toBe(before)
  })
})

describe('the workflow', () => {
  it('self-approval: a requester holding the approver role approves their own request, 403, no grant', async () => {
    // Conflicting roles cannot be granted (single-insider.test.ts); a store from before the
    // rules might hold such a user, and the workflow refuses them on its own.
    u.both = await h.user(['requester', 'approver', 'itsd_investigator'], 'requester-approver')
    const filed = await ok(
      'both',
      '/v1/cases',
      caseRequest(person('receiving').user_id, [agentA.agent_id]),
      201,
    )
    const doc = await ok('chief', `/v1/cases/${filed.case_id}/consultation`, { summary: 'ok' })
    const before = await fingerprint(h.store)
    const stored = await storedCase(h.store, doc.case_id)
    for (const investigator of [person('investigator').user_id, person('both').user_id]) {
      const answer = await as('both', 'POST', `/v1/cases/${doc.case_id}/approval`, {
        investigator,
      })
      expect(expectError(answer, [403], 'self-approval').error).toBe('forbidden')
    }
    // Nor does another approver name the requester to investigate their own request.
    const named = await as('approver', 'POST', `/v1/cases/${doc.case_id}/approval`, {
      investigator: person('both').user_id,
    })
    expect(expectError(named, [403], 'the requester named investigator').error).toBe('forbidden')
    expect(await fingerprint(h.store)).toBe(before)
    expect(await storedCase(h.store, doc.case_id)).toBe(stored)
    expect(await grantRows(h.store, doc.case_id)).toEqual([])
  })

  it('role escalation from non-admin tokens: every role administration route is 403, nothing written', async () => {
    // A proposal pending, made by one admin, for the escalating user to try to confirm.
    const pending = await as('admin', 'POST', '/v1/admin/users', {
      name: 'Pending Operator',
      roles: ['operator'],
    })
    expect(pending.status, pending.text).toBe(201)
    const proposal = (pending.body as { proposal_id: string }).proposal_id
    const before = await fingerprint(h.store)
    const names = ['operator', 'requester', 'approver', 'investigator', 'receiving', 'auditor']
    for (const name of [...names, 'lead', 'oios']) {
      const self = person(name).user_id
      const attempts: [string, unknown][] = [
        ['/v1/admin/users', { name: `${name}'s admin`, roles: ['admin'] }],
        [`/v1/admin/users/${self}/roles`, { roles: ['admin', 'approver'] }],
        [`/v1/admin/proposals/${proposal}/confirm`, undefined],
        ['/v1/admin/enroll-tokens', { site: 'geneva-pm' }],
        [`/v1/admin/agents/${agentA.agent_id}/revoke`, undefined],
        [`/v1/admin/users/${person('admin').user_id}/revoke`, undefined],
        ['/v1/oios/designations', { category: 'network', user_id: self, position: 'designee' }],
      ]
      for (const [path, body] of attempts) {
        const answer = await as(name, 'POST', path, body)
        expect(answer.status, `${name} POST ${path}: ${answer.text}`).toBe(403)
      }
      const listed = await as(name, 'GET', '/v1/admin/users')
      expect(listed.status, `${name} lists users`).toBe(403)
    }
    // OIOS's chief administers OIOS's roles only: no ITSD role, no admin.
    const chief = await as('chief', 'POST', '/v1/admin/users', {
      name: 'chief-made admin',
      roles: ['admin'],
    })
    expect(chief.status, chief.text).toBe(403)
    expect(await fingerprint(h.store)).toBe(before)
    const pendingNow = await as('admin', 'GET', '/v1/admin/proposals?state=proposed')
    expect(pendingNow.text).toContain(proposal)
  })
})

describe('ingest', () => {
  it("cross-agent ingest: agent B's credential posts host batches and tier I naming agent A, 403, nothing stored", async () => {
    const hostRows = async () =>
      (await count(h.store, 'tally.ingest_batches', 'agent_id = {a:String}', {
        a: agentA.agent_id,
      })) +
      (await count(h.store, 'tally.host_metrics', 'agent_id = {a:String}', { a: agentA.agent_id }))
    const hostBefore = await hostRows()
    const batchOfA = gz(makeBatch(agentA.agent_id, 1))
    const res = await postIngest(app, batchOfA, { credential: agentB.credential })
    expect(res.status).toBe(403)
    expect(((await res.json()) as { error: string }).error).toBe('wrong_agent')
    expect(await hostRows()).toBe(hostBefore)
    // The control: the same batch with agent A's own credential is stored.
    expect((await postIngest(app, batchOfA, { credential: agentA.credential })).status).toBe(200)
    expect(await hostRows()).toBeGreaterThan(hostBefore)

    const before = await tierIState()
    // Naming agent A, under agent A's grant, with agent B's credential.
    const named = await postTierI(agentB, tierIBatch(agentA.agent_id, captureA.grant_id, 3))
    refusedBlind(named, 403, 'wrong_agent', 'a batch naming agent A')
    // Naming itself, under agent A's grant (tier I for another agent's grant).
    const borrowed = await postTierI(agentB, tierIBatch(agentB.agent_id, captureA.grant_id, 4))
    refusedBlind(borrowed, 403, 'not_your_grant', "agent A's grant")
    expect(await tierIState()).toBe(before)
    // The refusals are on record, as refusals.
    const refusals = await selectRows<{ entry: string }>(
      h.store,
      `SELECT entry FROM tally.register_entries
       WHERE kind = 'restricted_ingest_rejected' AND actor = {b:String}`,
      { b: agentB.agent_id },
    )
    expect(refusals.map((r) => JSON.parse(r.entry).details.reason)).toEqual(
      expect.arrayContaining(['wrong_agent', 'not_your_grant']),
    )
  })
})

describe('hostile parameters', () => {
  const SQL = [
    "' OR '1'='1",
    '1; DROP TABLE tally.cases; --',
    "x' UNION SELECT token_sha256 FROM tally.users --",
  ]

  /** Every table of both databases and the row counts that matter: nothing dropped or changed. */
  async function tablesAndRows(): Promise<string> {
    const tables = await selectRows<{ name: string }>(
      h.store,
      `SELECT database || '.' || name AS name FROM system.tables
       WHERE database IN ('tally', 'tally_restricted') ORDER BY name`,
    )
    return JSON.stringify({
      tables: tables.map((t) => t.name),
      state: await tierIState(),
      fingerprint: await fingerprint(h.store),
    })
  }

  it('SQL metacharacters in parameters: 4xx or nothing found, nothing revealed, nothing dropped', async () => {
    const before = await tablesAndRows()
    const inv = person('investigator').token
    for (const payload of SQL) {
      const q = encodeURIComponent(payload)
      for (const name of ['address', 'port', 'agent_id', 'from', 'protocol']) {
        const answer = await withGrant(`/v1/cases/${c1.case_id}/flows?${name}=${q}`, inv, access1)
        expect([400, 403], `${name}=${payload}: ${answer.text}`).toContain(answer.status)
        expect(answer.text).not.toContain(SECRET_ADDRESS)
      }
      const inPath = await withGrant(`/v1/cases/${q}/flows`, inv, access1)
      refusedBlind(inPath, 403, 'wrong_case', `case id ${payload}`)
      const usage = await as('operator', 'GET', `/v1/usage?site=${q}`)
      expect(usage.status, usage.text).toBe(400)
      const entries = await as('auditor', 'GET', `/v1/register/itsd/entries?case_id=${q}`)
      expect(entries.status).toBe(200)
      expect((entries.body as { entries: unknown[] }).entries).toEqual([])
      const read = await as('admin', 'GET', `/v1/cases/${q}`)
      expect(read.status).toBe(404)
      const revoke = await as('admin', 'POST', `/v1/admin/users/${q}/revoke`)
      expect(revoke.status).toBe(404)
    }
    // A grant id of SQL in a tier I batch finds no grant.
    const batch = await postTierI(agentA, tierIBatch(agentA.agent_id, "g-1' OR '1'='1", 5))
    refusedBlind(batch, 403, 'grant_unknown', 'a grant id of SQL')
    // Refused ingest batches and refused drill-downs are registered as refusals; nothing else.
    const after = JSON.parse(await tablesAndRows()) as { tables: string[]; state: string }
    const was = JSON.parse(before) as { tables: string[]; state: string }
    expect(after.tables).toEqual(was.tables)
    expect(after.state).toBe(was.state)
    expect(await count(h.store, 'tally.users', '1')).toBeGreaterThan(0)
  })

  it('path traversal in ids, export and file names and the register name: 404, nothing served', async () => {
    const inv = person('investigator').token
    const made = await app.request(`/v1/cases/${c1.case_id}/exports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${inv}`, 'x-tally-grant': access1 },
    })
    expect(made.status, await made.clone().text()).toBe(201)
    const { export_id: exportId } = (await made.json()) as { export_id: string }
    const base = `/v1/cases/${c1.case_id}/exports/${exportId}`
    // The control: the manifest is served to the investigator with the grant.
    expect((await withGrant(`${base}/manifest`, inv, access1)).status).toBe(200)
    const before = await tablesAndRows()
    // A file beside the store: whatever a parameter could reach on disk would carry its marker.
    const onDisk = marker('on-disk')
    writeFileSync(join(h.dir, 'traversal-target.txt'), onDisk)
    const target = encodeURIComponent(join(h.dir, 'traversal-target.txt'))
    const traversals = [
      ...[1, 2, 3, 4, 6].map((depth) => `${'..%2F'.repeat(depth)}traversal-target.txt`),
      '..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd',
      target,
      '%2e%2e',
      '..',
      '.%2Fmanifest.json',
    ]
    const paths: string[] = []
    for (const t of traversals) {
      paths.push(
        `${base}/files/${t}`,
        `/v1/cases/${c1.case_id}/exports/${t}/manifest`,
        `/v1/cases/${c1.case_id}/exports/${t}/files/flows.json`,
        `/v1/cases/${t}/exports/${exportId}/manifest`,
      )
    }
    for (const path of paths) {
      const answer = await withGrant(path, inv, access1)
      expect([400, 403, 404], `${path}: ${answer.status} ${answer.text}`).toContain(answer.status)
      expect(answer.text, path).not.toMatch(/root:|"files"|BEGIN/)
      expect(answer.text, path).not.toContain(onDisk)
      expect(answer.text).not.toContain(SECRET_ADDRESS)
    }
    const admin = person('admin').token
    for (const t of traversals) {
      for (const [method, path] of [
        ['GET', `/v1/cases/${t}`],
        ['POST', `/v1/admin/users/${t}/revoke`],
        ['POST', `/v1/admin/agents/${t}%2F${agentA.agent_id}/revoke`],
        ['POST', `/v1/admin/proposals/${t}/confirm`],
        ['GET', `/v1/register/${t}%2Fitsd/entries`],
        ['GET', `/v1/register/itsd%2F${t}%2Foios/entries`],
      ] as const) {
        const answer = await call(app, method, path, admin)
        expect(answer.status, `${method} ${path}: ${answer.text}`).toBe(404)
        expect(answer.text, path).not.toContain(onDisk)
      }
    }
    const raw = await call(app, 'GET', '/v1/cases/../../etc/passwd', admin)
    expect(raw.status).toBe(404)
    expect(await tablesAndRows()).toBe(before)
    // Agent A was not revoked by a traversal through its id.
    expect((await call(app, 'GET', '/v1/agents/grants', agentA.credential)).status).toBe(200)
  })
})

describe('OIOS', () => {
  /** What `who` gets for `path` on case `id`, the id itself masked. */
  async function seen(who: string, method: 'GET' | 'POST', id: string, path: string) {
    const body = method === 'POST' ? { outcome: 'closed by ITSD' } : undefined
    const answer = await withGrantOrCall(who, method, `/v1/cases/${id}${path}`, body)
    return { status: answer.status, text: answer.text.replaceAll(id, '<id>') }
  }
  function withGrantOrCall(who: string, method: 'GET' | 'POST', path: string, body?: unknown) {
    if (method === 'GET' && who === 'investigator')
      return withGrant(path, person(who).token, access1)
    return as(who, method, path, body)
  }
  const ITSD = ['admin', 'auditor', 'approver', 'requester', 'investigator', 'operator', 'lead']

  it('OIOS by route: to every ITSD role an OIOS case answers as a case that does not exist', async () => {
    const before = await fingerprint(h.store)
    const routes: ['GET' | 'POST', string][] = [
      ['GET', ''],
      ['GET', '/access-grant'],
      ['GET', '/flows'],
      ['GET', '/exports/x-0000000000000000/manifest'],
      ['GET', '/exports'],
      ['POST', '/closing'],
    ]
    for (const who of ITSD) {
      for (const [method, path] of routes) {
        const oios = await seen(who, method, oiosCase.case_id, path)
        expect([403, 404], `${who} ${method} ${path}: ${oios.text}`).toContain(oios.status)
        expect(oios, `${who} ${method} ${path}`).toEqual(
          await seen(who, method, UNKNOWN_CASE, path),
        )
        expect(oios.text).not.toContain('OIOS inquiry')
      }
      const list = await as(who, 'GET', '/v1/cases')
      expect(list.text, `${who}'s list`).not.toContain(oiosCase.case_id)
      for (const path of ['/v1/register/oios/entries', '/v1/register/oios/verify']) {
        const register = await as(who, 'GET', path)
        const nowhere = await as(who, 'GET', '/v1/no-such-route')
        expect(register.status, `${who} ${path}`).toBe(404)
        expect(register.text.replace(path, '<p>')).toBe(
          nowhere.text.replace('/v1/no-such-route', '<p>'),
        )
      }
    }
    expect(await fingerprint(h.store)).toBe(before)
    // The control: OIOS reads its case.
    expect((await as('oios', 'GET', `/v1/cases/${oiosCase.case_id}`)).status).toBe(200)
  })

  it('OIOS by timing: an OIOS case and a nonexistent one take the same store queries', async () => {
    // Wall-clock time is not asserted (never, in these tests). What would make the times differ
    // is a different path through the code; the statements sent to the engine show the path. The
    // real store is only observed here: every statement still runs on the engine.
    const statements: string[] = []
    const store = h.store
    const query = store.query.bind(store)
    const insert = store.insert.bind(store)
    store.query = ((params: Parameters<Store['query']>[0]) => {
      statements.push(params.query.replace(/\s+/g, ' ').trim())
      return query(params)
    }) as Store['query']
    store.insert = ((params: Parameters<Store['insert']>[0]) => {
      statements.push(`INSERT ${params.table}`)
      return insert(params)
    }) as Store['insert']
    const trace = async (who: string, method: 'GET' | 'POST', id: string, path: string) => {
      statements.length = 0
      const answer = await seen(who, method, id, path)
      return { answer, statements: [...statements] }
    }
    try {
      for (const who of ['auditor', 'admin', 'investigator', 'approver']) {
        for (const [method, path] of [
          ['GET', ''],
          ['GET', '/access-grant'],
          ['GET', '/flows'],
          ['GET', '/exports'],
          ['POST', '/closing'],
        ] as const) {
          const oios = await trace(who, method, oiosCase.case_id, path)
          const unknown = await trace(who, method, UNKNOWN_CASE, path)
          expect(
            oios.statements.length,
            `${who} ${method} ${path} reads the store`,
          ).toBeGreaterThan(0)
          expect(oios.statements, `${who} ${method} ${path}`).toEqual(unknown.statements)
          expect(oios.answer).toEqual(unknown.answer)
        }
      }
    } finally {
      store.query = query
      store.insert = insert
    }
  })
})
