/**
 * The investigation workflow of bulletin sections 8 and 9 through HTTP, on the real engine: a
 * collector from createCollector with a real Register, users with roles, enrolled agents, and a
 * local webhook standing in for the outbox's relay.
 *
 * 8.4/8.5: request, OIOS consultation, approval, notice (outbox or in person), grants to the
 * subject's agent and the investigator, extension, closing; an emergency (8.4b) and its written
 * request; denial; expiry. 8.2: technical cases. 9: OIOS cases and ITSD's designees (9.2e).
 * Every answer is also checked against the schema the OpenAPI document gives for it.
 */
import Ajv2020 from 'ajv/dist/2020.js'
import { decodeJwt, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ACCESS_GRANT_TYPE, DRILLDOWN_AUDIENCE } from '../../collector/cases/grants.ts'
import type { Case } from '../../collector/cases/model.ts'
import type { RegisterEntry } from '../../collector/register/register.ts'
import type { CaseRequest } from '../../protocol/api/cases.ts'
import { GRANT_AUDIENCE, GRANT_ISSUER, GRANT_TYPE, GrantClaims } from '../../protocol/grants.ts'
import {
  type Answer,
  type App,
  type CasesHarness,
  call,
  caseRequest,
  expectCase,
  expectError,
  grantRows,
  iso,
  openCasesHarness,
  storedCase,
  type TestAgent,
  type TestUser,
  writtenRequest,
} from './cases-harness.ts'

const HOUR = 3_600_000
const DAY = 24 * HOUR

let h: CasesHarness
let app: App
const u: Record<string, TestUser> = {}
let subject: TestAgent
let otherAgent: TestAgent
let validate: (name: string, value: unknown, what: string) => void

beforeAll(async () => {
  h = await openCasesHarness()
  app = h.app
  const roles = {
    admin: ['admin'],
    operator: ['operator'],
    auditor: ['auditor'],
    requester: ['requester'],
    approver: ['approver'],
    approver2: ['approver'],
    chief: ['oios_chief'],
    investigator: ['itsd_investigator'],
    investigator2: ['itsd_investigator'],
    receiving: ['receiving_official'],
    receiving2: ['receiving_official'],
    lead: ['itsd_lead'],
    lead2: ['itsd_lead'],
    oios: ['oios_investigator'],
    d1: ['oios_designee'],
    d2: ['oios_designee'],
    d3: ['oios_designee'],
    d4: ['oios_designee'],
  } as const
  for (const [name, r] of Object.entries(roles)) u[name] = await h.user([...r], name)
  subject = await h.agent('pc-subject')
  otherAgent = await h.agent('pc-other')

  // The OpenAPI document's own schemas, to check every answer against.
  const doc = (await call(app, 'GET', '/v1/openapi.json')).body as {
    components: { schemas: Record<string, unknown> }
  }
  const defs: unknown = JSON.parse(
    JSON.stringify(doc.components.schemas).replaceAll('"#/components/schemas/', '"#/$defs/'),
  )
  const ajv = new Ajv2020.default({
    strict: true,
    allErrors: true,
    formats: { ipv4: true, ipv6: true, email: true, 'date-time': true },
  })
  ajv.addSchema({ $id: 'tally', $defs: defs })
  validate = (name, value, what) => {
    const check = ajv.getSchema(`tally#/$defs/${name}`)
    if (check === undefined) throw new Error(`no schema ${name}`)
    expect(check(value), `${what} is not a ${name}: ${JSON.stringify(check.errors)}`).toBe(true)
  }
})

afterAll(async () => {
  await h?.close()
})

// --- Steps -------------------------------------------------------------------------------------

const token = (name: string): string => {
  const user = u[name]
  if (user === undefined) throw new Error(`no user ${name}`)
  return user.token
}
const id = (name: string): string => (u[name] as TestUser).user_id

/** A step that must succeed: its answer is a case, checked against the documented schema. */
async function ok(
  method: 'GET' | 'POST',
  path: string,
  who: string,
  body?: unknown,
  status = 200,
  via: App = app,
): Promise<Case> {
  const doc = expectCase(
    await call(via, method, path, token(who), body),
    status,
    `${method} ${path} as ${who}`,
  )
  validate('Case', doc, `${method} ${path}`)
  return doc
}

async function refused(
  method: 'GET' | 'POST',
  path: string,
  who: string,
  body: unknown,
  status: number,
  code?: string,
): Promise<Answer> {
  const answer = await call(app, method, path, token(who), body)
  const error = expectError(answer, [status], `${method} ${path} as ${who}`)
  if (code !== undefined) expect(error.error, answer.text).toBe(code)
  validate('ErrorBody', answer.body, `${method} ${path}`)
  return answer
}

async function fileCase(
  agents: string[] = [subject.agent_id],
  overrides: Parameters<typeof caseRequest>[2] = {},
  via: App = app,
): Promise<Case> {
  return ok(
    'POST',
    '/v1/cases',
    'requester',
    caseRequest(id('receiving'), agents, overrides),
    201,
    via,
  )
}

const inPerson = () => ({
  method: 'in_person',
  given_by: 'Head of unit',
  witness: 'Deputy head of unit',
  given_at: iso(Date.now()),
  to: ['staff_member', 'supervisor'],
})

async function agentGrants(agent: TestAgent, via: App = app) {
  const answer = await call(via, 'GET', '/v1/agents/grants', agent.credential)
  expect(answer.status, answer.text).toBe(200)
  validate('AgentGrants', answer.body, 'GET /v1/agents/grants')
  return (answer.body as { grants: { grant_id: string; token: string }[] }).grants
}

/** The agent's grants for one case, verified with the collector's key. */
async function grantsOfCase(agent: TestAgent, caseId: string, via: App = app) {
  const out: { grant_id: string; claims: GrantClaims; exp: number }[] = []
  for (const grant of await agentGrants(agent, via)) {
    const { payload, protectedHeader } = await jwtVerify(
      grant.token,
      h.signingKey.publicKeyObject,
      { algorithms: ['EdDSA'], issuer: GRANT_ISSUER, audience: GRANT_AUDIENCE, typ: GRANT_TYPE },
    )
    expect(protectedHeader.alg).toBe('EdDSA')
    expect(payload.sub).toBe(agent.agent_id)
    expect(payload.jti).toBe(grant.grant_id)
    const { iss: _i, aud: _a, sub: _s, jti: _j, iat: _t, nbf: _n, exp, ...claims } = payload
    const parsed = GrantClaims.parse(claims)
    if (parsed.case_id === caseId)
      out.push({ grant_id: grant.grant_id, claims: parsed, exp: exp ?? 0 })
  }
  return out
}

