/**
 * Insiders against what the contract binding, the one error mapping and the web console may have
 * opened, each replayed on a collector served on a loopback port (real engine), with the session
 * cookie a browser would hold:
 * - a page of another origin of the same site (another port of the collector's host, another
 *   subdomain: a Grafana dashboard's HTML beside the collector) makes the browser send even a
 *   SameSite=Strict cookie; the GETs that register an access (the export listing) must not be
 *   taken from it;
 * - the session cookie is HttpOnly, SameSite=Strict, Path=/, and `__Host-` + Secure over TLS;
 * - the console's preflight answers an OIOS case to every ITSD role exactly as an unknown id
 *   (status, body, headers, the statements sent to the store);
 * - the console's file route serves its own files only (no traversal, no source, no listing);
 * - no parameter of the export listing or of the console's routes gives a 5xx.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { consoleAssets } from '../../collector/console/assets.ts'
import { PREFLIGHT_STEPS } from '../../collector/console/routes.ts'
import type { Store } from '../../collector/store/client.ts'
import { caseRequest, fingerprint, iso, type TestUser } from '../collector/cases-harness.ts'
import { signedIn } from '../console/browser.ts'
import {
  bearer as bearerAt,
  describeInChromium,
  people,
  useBrowser,
  useConsoleRig,
} from '../console/harness.ts'

const rig = useConsoleRig({ browser: false })
let admin: TestUser
let operator: TestUser
let requester: TestUser
let approver: TestUser
let official: TestUser
let auditor: TestUser
let investigator: TestUser
let oiosInvestigator: TestUser
let itsdCase: string
let oiosCase: string
/** A well-formed case id no case has. */
const UNKNOWN_CASE = 'c-0000000000000000'

interface Session {
  cookie: string
  csrf: string
  setCookie: string
}

/** Signs in as the console's form does, from the console's own origin. */
async function signIn(token: string, headers: Record<string, string> = {}): Promise<Session> {
  const res = await fetch(`${rig.url}/console/session`, {
    method: 'POST',
    headers: {
      accept: 'application/json',
      origin: rig.url,
      'sec-fetch-site': 'same-origin',
      ...headers,
    },
    body: new URLSearchParams({ token }),
  })
  expect(res.status, await res.clone().text()).toBe(201)
  const setCookie = res.headers.get('set-cookie') ?? ''
  const { csrf_token } = (await res.json()) as { csrf_token: string }
  return { cookie: setCookie.split(';')[0] ?? '', csrf: csrf_token, setCookie }
}

/** A request with the session's cookie and the headers a browser adds, and what it answered. */
async function withCookie(
  session: Pick<Session, 'cookie'>,
  method: string,
  path: string,
  extra: Record<string, string> = {},
) {
  const res = await fetch(`${rig.url}${path}`, {
    method,
    headers: { cookie: session.cookie, ...extra },
  })
  const text = await res.text()
  let error: string | undefined
  try {
    error = (JSON.parse(text) as { error?: string }).error
  } catch {
    error = undefined
  }
  return { status: res.status, error, text, headers: res.headers }
}

const bearer = (token: string, method: string, path: string, body?: unknown) =>
  bearerAt(rig.url, token, method, path, body)

beforeAll(async () => {
  admin = { ...rig.h.admins.itsd[0], roles: ['admin'] }
  operator = await rig.h.user(['operator'], 'Otto Operator')
  auditor = await rig.h.user(['auditor'], 'Audrey Auditor')
  ;({ requester, approver, official, investigator } = await people(
    rig.h,
    'requester',
    'approver',
    'official',
    'investigator',
  ))
  oiosInvestigator = await rig.h.user(['oios_investigator'], 'Ines OIOS')
  const oiosOfficial = await rig.h.user(['receiving_official'], 'Oscar OIOS Official')
  const agent = await rig.h.agent()
  const filed = await bearer(
    requester.token,
    'POST',
    '/v1/cases',
    caseRequest(official.user_id, [agent.agent_id]),
  )
  expect(filed.status, filed.text).toBe(201)
  itsdCase = String((filed.body as { case_id: string }).case_id)
  const now = Date.now()
  const oios = await bearer(oiosInvestigator.token, 'POST', '/v1/cases/oios', {
    description: 'OIOS inquiry',
    categories: ['flows'],
    subjects: [{ agent_id: agent.agent_id, addresses: ['192.0.2.44'] }],
    window: { start: iso(now - 60_000), end: iso(now + 3_600_000) },
    receiving_official: oiosOfficial.user_id,
  })
  expect(oios.status, oios.text).toBe(201)
  oiosCase = String((oios.body as { case_id: string }).case_id)
})

