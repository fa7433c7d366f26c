/**
 * Insiders through the web console. Each attack is replayed as the insider would, against a
 * collector on a loopback port (real engine), with the session cookie a browser would hold:
 * - an ITSD admin's or an operator's session reaches no tier I route and no page of another
 *   role, and no OIOS case;
 * - Grafana's read-only user (a ClickHouse credential) has no console;
 * - a stolen session cookie without the session's CSRF token, or from another origin, changes
 *   nothing;
 * - a token in a URL query is never taken for a credential;
 * - the sessions of a revoked user end at once;
 * - in Chromium, a case's text holding <script> is shown as text, and the Content-Security-Policy
 *   blocks an inline script injected into the page.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { CONTENT_SECURITY_POLICY } from '../../collector/console/assets.ts'
import { caseRequest, fingerprint, iso, type TestUser } from '../collector/cases-harness.ts'
import { eventually, shot, signedIn } from '../console/browser.ts'
import {
  bearer as bearerAt,
  describeInChromium,
  people,
  useBrowser,
  useConsoleRig,
} from '../console/harness.ts'

const DRILL = ['flows', 'dns', 'web', 'packets']

const rig = useConsoleRig({ browser: false })
let admin: TestUser
let operator: TestUser
let requester: TestUser
let approver: TestUser
let official: TestUser
let oiosInvestigator: TestUser
let itsdCase: string
let oiosCase: string

interface Session {
  cookie: string
  csrf: string
}

/** POST /console/session as the console's sign-in form sends it, from the console's origin. */
const postSignIn = (form: Record<string, string>, query = '') =>
  fetch(`${rig.url}/console/session${query}`, {
    method: 'POST',
    headers: { accept: 'application/json', origin: rig.url, 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams(form),
  })

/** Signs in as the console's form does, from the console's own origin. */
async function signIn(token: string): Promise<Session> {
  const res = await postSignIn({ token })
  expect(res.status, await res.clone().text()).toBe(201)
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
  const { csrf_token } = (await res.json()) as { csrf_token: string }
  return { cookie, csrf: csrf_token }
}

/** A request carrying only the session cookie (and what `extra` adds), as a thief would send. */
async function withCookie(
  session: Pick<Session, 'cookie'>,
  method: string,
  path: string,
  extra: Record<string, string> = {},
  body?: unknown,
) {
  const res = await fetch(`${rig.url}${path}`, {
    method,
    headers: {
      cookie: session.cookie,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...extra,
    },
    body: body === undefined ? null : JSON.stringify(body),
  })
  const text = await res.text()
  let error: string | undefined
  try {
    error = (JSON.parse(text) as { error?: string }).error
  } catch {
    error = undefined
  }
  return { status: res.status, error, text }
}

const bearer = (token: string, method: string, path: string, body?: unknown) =>
  bearerAt(rig.url, token, method, path, body)

beforeAll(async () => {
  admin = { ...rig.h.admins.itsd[0], roles: ['admin'] }
  operator = await rig.h.user(['operator'], 'Otto Operator')
  ;({ requester, approver, official } = await people(rig.h, 'requester', 'approver', 'official'))
  oiosInvestigator = await rig.h.user(['oios_investigator'], 'Ines OIOS')
  const agent = await rig.h.agent()
  const filed = await bearer(
    requester.token,
    'POST',
    '/v1/cases',
    caseRequest(official.user_id, [agent.agent_id], {
      justification:
        'Referral <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">',
    }),
  )
  expect(filed.status, JSON.stringify(filed.body)).toBe(201)
  itsdCase = String((filed.body as { case_id: string }).case_id)
  const now = Date.now()
  const oios = await bearer(oiosInvestigator.token, 'POST', '/v1/cases/oios', {
    description: 'OIOS inquiry',
    categories: ['flows'],
    subjects: [{ agent_id: agent.agent_id, addresses: ['192.0.2.44'] }],
    window: { start: iso(now - 60_000), end: iso(now + 3_600_000) },
    receiving_official: official.user_id,
  })
  expect(oios.status, JSON.stringify(oios.body)).toBe(201)
  oiosCase = String((oios.body as { case_id: string }).case_id)
})

describe('insiders through the console', () => {
  it("an admin's or an operator's session reaches no tier I route and no OIOS case", async () => {
    for (const who of [admin, operator]) {
      const session = await signIn(who.token)
      for (const category of DRILL) {
        const drill = await withCookie(session, 'GET', `/v1/cases/${itsdCase}/${category}`)
        expect([403, 404], `${who.roles} ${category}: ${drill.text}`).toContain(drill.status)
      }
      const exported = await withCookie(
        session,
        'POST',
        `/v1/cases/${itsdCase}/exports`,
        { 'x-csrf-token': session.csrf, origin: rig.url, 'sec-fetch-site': 'same-origin' },
        {},
      )
      expect([403, 404], exported.text).toContain(exported.status)
      // The other side's case: the same 404 as a case that does not exist.
      const other = await withCookie(session, 'GET', `/v1/cases/${oiosCase}`)
      expect(other.status, other.text).toBe(404)
      const listed = await withCookie(session, 'GET', '/v1/cases')
      expect(listed.text).not.toContain(oiosCase)
      const oiosRegister = await withCookie(session, 'GET', '/v1/register/oios/entries')
      expect(oiosRegister.status).toBe(404)
    }
    // The bearer token of the OIOS investigator does see it: the refusal is the side's.
    expect((await bearer(oiosInvestigator.token, 'GET', `/v1/cases/${oiosCase}`)).status).toBe(200)
  })

  it("Grafana's read-only user has no console: its ClickHouse credential opens no session", async () => {
    const password = 'grafana-ro-password'
    for (const token of [password, `grafana_ro:${password}`, 'grafana_ro']) {
      const res = await postSignIn({ token })
      expect(res.status).toBe(401)
      expect(res.headers.get('set-cookie')).toBeNull()
    }
    const basic = `Basic ${Buffer.from(`grafana_ro:${password}`).toString('base64')}`
    for (const path of ['/console/api/session', '/v1/cases', '/v1/register/itsd/entries']) {
      const res = await fetch(`${rig.url}${path}`, { headers: { authorization: basic } })
      expect(res.status, path).toBe(401)
    }
  })

  it('a stolen session cookie without the CSRF token, or from another origin, changes nothing', async () => {
    const session = await signIn(approver.token)
    const before = await fingerprint(rig.h.store)
    const approval = `/v1/cases/${itsdCase}/approval`
    const body = { investigator: requester.user_id, comment: 'stolen' }
    const attempts: Record<string, Record<string, string>> = {
      'no token, no Origin (a script outside the browser)': {},
      'no token, the console Origin': { origin: rig.url, 'sec-fetch-site': 'same-origin' },
      'a wrong token': { 'x-csrf-token': 'guessed', origin: rig.url },
      'the right token from another site': {
        'x-csrf-token': session.csrf,
        origin: 'https://evil.example',
        'sec-fetch-site': 'cross-site',
      },
    }
    for (const [what, headers] of Object.entries(attempts)) {
      const res = await withCookie(session, 'POST', approval, headers, body)
      expect(res.status, what).toBe(403)
      expect(res.error, what).toBe('csrf_refused')
      const out = await withCookie(session, 'POST', '/console/session/logout', headers)
      expect(out.status, `logout, ${what}`).toBe(403)
    }
    expect(await fingerprint(rig.h.store)).toBe(before)
    // The session still works, and with its token the request passes the CSRF check (the
    // workflow then decides): the refusals above were the CSRF check's.
    const same = {
      'x-csrf-token': session.csrf,
      origin: rig.url,
      'sec-fetch-site': 'same-origin',
    }
    const passed = await withCookie(session, 'POST', approval, same, body)
    expect(passed.error, passed.text).not.toBe('csrf_refused')
  })

  it('a token in a URL query is never accepted', async () => {
    const t = encodeURIComponent(approver.token)
    for (const path of [
      `/v1/cases?token=${t}`,
      `/v1/cases?access_token=${t}`,
      `/v1/register/itsd/entries?token=${t}`,
      `/console/api/session?token=${t}`,
      `/console/api/session?access_token=${t}`,
    ]) {
      const res = await fetch(`${rig.url}${path}`)
      expect([400, 401], path).toContain(res.status)
    }
    const signIn = await postSignIn({}, `?token=${t}`)
    expect(signIn.status).toBe(400)
    expect(signIn.headers.get('set-cookie')).toBeNull()
  })

  it('the sessions of a revoked user end at once', async () => {
    const leaving = await rig.h.user(['approver'], 'Leaving Approver')
    const first = await signIn(leaving.token)
    const second = await signIn(leaving.token)
    for (const s of [first, second])
      expect((await withCookie(s, 'GET', '/console/api/session')).status).toBe(200)
    const revoked = await bearer(
      admin.token,
      'POST',
      `/v1/admin/users/${leaving.user_id}/revoke`,
      {},
    )
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200)
    for (const s of [first, second]) {
      const session = await withCookie(s, 'GET', '/console/api/session')
      expect(session.status).toBe(401)
      expect(session.error).toBe('session_expired')
      expect((await withCookie(s, 'GET', '/v1/cases')).status).toBe(401)
    }
  })
})