async function entries(register: 'itsd' | 'oios', who: string, caseId?: string) {
  const query = caseId === undefined ? '' : `?case_id=${caseId}`
  const answer = await call(app, 'GET', `/v1/register/${register}/entries${query}`, token(who))
  expect(answer.status, answer.text).toBe(200)
  validate('RegisterEntries', answer.body, `GET /v1/register/${register}/entries`)
  return (answer.body as { entries: RegisterEntry[] }).entries
}

const kinds = async (caseId: string, register: 'itsd' | 'oios' = 'itsd', who = 'auditor') =>
  (await entries(register, who, caseId)).map((e) => e.kind)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// --- 8.4 and 8.5 -------------------------------------------------------------------------------

describe('a standard case, 8.4 and 8.5, step for step', () => {
  it('request, consultation, approval, notice by outbox, grants, extension, closing', async () => {
    const request = caseRequest(id('receiving'), [subject.agent_id])
    const filed = await ok('POST', '/v1/cases', 'requester', request, 201)
    const path = `/v1/cases/${filed.case_id}`
    expect(filed).toMatchObject({
      kind: 'standard',
      state: 'requested',
      emergency: false,
      requester: id('requester'),
      recorded_by: id('requester'),
      description: request.data_required,
      staff_member: request.staff_member,
      supervisor: request.supervisor,
      receiving_official: id('receiving'),
      approvals: [],
    })
    expect(filed.case_id).toMatch(/^c-[a-z0-9]{16}$/)
    expect(await ok('GET', path, 'requester')).toEqual(filed)

    // 8.4c: nothing before approval; 8.4d: no approval before the consultation.
    expect(await grantsOfCase(subject, filed.case_id)).toEqual([])
    await refused('GET', `${path}/access-grant`, 'investigator', undefined, 404, 'not_found')
    const early = await refused(
      'POST',
      `${path}/approval`,
      'approver',
      { investigator: id('investigator') },
      409,
      'wrong_state',
    )
    expect(early.text).toMatch(/OIOS must be consulted/)
    const consulted = await ok('POST', `${path}/consultation`, 'chief', { summary: 'no conflict' })
    expect(consulted.consultation).toMatchObject({ by: id('chief'), summary: 'no conflict' })
    expect(consulted.state).toBe('requested')

    const approved = await ok('POST', `${path}/approval`, 'approver', {
      investigator: id('investigator'),
      comment: 'approved for two days',
    })
    expect(approved.state).toBe('approved')
    expect(approved.investigator).toBe(id('investigator'))
    expect(approved.approvals).toEqual([
      expect.objectContaining({ by: id('approver'), kind: 'approval', until: request.window.end }),
    ])
    // Approved is not active: no grant until the staff member has been told (8.5a).
    expect(await grantsOfCase(subject, filed.case_id)).toEqual([])
    await refused('GET', `${path}/access-grant`, 'investigator', undefined, 409, 'wrong_state')

    // 8.5a by the outbox: delivered to the staff member and the supervisor, then active.
    const before = h.webhook.posts.length
    const active = await ok('POST', `${path}/notice`, 'approver', { method: 'outbox' })
    expect(active.state).toBe('active')
    expect(active.notice).toMatchObject({ method: 'outbox', by: id('approver') })
    expect(active.notice?.to).toEqual([request.staff_member.email, request.supervisor.email])
    const sent = h.webhook.postsFor(filed.case_id)
    expect(h.webhook.posts.length - before).toBe(2)
    expect(sent.map((p) => p.to).sort()).toEqual(
      [request.staff_member.email, request.supervisor.email].sort(),
    )
    for (const post of sent) {
      expect(post.subject).toMatch(/8\.5a/)
      expect(post.body).toContain(filed.case_id)
    }
    expect(active.notice?.message_ids?.sort()).toEqual(sent.map((p) => p.message_id).sort())
    const messages = await h.collector.outbox.messages(filed.case_id)
    expect(messages).toHaveLength(2)
    for (const m of messages) expect(m.delivered_at, m.recipient).not.toBeNull()

    // One grant for the subject's agent, none for another agent.
    const [grant, ...more] = await grantsOfCase(subject, filed.case_id)
    expect(more).toEqual([])
    expect(grant?.claims).toEqual({
      case_id: filed.case_id,
      agent_id: subject.agent_id,
      addresses: [],
      categories: ['flows', 'dns'],
      window: { start: expect.any(Number), end: Date.parse(request.window.end) },
    })
    expect(await grantsOfCase(otherAgent, filed.case_id)).toEqual([])

    // The access grant goes to the investigator and to no one else.
    const access = await call(app, 'GET', `${path}/access-grant`, token('investigator'))
    expect(access.status, access.text).toBe(200)
    validate('AccessGrant', access.body, 'access grant')
    const accessBody = access.body as { token: string; window: { end: string } }
    const verified = await jwtVerify(accessBody.token, h.signingKey.publicKeyObject, {
      algorithms: ['EdDSA'],
      audience: DRILLDOWN_AUDIENCE,
      typ: ACCESS_GRANT_TYPE,
      subject: id('investigator'),
    })
    expect(verified.payload).toMatchObject({ case_id: filed.case_id, categories: ['flows', 'dns'] })
    for (const who of ['requester', 'approver', 'receiving', 'chief', 'auditor', 'admin'])
      await refused('GET', `${path}/access-grant`, who, undefined, 403, 'forbidden')
    await refused('GET', `${path}/access-grant`, 'investigator2', undefined, 404, 'not_found')

    expect(await kinds(filed.case_id)).toEqual([
      'case_requested',
      'oios_consulted',
      'case_approved',
      'notice_given',
      'grants_issued',
    ])

    // 8.5f: an extension is a new approval, with a new grant for the longer window.
    const until = Date.parse(active.window.end) + 3 * DAY
    await refused(
      'POST',
      `${path}/extension`,
      'approver2',
      { until: iso(Date.now() + 31 * DAY), justification: 'too long' },
      400,
      'window_too_long',
    )
    await refused(
      'POST',
      `${path}/extension`,
      'approver2',
      { until: iso(Date.parse(active.window.end) - HOUR), justification: 'shorter' },
      400,
      'invalid_window',
    )
    const extended = await ok('POST', `${path}/extension`, 'approver2', {
      until: iso(until),
      justification: 'more time is needed',
    })
    expect(extended.state).toBe('active')
    expect(extended.window).toEqual({ start: request.window.start, end: iso(until) })
    expect(extended.approvals.map((a) => [a.kind, a.by])).toEqual([
      ['approval', id('approver')],
      ['extension', id('approver2')],
    ])
    const [renewed, ...extra] = await grantsOfCase(subject, filed.case_id)
    expect(extra).toEqual([])
    expect(renewed?.grant_id).not.toBe(grant?.grant_id)
    expect(renewed?.claims.window.end).toBe(until)
    expect(renewed?.exp).toBeGreaterThan(grant?.exp ?? Number.POSITIVE_INFINITY)
    const rows = await grantRows(h.store, filed.case_id)
    expect(rows.find((r) => r.grant_id === grant?.grant_id)?.revoked).toBe(1)
    const access2 = await call(app, 'GET', `${path}/access-grant`, token('investigator'))
    const access2Body = access2.body as { token: string; window: { end: string } }
    expect(access2Body.token).not.toBe(accessBody.token)
    expect(access2Body.window.end).toBe(iso(until))
    expect(decodeJwt(access2Body.token).exp).toBe(Math.ceil(until / 1000))

    // 8.5f: closing informs the staff member and revokes every grant at once.
    const posts = h.webhook.posts.length
    const closed = await ok('POST', `${path}/closing`, 'requester', {
      outcome: 'no further action',
    })
    expect(closed.state).toBe('closed')
    expect(closed.closing).toMatchObject({ by: id('requester'), outcome: 'no further action' })
    // 8.5e: its tier I data goes with it.
    expect(closed.purged_at).toBeDefined()
    const closingPosts = h.webhook.posts.slice(posts)
    expect(closingPosts.map((p) => p.to)).toEqual([request.staff_member.email])
    expect(closingPosts[0]?.body).toContain('no further action')
    expect(await agentGrants(subject)).toEqual([])
    expect((await grantRows(h.store, filed.case_id)).every((r) => r.revoked === 1)).toBe(true)
    await refused('GET', `${path}/access-grant`, 'investigator', undefined, 409, 'wrong_state')
    await refused('POST', `${path}/closing`, 'approver', { outcome: 'again' }, 409, 'wrong_state')
    await refused(
      'POST',
      `${path}/extension`,
      'approver',
      { until: iso(until + DAY), justification: 'reopen' },
      409,
      'wrong_state',
    )
    expect((await ok('GET', path, 'auditor')).state).toBe('closed')
    expect((await kinds(filed.case_id)).slice(5)).toEqual([
      'case_extended',
      'grants_issued',
      'case_closed',
      'tier_i_purged',
    ])

    const list = await call(app, 'GET', '/v1/cases', token('approver'))
    validate('CaseList', list.body, 'GET /v1/cases')
    const verify = await call(app, 'GET', '/v1/register/itsd/verify', token('auditor'))
    validate('VerifyReport', verify.body, 'verify')
    expect(verify.body).toMatchObject({ ok: true, problems: [] })
  })

  it('an in-person notice is recorded, sends nothing, and activates the case', async () => {
    const filed = await fileCase()
    const path = `/v1/cases/${filed.case_id}`
    await ok('POST', `${path}/consultation`, 'chief', { summary: 'no conflict' })
    await ok('POST', `${path}/approval`, 'approver', { investigator: id('investigator') })
    const given = iso(Date.now())
    const body = {
      method: 'in_person',
      given_by: 'Chief of section',
      witness: 'Deputy chief of section',
      given_at: given,
      to: ['staff_member', 'supervisor'],
    }
    // Not by the investigator, who would gain access by it.
    await refused('POST', `${path}/notice`, 'investigator', body, 403, 'forbidden')
    const active = await ok('POST', `${path}/notice`, 'approver', body)
    expect(active.state).toBe('active')
    expect(active.notice).toEqual({
      method: 'in_person',
      by: id('approver'),
      at: given,
      to: ['staff_member', 'supervisor'],
      given_by: 'Chief of section',
      witness: 'Deputy chief of section',
    })
    const [entry] = (await entries('itsd', 'auditor', filed.case_id)).filter(
      (e) => e.kind === 'notice_given',
    )
    expect(entry?.details).toMatchObject({ given_by: 'Chief of section', witness: body.witness })
    expect(h.webhook.postsFor(filed.case_id)).toEqual([])
    expect(await grantsOfCase(subject, filed.case_id)).toHaveLength(1)
    // A second notice on an active case is a wrong state, not a second set of grants.
    await refused('POST', `${path}/notice`, 'approver', inPerson(), 409, 'wrong_state')
    await ok('POST', `${path}/closing`, 'investigator', { outcome: 'done' })
  })

  it('a notice the outbox cannot deliver is not on record: 409, still approved, no grant', async () => {
    const filed = await fileCase()
    const path = `/v1/cases/${filed.case_id}`
    await ok('POST', `${path}/consultation`, 'chief', { summary: 'no conflict' })
    await ok('POST', `${path}/approval`, 'approver', { investigator: id('investigator') })
    h.webhook.failing = true
    try {
      await refused('POST', `${path}/notice`, 'approver', { method: 'outbox' }, 409, 'wrong_state')
    } finally {
      h.webhook.failing = false
    }
    const after = await ok('GET', path, 'approver')
    expect(after.state).toBe('approved')
    expect(after.notice).toBeUndefined()
    expect(await grantRows(h.store, filed.case_id)).toEqual([])
    expect(await kinds(filed.case_id)).not.toContain('notice_given')
    // Without any outbox channel, only an in-person notice can be recorded.
    const bare = h.collectorWith({ outbox: {} }).app
    const answer = await call(bare, 'POST', `${path}/notice`, token('approver'), {
      method: 'outbox',
    })
    expect(expectError(answer, [409], 'notice without outbox').error).toBe('no_outbox')
    expect((await ok('POST', `${path}/notice`, 'approver', inPerson())).state).toBe('active')
    await ok('POST', `${path}/closing`, 'approver', { outcome: 'done' })
  })

  it('OIOS is consulted once: a second consultation is 409 and changes nothing', async () => {
    const filed = await fileCase()
    const path = `/v1/cases/${filed.case_id}`
    const consulted = await ok('POST', `${path}/consultation`, 'chief', { summary: 'no conflict' })
    const stored = await storedCase(h.store, filed.case_id)
    const chief2 = await h.user(['oios_chief'])
    for (const [who, summary] of [
      [token('chief'), 'no conflict'],
      [token('chief'), 'on second thought, a conflict'],
      [chief2.token, 'another chief, another view'],
    ] as const) {
      const answer = await call(app, 'POST', `${path}/consultation`, who, { summary })
      const error = expectError(answer, [409], `a second consultation: ${summary}`)
      expect(error.error).toBe('wrong_state')
      expect(answer.text).toMatch(/already consulted/)
      expect(answer.text).not.toContain(summary)
    }
    expect(await storedCase(h.store, filed.case_id)).toBe(stored)
    expect(await kinds(filed.case_id)).toEqual(['case_requested', 'oios_consulted'])
    const after = await ok('GET', path, 'chief')
    expect(after.consultation).toEqual(consulted.consultation)
    // The approval rests on the one consultation on record; none is added after it either.
    await ok('POST', `${path}/approval`, 'approver', { investigator: id('investigator') })
    await refused('POST', `${path}/consultation`, 'chief', { summary: 'late' }, 409, 'wrong_state')
    expect(await kinds(filed.case_id)).toEqual([
      'case_requested',
      'oios_consulted',
      'case_approved',
    ])
    await ok('POST', `${path}/closing`, 'approver', { outcome: 'withdrawn' })
  })

  it('closing is registered before the staff member is told: without its entry, nothing happens', async () => {
    const filed = await fileCase()
    const path = `/v1/cases/${filed.case_id}`
    await ok('POST', `${path}/consultation`, 'chief', { summary: 'no conflict' })
    await ok('POST', `${path}/approval`, 'approver', { investigator: id('investigator') })
    await ok('POST', `${path}/notice`, 'approver', inPerson())
    expect(h.webhook.postsFor(filed.case_id)).toEqual([])

    // A register that cannot take the closing entry: the case is not closed, no one is told.
    const register = h.collector.register
    const append = register.append.bind(register)
    register.append = async (input) => {
      if (input.kind === 'case_closed') throw new Error('the register is unavailable')
      return append(input)
    }
    try {
      const answer = await call(app, 'POST', `${path}/closing`, token('approver'), {
        outcome: 'no further action',
      })
      expectError(answer, [500], 'closing while the register fails')
    } finally {
      Reflect.deleteProperty(register, 'append')
    }
    expect(h.webhook.postsFor(filed.case_id)).toEqual([])
    expect(await h.collector.outbox.messages(filed.case_id)).toEqual([])
    const still = await ok('GET', path, 'approver')
    expect(still.state).toBe('active')
    expect(still.closing).toBeUndefined()
    expect(await grantsOfCase(subject, filed.case_id)).toHaveLength(1)
    expect(await kinds(filed.case_id)).not.toContain('case_closed')

    // With the register back: registered and closed, then the closing notice goes out.
    const closed = await ok('POST', `${path}/closing`, 'approver', { outcome: 'no further action' })
    expect(closed.state).toBe('closed')
    expect(await grantsOfCase(subject, filed.case_id)).toEqual([])
    const closedEntry = (await entries('itsd', 'auditor', filed.case_id)).find(
      (e) => e.kind === 'case_closed',
    )
    expect(closedEntry?.details).toMatchObject({ state: 'closed', reason: 'no further action' })
    const [message, ...more] = await h.collector.outbox.messages(filed.case_id)
    expect(more).toEqual([])
    expect(message?.recipient).toBe(filed.staff_member?.email)
    expect(message?.delivered_at).not.toBeNull()
    expect(message?.created_at).toBeGreaterThanOrEqual(Date.parse(closedEntry?.ts ?? ''))
    expect(h.webhook.postsFor(filed.case_id).map((p) => p.to)).toEqual([filed.staff_member?.email])
  })

  it('denial ends the request: no approval, notice or grant afterwards', async () => {
    const filed = await fileCase()
    const path = `/v1/cases/${filed.case_id}`
    await ok('POST', `${path}/consultation`, 'chief', { summary: 'conflicts with an OIOS case' })
    await refused('POST', `${path}/denial`, 'requester', { reason: 'x' }, 403, 'forbidden')
    await refused('POST', `${path}/denial`, 'approver', { reason: '' }, 400, 'invalid_request')
    const denied = await ok('POST', `${path}/denial`, 'approver', { reason: 'not proportionate' })
    expect(denied.state).toBe('denied')
    expect(denied.denial).toMatchObject({ by: id('approver'), reason: 'not proportionate' })
    const approval = { investigator: id('investigator') }
    await refused('POST', `${path}/approval`, 'approver2', approval, 409, 'wrong_state')
    await refused('POST', `${path}/denial`, 'approver2', { reason: 'again' }, 409, 'wrong_state')
    await refused('POST', `${path}/notice`, 'approver', inPerson(), 409, 'wrong_state')
    await refused('POST', `${path}/closing`, 'approver', { outcome: 'x' }, 409, 'wrong_state')
    expect(await grantRows(h.store, filed.case_id)).toEqual([])
    expect(await kinds(filed.case_id)).toEqual(['case_requested', 'oios_consulted', 'case_denied'])
  })

  it('refuses a request whose window is too long, already over, or whose people are wrong', async () => {
    const now = Date.now()
    const post = (overrides: Parameters<typeof caseRequest>[2], receiving = id('receiving')) =>
      call(app, 'POST', '/v1/cases', token('requester'), {
        ...caseRequest(receiving, [subject.agent_id]),
        ...overrides,
      })
    const cases = [
      [{ window: { start: iso(now), end: iso(now + 31 * DAY) } }, 'window_too_long'],
      [{ window: { start: iso(now - 2 * HOUR), end: iso(now - HOUR) } }, 'invalid_window'],
      [{ window: { start: iso(now + HOUR), end: iso(now) } }, 'invalid_window'],
    ] as const
    for (const [overrides, code] of cases) {
      const answer = await post(overrides)
      expect(expectError(answer, [400], JSON.stringify(overrides)).error).toBe(code)
    }
    // The receiving official must be a user holding that role (8.4a).
    expect(expectError(await post({}, id('approver')), [400], 'wrong role').error).toBe(
      'wrong_role',
    )
    expect(expectError(await post({}, 'u-0000000000000000'), [400], 'unknown user').error).toBe(
      'unknown_user',
    )
  })
})