describe('cross-origin requests carrying the session cookie', () => {
  it('a GET that registers an access is not taken from another origin of the same site (an <img> on a page beside the collector)', async () => {
    const session = await signIn(official.token)
    const path = `/v1/cases/${itsdCase}/exports`
    const before = await fingerprint(rig.h.store)
    // What a browser sends for <img src=…> or a link followed from a page on another port of
    // the collector's host (same site: SameSite=Strict lets the cookie through), or from
    // another site entirely (a cookie that leaked into a non-Strict jar).
    for (const site of ['same-site', 'cross-site']) {
      for (const [mode, dest] of [
        ['no-cors', 'image'],
        ['navigate', 'document'],
      ] as const) {
        const res = await withCookie(session, 'GET', path, {
          'sec-fetch-site': site,
          'sec-fetch-mode': mode,
          'sec-fetch-dest': dest,
        })
        expect(res.status, `${site} ${dest}: ${res.text}`).toBe(403)
        expect(res.error).toBe('csrf_refused')
      }
    }
    expect(await fingerprint(rig.h.store), 'nothing registered in the official’s name').toBe(before)
    // The console's own page (same-origin fetch) and the official typing the address
    // (Sec-Fetch-Site: none) still list the bundles, each registered.
    for (const site of ['same-origin', 'none']) {
      const res = await withCookie(session, 'GET', path, { 'sec-fetch-site': site })
      expect(res.status, `${site}: ${res.text}`).toBe(200)
    }
    expect(await fingerprint(rig.h.store)).not.toBe(before)
  })

  it('the session cookie is HttpOnly, SameSite=Strict, on the whole origin; __Host- and Secure over TLS', async () => {
    const plain = await signIn(approver.token)
    const attributes = (setCookie: string) =>
      setCookie
        .split(';')
        .slice(1)
        .map((a) => a.trim().toLowerCase())
    expect(plain.cookie.startsWith('tally_console=')).toBe(true)
    expect(attributes(plain.setCookie)).toEqual(
      expect.arrayContaining(['httponly', 'samesite=strict', 'path=/']),
    )
    expect(attributes(plain.setCookie).some((a) => a.startsWith('domain='))).toBe(false)
    expect(attributes(plain.setCookie).some((a) => a.startsWith('max-age='))).toBe(false)
    const tls = await signIn(approver.token, { 'x-forwarded-proto': 'https' })
    expect(tls.cookie.startsWith('__Host-tally_console=')).toBe(true)
    expect(attributes(tls.setCookie)).toEqual(
      expect.arrayContaining(['httponly', 'samesite=strict', 'path=/', 'secure']),
    )
    expect(attributes(tls.setCookie).some((a) => a.startsWith('domain='))).toBe(false)
  })
})

/** Records the statements sent to the engine while `run` runs; the engine still runs each. */
async function statementsOf<T>(
  store: Store,
  run: () => Promise<T>,
): Promise<{ result: T; statements: string[] }> {
  const statements: string[] = []
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
  try {
    return { result: await run(), statements }
  } finally {
    store.query = query
    store.insert = insert
  }
}

describe('a cookie tossed by a sibling subdomain', () => {
  it('over TLS only the __Host- cookie is a session: a plain-named one (any subdomain can set it) signs no one in', async () => {
    // An insider on another subdomain of the site signs in themselves and sets their session
    // id as `tally_console` with Domain= the parent domain; the victim's browser then sends it
    // to the collector. Only `__Host-` cookies cannot be set that way.
    const tossed = await signIn(operator.token, { 'x-forwarded-proto': 'https' })
    const id = tossed.cookie.split('=')[1] ?? ''
    const tls = { 'x-forwarded-proto': 'https', 'sec-fetch-site': 'same-origin' }
    const asTossed = await withCookie(
      { cookie: `tally_console=${id}` },
      'GET',
      '/console/api/session',
      tls,
    )
    expect(asTossed.status, asTossed.text).toBe(401)
    expect(asTossed.text).not.toContain(operator.user_id)
    const cases = await withCookie({ cookie: `tally_console=${id}` }, 'GET', '/v1/cases', tls)
    expect(cases.status, cases.text).toBe(401)
    // The control: the same id under its own __Host- name is the operator's session.
    const own = await withCookie(
      { cookie: `__Host-tally_console=${id}` },
      'GET',
      '/console/api/session',
      tls,
    )
    expect(own.status, own.text).toBe(200)
    expect(own.text).toContain(operator.user_id)
  })
})