describeInChromium("the console's Content-Security-Policy in Chromium", () => {
  const chromium = useBrowser()

  it('a case reason holding <script> is shown as text, and an injected inline script does not run', async () => {
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'")
    const { context, page } = await signedIn(chromium.browser, rig.url, approver)
    const violations: string[] = []
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text())
    })
    await page.goto(`${rig.url}/console/#/case/${itsdCase}`)
    await eventually(() => page.locator('main').textContent()).toContain(
      'Referral <script>window.__pwned = 1</script>',
    )
    expect(await page.evaluate('window.__pwned ?? null')).toBeNull()
    expect(await page.locator('main script, main img[src="x"]').count()).toBe(0)
    // An inline script put into the page (as an injection that escaped the text would be).
    const ran = await page.evaluate(`(() => {
        const s = document.createElement('script')
        s.textContent = 'window.__injected = true'
        document.body.append(s)
        const d = document.createElement('div')
        d.innerHTML = '<img src="data:," onerror="window.__handler = true">'
        document.body.append(d)
        return new Promise((r) => setTimeout(() => r([window.__injected ?? null, window.__handler ?? null]), 200))
      })()`)
    expect(ran).toEqual([null, null])
    await eventually(() => violations.length).toBeGreaterThan(0)
    await shot(page, 'security-script-as-text')
    // An admin's browser is offered no page of another role: each says so before any call.
    const { context: adminContext, page: adminPage } = await signedIn(
      chromium.browser,
      rig.url,
      admin,
    )
    const paths = JSON.parse(
      String(
        await adminPage.evaluate(
          `import('/console/pages/index.js').then((m) => JSON.stringify(m.PAGES.filter((p) => p.roles !== 'any' && !p.roles.includes('admin')).map((p) => p.path)))`,
        ),
      ),
    ) as string[]
    expect(paths.length).toBeGreaterThan(0)
    for (const path of paths) {
      expect(await adminPage.locator(`#nav a[data-path="${path}"]`).count(), path).toBe(0)
      await adminPage.goto(`${rig.url}/console/#/${path}`)
      await eventually(() => adminPage.locator('#view').textContent()).toContain(
        'This page is for the',
      )
    }
    await adminPage.goto(`${rig.url}/console/#/case/${oiosCase}`)
    await eventually(() => adminPage.locator('#view').textContent()).not.toContain('OIOS inquiry')
    await adminContext.close()
    await context.close()
  })
})