describe('an approval names a window that is still to come', () => {
  it('refuses an end in the past or before the start: 400, the case stays requested', async () => {
    const filed = await fileCase()
    const path = `/v1/cases/${filed.case_id}`
    await ok('POST', `${path}/consultation`, 'chief', { summary: 'no conflict' })
    const size = (await kinds(filed.case_id)).length
    for (const until of [
      iso(Date.now() - 60_000),
      iso(Date.parse(filed.window.start) - DAY),
      filed.window.start,
    ]) {
      const approval = { investigator: id('investigator'), until }
      await refused('POST', `${path}/approval`, 'approver', approval, 400, 'invalid_window')
    }
    const after = await ok('GET', path, 'approver')
    expect(after.state).toBe('requested')
    expect(after.approvals).toEqual([])
    expect(await kinds(filed.case_id)).toHaveLength(size)
    await ok('POST', `${path}/closing`, 'requester', { outcome: 'withdrawn' })
  })
})

describe('a notice within the approved window (8.5a)', () => {
  it('expires once the approved window has ended: the notice is refused, no notice, no grant', async () => {
    const filed = await fileCase()
    const path = `/v1/cases/${filed.case_id}`
    await ok('POST', `${path}/consultation`, 'chief', { summary: 'no conflict' })
    const end = Date.now() + 1_500
    const approved = await ok('POST', `${path}/approval`, 'approver', {
      investigator: id('investigator'),
      until: iso(end),
    })
    expect(approved.window.end).toBe(iso(end))
    await sleep(end - Date.now() + 200)

    for (const body of [{ method: 'outbox' }, inPerson()]) {
      await refused('POST', `${path}/notice`, 'approver', body, 409, 'wrong_state')
    }
    await refused('POST', `${path}/notice`, 'investigator', inPerson(), 403, 'forbidden')
    // Nothing sent or issued; the case expired on its first read after the window.
    expect(h.webhook.postsFor(filed.case_id)).toEqual([])
    expect(await h.collector.outbox.messages(filed.case_id)).toEqual([])
    const registered = await kinds(filed.case_id)
    expect(registered.slice(0, 4)).toEqual([
      'case_requested',
      'oios_consulted',
      'case_approved',
      'case_expired',
    ])
    expect(registered).not.toContain('notice_given')
    expect(registered).not.toContain('grants_issued')
    expect(await grantRows(h.store, filed.case_id)).toEqual([])
    expect(await grantsOfCase(subject, filed.case_id)).toEqual([])
    const after = await ok('GET', path, 'approver')
    expect(after.state).toBe('expired')
    expect(after.notice).toBeUndefined()
    await refused('GET', `${path}/access-grant`, 'investigator', undefined, 409, 'wrong_state')
    await refused(
      'POST',
      `${path}/closing`,
      'approver',
      { outcome: 'the window passed' },
      409,
      'wrong_state',
    )
  })
})

