/**
 * The console session as the API sees it, without a browser (these run where Chromium is
 * missing too): the cookie stands for the token, with the token's user and roles and nothing
 * more; a revoked token ends its sessions at once; a provisional token cannot sign in; an ITSD
 * user's session sees no more of OIOS than their bearer token does.
 */
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCollector } from '../../collector/app.ts'
import { createUser, revokeUser } from '../../collector/auth/users.ts'
import { type CasesHarness, openCasesHarness, type TestUser } from '../collector/cases-harness.ts'

const ORIGIN = 'http://localhost'

describe('console session and the API', () => {
  let h: CasesHarness
  let agentId: string
  let official: TestUser
  beforeAll(async () => {
    h = await openCasesHarness()
    agentId = (await h.agent()).agent_id
    official = await h.user(['receiving_official'], 'official')
  })
  afterAll(async () => {
    await h?.close()
  })

  /** Signs in as a browser would (same origin); the session cookie and the CSRF token. */
  const signIn = async (token: string) => {
    const res = await h.app.request('/console/session', {
      method: 'POST',
      headers: { origin: ORIGIN, 'sec-fetch-site': 'same-origin', accept: 'application/json' },
      body: new URLSearchParams({ token }),
    })
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
    const body = (await res.json()) as { csrf_token?: string; roles?: string[]; error?: string }
    return { status: res.status, cookie, csrf: body.csrf_token ?? '', body }
  }
  const withSession = (
    s: { cookie: string; csrf: string },
    path: string,
    init: { method?: string; body?: unknown } = {},
  ) =>
    h.app.request(path, {
      method: init.method ?? 'GET',
      headers: {
        cookie: s.cookie,
        origin: ORIGIN,
        'sec-fetch-site': 'same-origin',
        'x-csrf-token': s.csrf,
        'content-type': 'application/json',
      },
      body: init.body === undefined ? null : JSON.stringify(init.body),
    })
  const request = () => ({
    data_required: 'Flows',
    categories: ['flows'],
    staff_member: { name: 'Jane Doe' },
    supervisor: { name: 'John Roe' },
    receiving_official: official.user_id,
    requesting_office: 'OHRM',
    justification: 'Referral',
    subjects: [{ agent_id: agentId }],
    window: {
      start: new Date().toISOString(),
      end: new Date(Date.now() + 3600_000).toISOString(),
    },
  })

  it('answers sign-in with the user and roles of the token, and a cookie that is HttpOnly, SameSite=Strict, Path=/', async () => {
    const requester = await h.user(['requester'], 'requester')
    const res = await h.app.request('/console/session', {
      method: 'POST',
      headers: { origin: ORIGIN, accept: 'application/json' },
      body: new URLSearchParams({ token: requester.token }),
    })
    expect(res.status).toBe(201)
    const cookie = res.headers.get('set-cookie') ?? ''
    expect(cookie).toMatch(/^tally_console=[A-Za-z0-9_-]{43};/)
    expect(cookie).toContain('HttpOnly')
    expect(cookie).toContain('SameSite=Strict')
    expect(cookie).toContain('Path=/')
    expect(cookie).not.toContain('Max-Age')
    expect(cookie).not.toContain(requester.token)
    const body = (await res.json()) as { user_id: string; roles: string[]; csrf_token: string }
    expect(body.user_id).toBe(requester.user_id)
    expect(body.roles).toEqual(['requester'])
    expect(body.csrf_token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(JSON.stringify(body)).not.toContain(requester.token)
    // Over TLS (here: as a proxy says it), Secure and the __Host- prefix.
    const tls = await h.app.request('/console/session', {
      method: 'POST',
      headers: { 'x-forwarded-proto': 'https', accept: 'application/json' },
      body: new URLSearchParams({ token: requester.token }),
    })
    expect(tls.headers.get('set-cookie')).toMatch(/^__Host-tally_console=.*; Secure/)
  })

  it('a session has the roles of its token and no more: a requester’s cookie cannot approve', async () => {
    const requester = await h.user(['requester'], 'requester 2')
    const chief = await h.user(['oios_chief'], 'chief')
    const investigator = await h.user(['itsd_investigator'], 'investigator')
    const s = await signIn(requester.token)
    const filed = await withSession(s, '/v1/cases', { method: 'POST', body: request() })
    expect(filed.status).toBe(201)
    const { case_id } = (await filed.json()) as { case_id: string }
    const consulted = await h.app.request(`/v1/cases/${case_id}/consultation`, {
      method: 'POST',
      headers: { authorization: `Bearer ${chief.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ summary: 'Consulted' }),
    })
    expect(consulted.status).toBe(200)
    const approve = await withSession(s, `/v1/cases/${case_id}/approval`, {
      method: 'POST',
      body: { investigator: investigator.user_id },
    })
    expect(approve.status).toBe(403)
    expect((await h.collector.cases.current(case_id))?.state).toBe('requested')
  })

  it('ends every request of a session as soon as its token is revoked', async () => {
    const requester = await h.user(['requester'], 'to be revoked')
    const s = await signIn(requester.token)
    expect((await withSession(s, '/v1/cases')).status).toBe(200)
    expect((await withSession(s, '/console/api/session')).status).toBe(200)
    await revokeUser(h.store, requester.user_id)
    expect((await withSession(s, '/v1/cases')).status).toBe(401)
    expect((await withSession(s, '/console/api/session')).status).toBe(401)
  })

  it('refuses to sign in with a token that is unknown, or provisional (it passed through other hands)', async () => {
    const unknown = await signIn('tly_u_nobody.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')
    expect(unknown.status).toBe(401)
    expect(unknown.cookie).toBe('')
    const { token } = await createUser(h.store, 'provisional', ['requester'], 'test', Date.now(), {
      provisional: true,
    })
    const provisional = await signIn(token)
    expect(provisional.status).toBe(403)
    expect(provisional.body.error).toBe('token_provisional')
    expect(provisional.cookie).toBe('')
  })

  it('an ITSD user’s session sees no OIOS case, as their bearer token does not', async () => {
    const oios = await h.user(['oios_investigator'], 'oios investigator')
    const opened = await h.app.request('/v1/cases/oios', {
      method: 'POST',
      headers: { authorization: `Bearer ${oios.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        description: 'OIOS matter',
        categories: ['flows'],
        subjects: [{ agent_id: agentId }],
        window: request().window,
        receiving_official: official.user_id,
      }),
    })
    expect(opened.status).toBe(201)
    const { case_id } = (await opened.json()) as { case_id: string }
    const approver = await h.user(['approver'], 'approver')
    const s = await signIn(approver.token)
    const bearer = await h.app.request(`/v1/cases/${case_id}`, {
      headers: { authorization: `Bearer ${approver.token}` },
    })
    const viaSession = await withSession(s, `/v1/cases/${case_id}`)
    expect(viaSession.status).toBe(bearer.status)
    expect(viaSession.status).toBe(404)
    const listed = (await (await withSession(s, '/v1/cases')).json()) as {
      cases: { case_id: string }[]
    }
    expect(listed.cases.map((c) => c.case_id)).not.toContain(case_id)
    const preflight = await withSession(s, `/console/api/cases/${case_id}/preflight?step=approve`)
    expect(preflight.status).toBe(404)
  })
  it('writes no token, session id or CSRF token to the log, even at its most verbose', async () => {
    let log = ''
    const sink = new Writable({
      write(chunk, _encoding, done) {
        log += String(chunk)
        done()
      },
    })
    const logger = pino({ level: 'trace' }, sink)
    const app = createCollector({
      store: h.store,
      config: h.config,
      logger,
      signingKey: h.signingKey,
    }).app
    const requester = await h.user(['requester'], 'logged')
    const post = (token: string) =>
      app.request('/console/session', {
        method: 'POST',
        headers: { origin: ORIGIN, accept: 'application/json' },
        body: new URLSearchParams({ token }),
      })
    expect((await post(`${requester.token}x`)).status).toBe(401)
    const res = await post(requester.token)
    expect(res.status).toBe(201)
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
    const { csrf_token } = (await res.json()) as { csrf_token: string }
    const headers = { cookie, origin: ORIGIN, 'x-csrf-token': csrf_token }
    expect((await app.request('/v1/cases', { headers })).status).toBe(200)
    const refused = await app.request('/v1/cases', { method: 'POST', headers: { cookie } })
    expect(refused.status).toBe(403)
    expect((await app.request('/console/session/logout', { method: 'POST', headers })).status).toBe(
      204,
    )
    expect(log).toContain('request') // the log was written: the check below is not vacuous
    for (const secret of [requester.token, cookie.split('=')[1] ?? '', csrf_token]) {
      expect(secret.length).toBeGreaterThan(20)
      expect(log).not.toContain(secret)
    }
    expect(log).not.toContain(requester.token.slice(-43))
  })
})