describe("the console's routes and an OIOS case", () => {
  it('the preflight answers an OIOS case to every ITSD role as an unknown id: status, body, headers, store statements', async () => {
    const before = await fingerprint(rig.h.store)
    const same = { 'sec-fetch-site': 'same-origin' }
    for (const who of [admin, operator, requester, approver, official, auditor, investigator]) {
      const session = await signIn(who.token)
      for (const step of PREFLIGHT_STEPS) {
        for (const extra of ['', `&investigator=${investigator.user_id}`]) {
          const seen = async (id: string) => {
            const { result, statements } = await statementsOf(rig.h.store, () =>
              withCookie(
                session,
                'GET',
                `/console/api/cases/${id}/preflight?step=${step}${extra}`,
                same,
              ),
            )
            const headers = Object.fromEntries(
              ['content-type', 'content-length', 'retry-after', 'cache-control'].map((n) => [
                n,
                result.headers.get(n),
              ]),
            )
            return {
              status: result.status,
              text: result.text.replaceAll(id, '<id>'),
              headers,
              statements,
            }
          }
          const oios = await seen(oiosCase)
          const unknown = await seen(UNKNOWN_CASE)
          const what = `${who.roles} ${step}${extra}`
          expect(oios.status, `${what}: ${oios.text}`).toBe(404)
          expect(oios.statements.length, `${what} reads the store`).toBeGreaterThan(0)
          expect(oios, what).toEqual(unknown)
          expect(oios.text).not.toContain('OIOS')
        }
      }
    }
    expect(await fingerprint(rig.h.store), 'a preflight writes nothing').toBe(before)
    // The control: OIOS's investigator gets an answer about the case itself.
    const oiosSession = await signIn(oiosInvestigator.token)
    const control = await withCookie(
      oiosSession,
      'GET',
      `/console/api/cases/${oiosCase}/preflight?step=close`,
      same,
    )
    expect(control.status, control.text).toBe(200)
  })
})

describe("the console's files", () => {
  it('only its own files are served: no traversal, no encoded slash, no listing, no map or source beside them', async () => {
    const names = consoleAssets().names()
    for (const name of names) {
      expect(name, name).toMatch(
        /^(?:[a-z0-9-]+\/)*[a-z0-9-]+\.(?:html|js|css|svg)$|^register-verify\/[a-z0-9-]+\.ts$/,
      )
    }
    const served = await fetch(
      `${rig.url}/console/register-verify/${names.find((n) => n.startsWith('register-verify/'))?.split('/')[1]}`,
    )
    expect(served.status).toBe(200)
    expect(served.headers.get('content-type')).toMatch(/^text\/javascript/)
    const tries = [
      '/console/../collector/config.ts',
      '/console/%2e%2e/%2e%2e/package.json',
      '/console/..%2f..%2fpackage.json',
      '/console/..%5c..%5cpackage.json',
      '/console/static/index.html',
      '/console/%2fetc%2fpasswd',
      '/console//etc/passwd',
      '/console/register-verify/',
      '/console/register-verify',
      '/console/register-verify/..%2f..%2fcollector%2fconsole%2fsession.ts',
      '/console/register-verify/../../collector/console/session.ts',
      '/console/app.js.map',
      '/console/pages/',
      '/console/assets.ts',
      '/console/routes.ts',
      '/console/index.html%00.ts',
      '/console/.git/config',
    ]
    for (const path of tries) {
      const res = await fetch(`${rig.url}${path}`, { redirect: 'manual' })
      const text = await res.text()
      expect([301, 302, 308, 404], `${path}: ${res.status}`).toContain(res.status)
      expect(text, path).not.toMatch(/"name": "tally"|root:x:0|SESSION_COOKIE|\[core\]/)
      if (res.status !== 404) expect(res.headers.get('location') ?? '', path).not.toMatch(/\.\./)
    }
  })
})