// --- 8.4b --------------------------------------------------------------------------------------

describe('an emergency (8.4b): verbal request, approval without consultation', () => {
  const emergency = () => ({
    ...caseRequest(id('receiving'), [subject.agent_id]),
    verbal_requester: id('requester'),
    received_at: iso(Date.now() - 5 * 60_000),
  })
  const approval = () => ({ investigator: id('investigator') })

  it('is approved without consultation, and the written request that follows keeps it', async () => {
    await refused('POST', '/v1/cases/emergency', 'requester', emergency(), 403, 'forbidden')
    const verbal = emergency()
    const recorded = await ok('POST', '/v1/cases/emergency', 'approver', verbal, 201)
    expect(recorded).toMatchObject({
      state: 'requested',
      emergency: true,
      requester: id('requester'),
      recorded_by: id('approver'),
    })
    const due = Date.parse(recorded.written_request_due ?? '')
    expect(Math.abs(due - (Date.now() + 24 * HOUR))).toBeLessThan(60_000)
    const path = `/v1/cases/${recorded.case_id}`
    // Someone other than its recorder confirms it before anyone approves it.
    await refused('POST', `${path}/approval`, 'approver2', approval(), 409, 'wrong_state')
    const confirmed = await ok('POST', `${path}/emergency-confirmation`, 'chief', {
      statement: 'confirmed with the requesting office by telephone',
    })
    expect(confirmed.emergency_confirmation?.by).toBe(id('chief'))
    const approved = await ok('POST', `${path}/approval`, 'approver2', approval())
    expect(approved.state).toBe('approved')
    expect(approved.consultation).toBeUndefined()
    const active = await ok('POST', `${path}/notice`, 'approver', inPerson())
    expect(active.state).toBe('active')
    // The written request confirms the verbal one: the same people, subjects and categories.
    const written = writtenRequest(verbal)
    await refused('POST', `${path}/written-request`, 'approver', written, 403, 'forbidden')
    const filed = await ok('POST', `${path}/written-request`, 'requester', written)
    expect(filed.written_request_at).toBeDefined()
    expect(filed.state).toBe('active')
    expect(filed.description).toBe(written.data_required)
    expect(filed.justification).toBe(written.justification)
    expect(filed.staff_member).toEqual(verbal.staff_member)
    expect(await kinds(recorded.case_id)).toEqual([
      'emergency_recorded',
      'emergency_confirmed',
      'case_approved',
      'notice_given',
      'grants_issued',
      'written_request_filed',
    ])
    // A written request belongs to an emergency only.
    const standard = await fileCase()
    await refused(
      'POST',
      `/v1/cases/${standard.case_id}/written-request`,
      'requester',
      written,
      409,
      'wrong_state',
    )
    await ok('POST', `${path}/closing`, 'approver', { outcome: 'done' })
    await ok('POST', `/v1/cases/${standard.case_id}/closing`, 'requester', { outcome: 'withdrawn' })
  })

  it('is suspended, grants revoked, when the written request does not follow in time', async () => {
    // A deadline of five seconds (emergency_written_hours in the collector's settings): room for
    // the four steps to an active case on a loaded machine.
    const quick = h.collectorWith({ emergency_written_hours: 5 / 3600 }).app
    const open = async (writtenFirst: boolean) => {
      const verbal = emergency()
      const doc = await ok('POST', '/v1/cases/emergency', 'approver', verbal, 201, quick)
      const path = `/v1/cases/${doc.case_id}`
      const written = writtenRequest(verbal)
      // The kept case gets its written request at once, so no deadline races its other steps.
      if (writtenFirst)
        await ok('POST', `${path}/written-request`, 'requester', written, 200, quick)
      const statement = { statement: 'confirmed' }
      await ok('POST', `${path}/emergency-confirmation`, 'chief', statement, 200, quick)
      await ok('POST', `${path}/approval`, 'approver2', approval(), 200, quick)
      await ok('POST', `${path}/notice`, 'approver', inPerson(), 200, quick)
      return { doc, written }
    }
    const { doc: kept } = await open(true)
    const { doc: lapsed, written: lapsedWritten } = await open(false)
    expect(await grantsOfCase(subject, lapsed.case_id, quick)).toHaveLength(1)

    await sleep(Math.max(0, Date.parse(lapsed.written_request_due ?? '') - Date.now()) + 300)
    const suspended = await ok(
      'GET',
      `/v1/cases/${lapsed.case_id}`,
      'approver',
      undefined,
      200,
      quick,
    )
    expect(suspended.state).toBe('suspended')
    expect(await grantsOfCase(subject, lapsed.case_id, quick)).toEqual([])
    expect((await grantRows(h.store, lapsed.case_id)).every((r) => r.revoked === 1)).toBe(true)
    expect((await kinds(lapsed.case_id)).slice(-2)).toEqual(['case_suspended', 'tier_i_purged'])
    await refused(
      'GET',
      `/v1/cases/${lapsed.case_id}/access-grant`,
      'investigator',
      undefined,
      409,
      'wrong_state',
    )
    await refused(
      'POST',
      `/v1/cases/${lapsed.case_id}/written-request`,
      'requester',
      lapsedWritten,
      409,
      'wrong_state',
    )

    const still = await ok('GET', `/v1/cases/${kept.case_id}`, 'approver', undefined, 200, quick)
    expect(still.state).toBe('active')
    expect(await grantsOfCase(subject, kept.case_id, quick)).toHaveLength(1)
    await ok('POST', `/v1/cases/${kept.case_id}/closing`, 'approver', { outcome: 'done' })
  })

  it('refuses a written request that differs from the verbal one: 400, nothing changes', async () => {
    const verbal = emergency()
    const recorded = await ok('POST', '/v1/cases/emergency', 'approver', verbal, 201)
    const path = `/v1/cases/${recorded.case_id}/written-request`
    const stored = await storedCase(h.store, recorded.case_id)
    const registered = await kinds(recorded.case_id)
    const another = { agent_id: otherAgent.agent_id, addresses: [] }
    const differing: [string, Partial<CaseRequest>][] = [
      ['another staff member', { staff_member: { ...verbal.staff_member, name: 'Someone Else' } }],
      [
        "another staff member's email",
        { staff_member: { ...verbal.staff_member, email: 'someone.else@example.org' } },
      ],
      ['the staff member without email', { staff_member: { name: verbal.staff_member.name } }],
      ['another subject', { subjects: [another] }],
      ['one more subject', { subjects: [...verbal.subjects, another] }],
      [
        'an address added to the subject',
        { subjects: [{ agent_id: subject.agent_id, addresses: ['192.0.2.9'] }] },
      ],
      ['fewer categories', { categories: ['flows'] }],
      ['more categories', { categories: ['flows', 'dns', 'web'] }],
      ['another receiving official', { receiving_official: id('receiving2') }],
    ]
    for (const [what, overrides] of differing) {
      const body = writtenRequest(verbal, overrides)
      const answer = await call(app, 'POST', path, token('requester'), body)
      const error = expectError(answer, [400], `a written request with ${what}`)
      expect(error.error, what).toBe('written_request_differs')
      validate('ErrorBody', answer.body, what)
      expect(await storedCase(h.store, recorded.case_id), what).toBe(stored)
    }
    expect(await kinds(recorded.case_id)).toEqual(registered)
    const after = await ok('GET', `/v1/cases/${recorded.case_id}`, 'requester')
    expect(after.written_request_at).toBeUndefined()
    expect(after.description).toBe(verbal.data_required)
    expect(after.justification).toBe(verbal.justification)

    // The request that confirms it is taken, with its own text.
    const confirming = writtenRequest(verbal)
    expect(confirming.data_required).not.toBe(verbal.data_required)
    const filed = await ok('POST', path, 'requester', confirming)
    expect(filed.written_request_at).toBeDefined()
    expect(filed.description).toBe(confirming.data_required)
    expect(await kinds(recorded.case_id)).toEqual([...registered, 'written_request_filed'])
    await ok('POST', `/v1/cases/${recorded.case_id}/closing`, 'approver', { outcome: 'done' })
  })

  it('takes the written request once: a second one is 409 and changes nothing', async () => {
    const verbal = emergency()
    const recorded = await ok('POST', '/v1/cases/emergency', 'approver', verbal, 201)
    const path = `/v1/cases/${recorded.case_id}/written-request`
    const first = writtenRequest(verbal)
    const filed = await ok('POST', path, 'requester', first)
    expect(filed.written_request_at).toBeDefined()
    const stored = await storedCase(h.store, recorded.case_id)
    const registered = await kinds(recorded.case_id)
    expect(registered).toEqual(['emergency_recorded', 'written_request_filed'])

    // The same request again, or another that confirms the verbal one as well.
    for (const again of [first, writtenRequest(verbal)]) {
      const answer = await refused('POST', path, 'requester', again, 409, 'wrong_state')
      expect(answer.text).toMatch(/already filed/)
    }
    expect(await storedCase(h.store, recorded.case_id)).toBe(stored)
    expect(await kinds(recorded.case_id)).toEqual(registered)
    const after = await ok('GET', `/v1/cases/${recorded.case_id}`, 'requester')
    expect(after.written_request_at).toBe(filed.written_request_at)
    expect(after.description).toBe(first.data_required)
    expect(after.justification).toBe(first.justification)

    // Still so once the case has moved on.
    await ok('POST', `/v1/cases/${recorded.case_id}/emergency-confirmation`, 'chief', {
      statement: 'confirmed',
    })
    await ok('POST', `/v1/cases/${recorded.case_id}/approval`, 'approver2', approval())
    await refused('POST', path, 'requester', writtenRequest(verbal), 409, 'wrong_state')
    await ok('POST', `/v1/cases/${recorded.case_id}/closing`, 'approver', { outcome: 'done' })
  })
})

