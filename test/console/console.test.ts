/**
 * The web console in real Chromium against a real collector (embedded engine): sign-in and
 * sign-out, the session cookie's attributes, no token in URLs or storage, CSRF refusal, session
 * expiry, a written request filed by a requester and approved by an approver in the browser, and
 * the refusals a role meets, shown before and after the collector refuses. Screenshots go to
 * test-artifacts/console/.
 */
import { beforeAll, expect, it } from 'vitest'
import { CONSOLE_SESSION_DEFAULTS, consoleSessionsOf } from '../../collector/console/session.ts'
import type { TestUser } from '../collector/cases-harness.ts'
import { eventually, shot } from './browser.ts'
import { describeInChromium, EVERYONE, people, useConsoleRig } from './harness.ts'

const hour = 3600_000

describeInChromium('console in Chromium', () => {
  const rig = useConsoleRig({ browser: true })
  let requester: TestUser
  let approver: TestUser
  let chief: TestUser
  let investigator: TestUser
  let official: TestUser
  let agentId: string

  beforeAll(async () => {
    ;({ requester, approver, chief, investigator, official } = await people(rig.h, ...EVERYONE))
    agentId = (await rig.h.agent()).agent_id
  })

  const requestBody = () => ({
    data_required: 'Flows of the workstation',
    categories: ['flows'],
    staff_member: { name: 'Jane Doe' },
    supervisor: { name: 'John Roe' },
    receiving_official: official.user_id,
    requesting_office: 'OHRM',
    justification: 'Referral 2026/17',
    subjects: [{ agent_id: agentId }],
    window: {
      start: new Date().toISOString(),
      end: new Date(Date.now() + 2 * hour).toISOString(),
    },
  })
  const bearerPost = (user: TestUser, path: string, body: unknown) =>
    fetch(`${rig.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })

  it('signs in to an HttpOnly SameSite=Strict session cookie, keeps the token out of URLs, storage and the page, and signs out', async () => {
    const { context, page } = await rig.as(requester)
    await eventually(() => page.locator('#who-name').textContent()).toContain('Rita Requester')
    await shot(page, '01-signed-in-requester')
    const cookies = await context.cookies()
    expect(cookies.map((c) => c.name)).toEqual(['tally_console'])
    const [cookie] = cookies
    expect(cookie?.httpOnly).toBe(true)
    expect(cookie?.sameSite).toBe('Strict')
    expect(cookie?.path).toBe('/')
    expect(cookie?.secure).toBe(false) // plain HTTP on loopback; Secure (and __Host-) over TLS
    expect(cookie?.expires).toBe(-1) // a browser-session cookie: the server's clock ends it
    expect(cookie?.value).not.toContain(requester.token)
    // The token is nowhere the page or its scripts could leak it.
    expect(page.url()).not.toContain(requester.token.slice(6, 30))
    // String expressions: they run in the page, where the DOM is (this file has no DOM types).
    const seen = {
      local: String(await page.evaluate('JSON.stringify({ ...localStorage })')),
      session: String(await page.evaluate('JSON.stringify({ ...sessionStorage })')),
      cookie: String(await page.evaluate('document.cookie')),
      html: await page.content(),
      field: await page.inputValue('#token'),
    }
    for (const [where, text] of Object.entries(seen)) {
      expect(text, where).not.toContain(requester.token.slice(6, 30))
    }
    expect(seen.cookie).toBe('') // HttpOnly: no script reads the session id
    // Navigation shows what the requester may do, and not the approver's queue.
    await eventually(() => page.getByRole('link', { name: 'Written request' }).count()).toBe(1)
    expect(await page.getByRole('link', { name: 'Approvals queue' }).count()).toBe(0)
    // The cookie authenticates API calls like the bearer token would (same user, same roles).
    const listed = await page.evaluate(async () => (await fetch('/v1/cases')).status)
    expect(listed).toBe(200)
    // Sign out: the session is gone on the server, not only in this browser.
    const sessionId = cookie?.value ?? ''
    await page.getByRole('button', { name: 'Sign out' }).click()
    await eventually(() => page.locator('#sign-in').isVisible()).toBe(true)
    await shot(page, '02-signed-out')
    const replay = await fetch(`${rig.url}/v1/cases`, {
      headers: { cookie: `tally_console=${sessionId}` },
    })
    expect(replay.status).toBe(401)
    expect(((await replay.json()) as { error: string }).error).toBe('session_expired')
    await context.close()
  })

  it('serves the console with a strict CSP, nosniff, no-referrer and cache headers', async () => {
    const res = await fetch(`${rig.url}/console/`)
    expect(res.status).toBe(200)
    const csp = res.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("default-src 'self'")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).not.toContain('unsafe-inline')
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('referrer-policy')).toBe('no-referrer')
    expect(res.headers.get('cache-control')).toBe('no-cache')
    const js = await fetch(`${rig.url}/console/app.js`)
    expect(js.headers.get('content-type')).toContain('text/javascript')
    const etag = js.headers.get('etag') ?? ''
    const again = await fetch(`${rig.url}/console/app.js`, {
      headers: { 'if-none-match': etag },
    })
    expect(again.status).toBe(304)
    const session = await fetch(`${rig.url}/console/api/session`)
    expect(session.status).toBe(401)
    expect(session.headers.get('cache-control')).toBe('no-store')
    // Only the console's own files: no path outside them, encoded or not.
    for (const path of [
      '/console/..%2Fsession.ts',
      '/console/%2e%2e/routes.ts',
      '/console/nope.js',
    ]) {
      expect((await fetch(`${rig.url}${path}`)).status, path).toBe(404)
    }
    // The bearer token works as before, cookie or not.
    const bearer = await fetch(`${rig.url}/v1/cases`, {
      headers: { authorization: `Bearer ${requester.token}` },
    })
    expect(bearer.status).toBe(200)
  })

  it('refuses a state-changing request made with the session cookie but without its CSRF token (403), or from another origin', async () => {
    const { context, page } = await rig.as(requester)
    const body = requestBody()
    const without = await page.evaluate(async (b) => {
      const res = await fetch('/v1/cases', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(b),
      })
      return { status: res.status, body: (await res.json()) as { error: string } }
    }, body)
    expect(without.status).toBe(403)
    expect(without.body.error).toBe('csrf_refused')
    const wrong = await page.evaluate(async (b) => {
      const res = await fetch('/v1/cases', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': 'guessed' },
        body: JSON.stringify(b),
      })
      return res.status
    }, body)
    expect(wrong).toBe(403)
    // The page's own token (from the session answer) passes: the refusal above is the CSRF check.
    const withToken = await page.evaluate(async (b) => {
      const me = (await (await fetch('/console/api/session')).json()) as { csrf_token: string }
      const res = await fetch('/v1/cases', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf_token },
        body: JSON.stringify(b),
      })
      return res.status
    }, body)
    expect(withToken).toBe(201)
    // Another site cannot use a stolen CSRF token through the victim's cookie either.
    const [cookie] = await context.cookies()
    const me = (await (
      await fetch(`${rig.url}/console/api/session`, {
        headers: { cookie: `tally_console=${cookie?.value}` },
      })
    ).json()) as { csrf_token: string }
    const crossSite = await fetch(`${rig.url}/v1/cases`, {
      method: 'POST',
      headers: {
        cookie: `tally_console=${cookie?.value}`,
        'x-csrf-token': me.csrf_token,
        origin: 'http://evil.example',
        'sec-fetch-site': 'cross-site',
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    })
    expect(crossSite.status).toBe(403)
    // Sign-in itself is refused from another site (no login CSRF).
    const foreignSignIn = await fetch(`${rig.url}/console/session`, {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
      body: new URLSearchParams({ token: requester.token }),
    })
    expect(foreignSignIn.status).toBe(403)
    await context.close()
  })

  it('ends an idle session: the next page load asks to sign in again', async () => {
    const sessions = consoleSessionsOf(rig.h.store)
    const { context, page } = await rig.as(requester)
    const realNow = sessions.now
    try {
      sessions.now = () => realNow() + CONSOLE_SESSION_DEFAULTS.idleMs + 1000
      await page.reload()
      await eventually(() => page.locator('#sign-in').isVisible()).toBe(true)
      expect(await page.locator('#nav').isVisible()).toBe(false)
      await shot(page, '03-session-expired')
    } finally {
      sessions.now = realNow
    }
    // Ended on the server: the old cookie does not come back to life with the clock.
    expect(await page.evaluate(async () => (await fetch('/v1/cases')).status)).toBe(401)
    // The 8-hour limit holds even for a session in constant use.
    const fresh = await rig.as(requester)
    try {
      const start = realNow()
      let t = start
      sessions.now = () => t
      const step = CONSOLE_SESSION_DEFAULTS.idleMs - 60_000
      // Used every 14 minutes: never idle, until it is older than the 8 hours.
      while (t + step - start <= CONSOLE_SESSION_DEFAULTS.maxMs) {
        t += step
        const status = await fresh.page.evaluate(async () => (await fetch('/v1/cases')).status)
        expect(status, `after ${Math.round((t - start) / 60_000)} min`).toBe(200)
      }
      t += step
      expect(await fresh.page.evaluate(async () => (await fetch('/v1/cases')).status)).toBe(401)
    } finally {
      sessions.now = realNow
    }
    await fresh.context.close()
    await context.close()
  })

  it('a requester files a written request in the browser, checked against the schema first, and an approver approves it', async () => {
    const { context, page } = await rig.as(requester)
    await page.getByRole('link', { name: 'Written request' }).click()
    await eventually(() => page.getByRole('heading', { level: 1 }).textContent()).toContain(
      'Written request',
    )
    // The bulletin's meaning is next to the field, bound to it for screen readers.
    const office = page.getByLabel('Requesting office')
    expect(await office.getAttribute('aria-describedby')).toContain('requesting_office-help')
    // Sent empty: the page names the problems from the API's own schema and sends nothing.
    const before = (
      await rig.h.collector.cases.list({
        user_id: requester.user_id,
        name: 'r',
        roles: ['requester'],
      })
    ).length
    await page.getByRole('button', { name: 'Check and send' }).click()
    await eventually(() => page.locator('#alert').textContent()).toContain('problem')
    expect(await page.getByLabel('Data required').getAttribute('aria-invalid')).toBe('true')
    expect(await page.locator('#receiving_official-error').textContent()).toContain('expected form')
    await shot(page, '04-request-invalid')
    expect(
      (
        await rig.h.collector.cases.list({
          user_id: requester.user_id,
          name: 'r',
          roles: ['requester'],
        })
      ).length,
    ).toBe(before)
    // Filled in properly.
    await page.getByLabel('Data required').fill('Network flows of the staff member’s workstation')
    await page.getByLabel('flows').check()
    await page.locator('#staff_member-name').fill('Jane Doe')
    await page.locator('#supervisor-name').fill('John Roe')
    await page.getByLabel('Receiving official (user id)').fill(official.user_id)
    await office.fill('Office of Human Resources Management')
    await page.getByLabel('Justification').fill('Referral under ST/AI/371, reference 2026/17')
    await page.getByLabel('Subject 1: agent id').fill(agentId)
    await page.getByRole('button', { name: 'Check and send' }).click()
    await eventually(() => page.locator('#result').textContent()).toMatch(
      /Case \S+ is on record, state requested/,
    )
    await shot(page, '05-request-filed')
    const caseId =
      ((await page.locator('#result').textContent()) ?? '').match(/Case (\S+) is on record/)?.[1] ??
      ''
    const filed = await rig.h.collector.cases.current(caseId)
    expect(filed?.requester).toBe(requester.user_id)
    expect(filed?.requesting_office).toBe('Office of Human Resources Management')
    await context.close()

    // OIOS's chief is consulted (through the API: another person, another tool).
    expect(
      (await bearerPost(chief, `/v1/cases/${caseId}/consultation`, { summary: 'Consulted' }))
        .status,
    ).toBe(200)

    const approving = await rig.as(approver)
    const ap = approving.page
    await ap.getByRole('link', { name: 'Approvals queue' }).click()
    await ap.getByRole('link', { name: caseId }).click()
    await eventually(() => ap.locator('#act-approve-preflight').textContent()).toContain('allow')
    // The history shows the filing and the consultation, and the register's entries.
    expect(await ap.locator('ol.history').textContent()).toContain('OIOS consulted')
    await eventually(() => ap.locator('#register-title').count()).toBe(1)
    await ap.getByLabel('Investigator (user id)').fill(investigator.user_id)
    await ap.getByRole('button', { name: 'Approve' }).click()
    await eventually(() => ap.locator('#status').textContent()).toContain('now approved')
    await shot(ap, '06-approved')
    const approved = await rig.h.collector.cases.current(caseId)
    expect(approved?.state).toBe('approved')
    expect(approved?.investigator).toBe(investigator.user_id)
    expect(approved?.approvals.map((a) => a.by)).toEqual([approver.user_id])
    await approving.context.close()
  })

  it('the emergency, technical and OIOS forms each send a body their schema and the collector accept', async () => {
    const lead = await rig.h.user(['itsd_lead'], 'Lena Lead')
    const oios = await rig.h.user(['oios_investigator'], 'Otto OIOS')
    const forms = [
      { who: approver, link: 'Emergency (verbal) request', kind: 'emergency' },
      { who: lead, link: 'Technical case', kind: 'technical' },
      { who: oios, link: 'OIOS case', kind: 'oios' },
    ] as const
    for (const form of forms) {
      const { context, page } = await rig.as(form.who)
      await page.getByRole('link', { name: form.link }).click()
      await page.getByRole('button', { name: 'Check and send' }).waitFor()
      const fill = async (label: string, value: string) => {
        const field = page.getByLabel(label, { exact: true })
        if ((await field.count()) > 0) await field.fill(value)
      }
      await fill('Verbal requester (user id)', requester.user_id)
      await fill('Data required', 'Flows of the workstation')
      await fill('Description', 'What the case is about')
      await fill('Receiving official (user id)', official.user_id)
      await fill('Requesting office', 'OHRM')
      await fill('Justification', 'Referral 2026/18')
      await fill('Investigator (user id)', investigator.user_id)
      await fill('Subject 1: agent id', agentId)
      await fill('Subject 1: addresses', '192.0.2.10, 2001:db8::10')
      for (const who of ['staff_member', 'supervisor', 'notify']) {
        const name = page.locator(`#${who}-name`)
        if ((await name.count()) > 0) await name.fill('A Person')
      }
      const flows = page.getByLabel('flows')
      if ((await flows.count()) > 0) await flows.check()
      await page.getByRole('button', { name: 'Check and send' }).click()
      await eventually(
        async () =>
          `${await page.locator('#result').textContent()} ${await page.locator('#alert').textContent()}`,
      ).toMatch(/is on record/)
      const caseId =
        ((await page.locator('#result').textContent()) ?? '').match(
          /Case (\S+) is on record/,
        )?.[1] ?? ''
      const opened = await rig.h.collector.cases.current(caseId)
      expect(opened?.kind, form.kind).toBe(form.kind === 'emergency' ? 'standard' : form.kind)
      expect(opened?.subjects[0]?.addresses).toEqual(['192.0.2.10', '2001:db8::10'])
      await shot(page, `09-form-${form.kind}`)
      await context.close()
    }
  })

  it('is usable by keyboard and screen reader: landmarks, a skip link, labelled fields, focus on each page', async () => {
    const context = await rig.browser.newContext()
    context.setDefaultTimeout(15_000)
    const page = await context.newPage()
    await page.goto(`${rig.url}/console/`)
    // The sign-in field has the focus; typing and Enter sign in, no mouse needed.
    await eventually(() =>
      page.evaluate('document.activeElement && document.activeElement.id'),
    ).toBe('token')
    await page.keyboard.type(requester.token)
    await page.keyboard.press('Enter')
    await eventually(() => page.locator('#nav').isVisible()).toBe(true)
    for (const role of ['banner', 'navigation', 'main'] as const) {
      expect(await page.getByRole(role).count(), role).toBe(1)
    }
    // The first Tab of a page reaches the skip link.
    await page.evaluate('document.activeElement && document.activeElement.blur()')
    await page.keyboard.press('Tab')
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content')
    // A page change moves the focus to the page and says so in the live region.
    await page.getByRole('link', { name: 'Written request' }).focus()
    await page.keyboard.press('Enter')
    await eventually(() => page.evaluate('document.activeElement.id')).toBe('main')
    await eventually(() => page.getByRole('status').textContent()).toContain('Written request')
    await page.getByRole('button', { name: 'Check and send' }).waitFor()
    // Every field has a label a screen reader reads, and its help bound to it.
    const unlabelled =
      await page.evaluate(`[...document.querySelectorAll('#view input, #view textarea, #view select')]
      .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label')).map((e) => e.id || e.name)`)
    expect(unlabelled).toEqual([])
    const unhelped =
      await page.evaluate(`[...document.querySelectorAll('#view input[type=text], #view textarea')]
      .filter((e) => !(e.getAttribute('aria-describedby') || '').split(' ').some((id) => document.getElementById(id)))
      .map((e) => e.id)`)
    expect(unhelped).toEqual([])
    await context.close()
  })

  it('shows a role its refusals: a page not for its roles, and separation of duties before the collector refuses it', async () => {
    // A requester opening the approvers' page is told at once.
    const asRequester = await rig.as(requester)
    await asRequester.page.goto(`${rig.url}/console/#/approvals`)
    await eventually(() =>
      asRequester.page.getByRole('alert').filter({ hasText: 'This page is for' }).textContent(),
    ).toContain('approver')
    await shot(asRequester.page, '07-page-not-for-role')
    await asRequester.context.close()

    // A person holding both roles (a store from before the conflict rules) asked for the case:
    // the page says beforehand that they may not approve it, and the collector refuses it too.
    const both = await rig.h.user(['requester', 'approver'], 'Both Roles')
    const filed = await bearerPost(both, '/v1/cases', requestBody())
    expect(filed.status).toBe(201)
    const caseId = ((await filed.json()) as { case_id: string }).case_id
    expect(
      (await bearerPost(chief, `/v1/cases/${caseId}/consultation`, { summary: 'Consulted' }))
        .status,
    ).toBe(200)
    const { context, page } = await rig.as(both)
    await page.goto(`${rig.url}/console/#/case/${caseId}`)
    await eventually(() => page.locator('#act-approve-preflight').textContent()).toContain(
      'separation of duties',
    )
    expect(await page.locator('#act-approve-preflight').textContent()).toContain('requester')
    expect(
      await page.getByRole('button', { name: 'Approve' }).getAttribute('aria-describedby'),
    ).toBe('act-approve-preflight')
    await page.getByLabel('Investigator (user id)').fill(investigator.user_id)
    await page.getByRole('button', { name: 'Approve' }).click()
    await eventually(() => page.locator('#alert').textContent()).toContain('refused')
    expect(await page.locator('#alert').textContent()).toContain('separation of duties')
    await shot(page, '08-separation-of-duties')
    expect((await rig.h.collector.cases.current(caseId))?.state).toBe('requested')
    await context.close()
  })
})