describe('parameters of the new routes', () => {
  it('no value of the export listing’s or the console’s parameters gives a 5xx', async () => {
    const session = await signIn(official.token)
    const same = { 'sec-fetch-site': 'same-origin' }
    const segment = fc.oneof(
      fc.constantFrom(itsdCase, oiosCase, UNKNOWN_CASE, '', '%00', '%ZZ', '..', 'c-', '%2f'),
      fc.string({ maxLength: 40 }).map(encodeURIComponent),
    )
    const value = fc.oneof(
      fc.constantFrom(
        'approve',
        'close',
        'u-0000000000000000',
        investigator.user_id,
        '',
        '%00',
        '%ZZ',
      ),
      fc.string({ maxLength: 40 }).map(encodeURIComponent),
    )
    const answers: number[] = []
    await fc.assert(
      fc.asyncProperty(segment, value, value, fc.boolean(), async (id, step, named, asBearer) => {
        const paths = [
          `/console/api/cases/${id}/preflight?step=${step}&investigator=${named}`,
          `/console/api/cases/${id}/preflight?step=${step}&step=${named}`,
          `/v1/cases/${id}/exports?${step}=${named}`,
          `/console/api/session?${step}=${named}`,
        ]
        for (const path of paths) {
          const res = asBearer
            ? await fetch(`${rig.url}${path}`, {
                headers: { authorization: `Bearer ${official.token}` },
              })
            : await fetch(`${rig.url}${path}`, { headers: { cookie: session.cookie, ...same } })
          const text = await res.text()
          answers.push(res.status)
          expect(res.status >= 500 && res.status !== 503, `${path}: ${res.status} ${text}`).toBe(
            false,
          )
        }
      }),
      { numRuns: 40 },
    )
    expect(answers.some((s) => s >= 400 && s < 500)).toBe(true)
  })
})

describeInChromium('a page on another port of the same host, in Chromium', () => {
  const chromium = useBrowser()
  let evil: Server | undefined

  it('an <img> and a link to the export listing register nothing in the signed-in official’s name', async () => {
    const { context, page } = await signedIn(chromium.browser, rig.url, official)
    const target = `${rig.url}/v1/cases/${itsdCase}/exports`
    evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end(`<!doctype html><img id="i" src="${target}"><a id="a" href="${target}">x</a>`)
    })
    await new Promise<void>((ready) => evil?.listen(0, '127.0.0.1', ready))
    const port = (evil.address() as AddressInfo).port
    try {
      const before = await fingerprint(rig.h.store)
      const seen: { via: string; status: number }[] = []
      page.on('response', (r) => {
        if (r.url() === target) seen.push({ via: r.request().resourceType(), status: r.status() })
      })
      await page.goto(`http://127.0.0.1:${port}/`)
      await page.waitForLoadState('networkidle')
      await page.click('#a')
      await page.waitForLoadState('networkidle')
      // Chromium may block the image's JSON answer before the page sees it (ORB); the request
      // was made all the same, and the register below says whether it was taken.
      expect(
        seen.some((s) => s.via === 'document'),
        JSON.stringify(seen),
      ).toBe(true)
      for (const s of seen) expect(s.status, JSON.stringify(seen)).toBe(403)
      expect(await fingerprint(rig.h.store)).toBe(before)
    } finally {
      await new Promise<void>((done) => evil?.close(() => done()))
      await context.close()
    }
    expect(chromium.browser.isConnected()).toBe(true)
  })
})

describe("the console's preflight when the store fails", () => {
  it('a store that cannot answer is the 503 every route gives, not a refusal carrying the engine’s message', async () => {
    const session = await signIn(approver.token)
    const store = rig.h.store
    const query = store.query.bind(store)
    // The real engine, made to fail the roles query of the person the step names as a store
    // out of memory does (MEMORY_LIMIT_EXCEEDED); every other statement runs as it is.
    store.query = ((params: Parameters<Store['query']>[0]) => {
      const named = params.query_params?.id === investigator.user_id
      if (named && /SELECT roles FROM/.test(params.query)) {
        // In the statement itself: the embedded engine keeps a setting given beside a query
        // for the statements after it.
        return query({ ...params, query: `${params.query} SETTINGS max_memory_usage = 1` })
      }
      return query(params)
    }) as Store['query']
    try {
      const res = await withCookie(
        session,
        'GET',
        `/console/api/cases/${itsdCase}/preflight?step=approve&investigator=${investigator.user_id}`,
        { 'sec-fetch-site': 'same-origin' },
      )
      expect(res.status, res.text).toBe(503)
      expect(res.error).toBe('store_unavailable')
      expect(res.headers.get('retry-after')).not.toBeNull()
      expect(res.text).not.toMatch(/memory|tally\.|SELECT|MEMORY_LIMIT/i)
    } finally {
      store.query = query
    }
    // The control: with the store back, the same preflight is answered.
    const again = await withCookie(
      session,
      'GET',
      `/console/api/cases/${itsdCase}/preflight?step=approve&investigator=${investigator.user_id}`,
      { 'sec-fetch-site': 'same-origin' },
    )
    expect(again.status, again.text).toBe(200)
  })
})