// --- 8.5f: the window ends ----------------------------------------------------------------------

describe('expiry (8.5f)', () => {
  it('a case whose window ends expires: GET shows expired, its grants are gone', async () => {
    const filed = await fileCase()
    const path = `/v1/cases/${filed.case_id}`
    await ok('POST', `${path}/consultation`, 'chief', { summary: 'no conflict' })
    // Long enough for consultation, approval and notice on a loaded machine (at 2.5 s the
    // grant had sometimes expired before the notice was recorded).
    const end = Date.now() + 8_000
    const approved = await ok('POST', `${path}/approval`, 'approver', {
      investigator: id('investigator'),
      until: iso(end),
    })
    expect(approved.window.end).toBe(iso(end))
    await ok('POST', `${path}/notice`, 'approver', inPerson())
    const [grant] = await grantsOfCase(subject, filed.case_id)
    expect(grant?.claims.window.end).toBe(end)
    expect(grant?.exp).toBe(Math.ceil(end / 1000))

    await sleep(end - Date.now() + 300)
    expect(await grantsOfCase(subject, filed.case_id)).toEqual([])
    const expired = await ok('GET', path, 'requester')
    expect(expired.state).toBe('expired')
    expect((await grantRows(h.store, filed.case_id)).every((r) => r.revoked === 1)).toBe(true)
    expect((await kinds(filed.case_id)).slice(-2)).toEqual(['case_expired', 'tier_i_purged'])
    expect(expired.purged_at).toBeDefined()
    await refused('GET', `${path}/access-grant`, 'investigator', undefined, 409, 'wrong_state')
    await refused(
      'POST',
      `${path}/extension`,
      'approver',
      { until: iso(Date.now() + DAY), justification: 'too late' },
      409,
      'wrong_state',
    )
  })
})

// --- 8.2 ---------------------------------------------------------------------------------------

describe('a technical case (8.2)', () => {
  const opening = (overrides: Record<string, unknown> = {}) => ({
    description: 'a host floods the delegation LAN with ARP',
    subjects: [{ agent_id: subject.agent_id, addresses: [] }],
    investigator: id('investigator'),
    hours: 6,
    notify: [{ name: 'Delegation ICT contact', email: 'ict@delegation.example.org' }],
    ...overrides,
  })

  it('is opened by the ITSD lead, flows only, registered and notified', async () => {
    const posts = h.webhook.posts.length
    const opened = await ok('POST', '/v1/cases/technical', 'lead', opening(), 201)
    expect(opened).toMatchObject({
      kind: 'technical',
      state: 'active',
      categories: ['flows'],
      requester: id('lead'),
      investigator: id('investigator'),
      approvals: [],
    })
    expect(Date.parse(opened.window.end) - Date.parse(opened.window.start)).toBe(6 * HOUR)
    const sent = h.webhook.posts.slice(posts)
    expect(sent.map((p) => [p.case_id, p.to])).toEqual([
      [opened.case_id, 'ict@delegation.example.org'],
    ])
    expect(sent[0]?.subject).toMatch(/8\.2/)
    expect(await kinds(opened.case_id)).toEqual([
      'technical_case_opened',
      'notice_given',
      'grants_issued',
    ])
    const [grant] = await grantsOfCase(subject, opened.case_id)
    expect(grant?.claims.categories).toEqual(['flows'])

    // ITSD sees it (the other lead too); a requester does not.
    for (const who of ['lead2', 'approver', 'auditor', 'admin', 'investigator'])
      expect((await ok('GET', `/v1/cases/${opened.case_id}`, who)).case_id).toBe(opened.case_id)
    for (const who of ['requester', 'operator', 'oios', 'investigator2'])
      await refused('GET', `/v1/cases/${opened.case_id}`, who, undefined, 404, 'not_found')

    const closed = await ok('POST', `/v1/cases/${opened.case_id}/closing`, 'lead2', {
      outcome: 'the flood stopped',
    })
    expect(closed.state).toBe('closed')
    expect(await agentGrants(subject)).toEqual([])
  })

  it('refuses more than 72 hours, other categories, other roles; the policy caps the window', async () => {
    const tooLong = await refused(
      'POST',
      '/v1/cases/technical',
      'lead',
      opening({ hours: 73 }),
      400,
    )
    expect(JSON.stringify(tooLong.body)).toMatch(/hours/)
    await refused(
      'POST',
      '/v1/cases/technical',
      'lead',
      opening({ categories: ['flows', 'dns'] }),
      400,
      'invalid_request',
    )
    for (const who of ['approver', 'requester', 'investigator', 'admin'])
      await refused('POST', '/v1/cases/technical', who, opening(), 403, 'forbidden')
    const leadInvestigator = await h.user(['itsd_lead', 'itsd_investigator'])
    const self = await call(app, 'POST', '/v1/cases/technical', leadInvestigator.token, {
      ...opening(),
      investigator: leadInvestigator.user_id,
    })
    expect(expectError(self, [403], 'lead investigating their own case').error).toBe('forbidden')

    const capped = h.collectorWith({ technical_max_hours: 12 }).app
    const doc = await ok('POST', '/v1/cases/technical', 'lead', opening({ hours: 48 }), 201, capped)
    expect(Date.parse(doc.window.end) - Date.parse(doc.window.start)).toBe(12 * HOUR)
    await ok('POST', `/v1/cases/${doc.case_id}/closing`, 'lead', { outcome: 'done' })
  })
})

// --- Section 9 ---------------------------------------------------------------------------------

describe('an OIOS case (section 9)', () => {
  const ITSD = ['admin', 'approver', 'auditor', 'requester', 'investigator', 'operator', 'lead']

  it('opens active at once with no notice, and exists for OIOS alone', async () => {
    const posts = h.webhook.posts.length
    const itsdSize = (await entries('itsd', 'auditor')).length
    const now = Date.now()
    const body = {
      description: 'OIOS inquiry into procurement fraud',
      categories: ['flows', 'web'],
      subjects: [{ agent_id: subject.agent_id, addresses: ['192.0.2.10'] }],
      window: { start: iso(now - 60_000), end: iso(now + 7 * DAY) },
      receiving_official: id('receiving'),
    }
    for (const who of ['approver', 'chief', 'admin', 'requester'])
      await refused('POST', '/v1/cases/oios', who, body, 403, 'forbidden')
    const opened = await ok('POST', '/v1/cases/oios', 'oios', body, 201)
    expect(opened).toMatchObject({
      kind: 'oios',
      state: 'active',
      requester: id('oios'),
      investigator: id('oios'),
      approvals: [],
    })
    expect(opened.notice).toBeUndefined()
    expect(opened.consultation).toBeUndefined()
    // No notice (9.2b): the webhook saw nothing at all.
    expect(h.webhook.posts.length).toBe(posts)
    expect(await h.collector.outbox.messages(opened.case_id)).toEqual([])
    const [grant] = await grantsOfCase(subject, opened.case_id)
    expect(grant?.claims).toMatchObject({ addresses: ['192.0.2.10'], categories: ['flows', 'web'] })
    const access = await call(app, 'GET', `/v1/cases/${opened.case_id}/access-grant`, token('oios'))
    expect(access.status, access.text).toBe(200)

    for (const who of ['oios', 'chief'])
      expect((await ok('GET', `/v1/cases/${opened.case_id}`, who)).state).toBe('active')
    const listed = await call(app, 'GET', '/v1/cases', token('chief'))
    expect((listed.body as { cases: Case[] }).cases.map((c) => c.case_id)).toContain(opened.case_id)
    for (const who of ITSD) {
      const answer = await refused('GET', `/v1/cases/${opened.case_id}`, who, undefined, 404)
      expect(answer.text).not.toContain('procurement')
      const list = await call(app, 'GET', '/v1/cases', token(who))
      expect(list.status).toBe(200)
      const ids = (list.body as { cases: Case[] }).cases.map((c) => c.case_id)
      expect(ids, `${who} lists the OIOS case`).not.toContain(opened.case_id)
      expect(list.text).not.toContain(opened.case_id)
      const steps: Record<string, unknown> = {
        closing: { outcome: 'x' },
        consultation: { summary: 'x' },
        approval: { investigator: id('investigator2') },
        denial: { reason: 'x' },
        notice: inPerson(),
        extension: { until: iso(now + 8 * DAY), justification: 'x' },
      }
      for (const [step, stepBody] of Object.entries(steps)) {
        const path = `/v1/cases/${opened.case_id}/${step}`
        const answer = await call(app, 'POST', path, token(who), stepBody)
        expectError(answer, [403, 404], `${step} of an OIOS case as ${who}`)
        expect(answer.text).not.toContain('procurement')
      }
      await refused('GET', `/v1/cases/${opened.case_id}/access-grant`, who, undefined, 404)
    }

    // ITSD's register holds nothing of it; OIOS's record holds it all.
    const itsd = await entries('itsd', 'auditor')
    expect(itsd.length).toBe(itsdSize)
    expect(JSON.stringify(itsd)).not.toContain(opened.case_id)
    expect(await kinds(opened.case_id, 'oios', 'chief')).toEqual([
      'oios_case_opened',
      'grants_issued',
    ])
    for (const who of ['admin', 'approver', 'auditor', 'requester', 'investigator', 'operator']) {
      for (const path of ['entries', 'checkpoints', 'verify']) {
        const answer = await refused('GET', `/v1/register/oios/${path}`, who, undefined, 404)
        expect(answer.text).not.toContain(opened.case_id)
      }
    }
    // ... and the ITSD register is not OIOS's to read.
    await refused('GET', '/v1/register/itsd/entries', 'oios', undefined, 403, 'forbidden')

    const closed = await ok('POST', `/v1/cases/${opened.case_id}/closing`, 'oios', {
      outcome: 'referred',
    })
    expect(closed.state).toBe('closed')
    expect(h.webhook.posts.length).toBe(posts)
    expect(await grantsOfCase(subject, opened.case_id)).toEqual([])
    expect(await kinds(opened.case_id, 'oios', 'oios')).toContain('case_closed')
    expect((await entries('itsd', 'auditor')).length).toBe(itsdSize)
  })
})

// --- 9.2e --------------------------------------------------------------------------------------

describe('designees for OIOS (9.2e)', () => {
  const designate = (who: string, user: string, position: string, category = 'network') =>
    call(app, 'POST', '/v1/oios/designations', token(who), {
      category,
      user_id: id(user),
      position,
    })

  it('one designee and two alternates per category, and no more', async () => {
    const first = await designate('admin', 'd1', 'designee')
    expect(first.status, first.text).toBe(201)
    validate('Designations', first.body, 'designation')
    expect(first.body).toEqual({
      category: 'network',
      designees: [{ user_id: id('d1'), position: 'designee' }],
    })
    for (const d of ['d2', 'd3'])
      expect((await designate('admin', d, 'alternate')).status).toBe(201)

    const third = await designate('admin', 'd4', 'alternate')
    expect(expectError(third, [409], 'a third alternate').error).toBe('designation_limit')
    const second = await designate('admin', 'd4', 'designee')
    expect(expectError(second, [409], 'a second designee').error).toBe('designation_limit')
    const again = await designate('admin', 'd2', 'designee')
    expect(expectError(again, [409], 'the same person twice').error).toBe('already_designated')

    // Different officers for different categories.
    expect((await designate('admin', 'd4', 'designee', 'mail')).status).toBe(201)
    expect((await designate('admin', 'd1', 'alternate', 'mail')).status).toBe(201)

    for (const who of ['approver', 'chief', 'oios', 'auditor', 'd1']) {
      const answer = await designate(who, 'd4', 'alternate', 'telephony')
      expect(expectError(answer, [403], `designation by ${who}`).error).toBe('forbidden')
    }
    const notDesignee = await designate('admin', 'investigator', 'alternate', 'telephony')
    expect(expectError(notDesignee, [400], 'designating a non-designee').error).toBe('wrong_role')
    const registered = (await entries('itsd', 'auditor')).filter(
      (e) => e.kind === 'oios_designation',
    )
    expect(
      registered.map((e) => [e.details.category, e.details.user_id, e.details.position]),
    ).toEqual([
      ['network', id('d1'), 'designee'],
      ['network', id('d2'), 'alternate'],
      ['network', id('d3'), 'alternate'],
      ['mail', id('d4'), 'designee'],
      ['mail', id('d1'), 'alternate'],
    ])
  })
})
