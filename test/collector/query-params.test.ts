/**
 * Every query parameter of every GET route answers 4xx, never 5xx (503 aside), whatever it holds:
 * the values that gave 500 before (from=9999999999990, from before 1970, step=4294967296), then
 * random strings and numbers thrown at every query parameter the OpenAPI document names, on the
 * real engine, with tokens that get past authentication (an active case and its access grant for
 * the drill-down), so the parameters are really parsed and the queries really run.
 */
import fc from 'fast-check'
import { decodeJwt } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createUsageViews } from '../../collector/store/usage.ts'
import { ROLES } from '../../protocol/api/names.ts'
import {
  type EnrolledAgent,
  enrollAgent,
  errorBody,
  type Harness,
  openHarness,
  userToken,
} from './harness.ts'

let h: Harness
let everyone: string
let people: Record<'requester' | 'chief' | 'approver' | 'investigator' | 'official', string>
let agent: EnrolledAgent
let caseId: string
let accessGrant: string

const HOUR = 3_600_000
const iso = (ms: number) => new Date(ms).toISOString()

async function call(
  method: string,
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const init: RequestInit = {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
  }
  if (body !== undefined) init.body = JSON.stringify(body)
  return h.app.request(path, init)
}

async function ok<T>(res: Promise<Response>, status = 200): Promise<T> {
  const r = await res
  const text = await r.text()
  expect(r.status, text).toBe(status)
  return JSON.parse(text) as T
}

beforeAll(async () => {
  h = await openHarness()
  await createUsageViews(h.store, 1)
  everyone = await userToken(h.store, [...ROLES], 'every role')
  const token = async (role: (typeof ROLES)[number]) => {
    const made = await userToken(h.store, [role], role)
    const me = await ok<{ users: { user_id: string; name: string }[] }>(
      call('GET', '/v1/admin/users', everyone),
    )
    return { token: made, id: me.users.find((u) => u.name === role)?.user_id ?? '' }
  }
  const requester = await token('requester')
  const chief = await token('oios_chief')
  const approver = await token('approver')
  const investigator = await token('itsd_investigator')
  const official = await token('receiving_official')
  people = {
    requester: requester.token,
    chief: chief.token,
    approver: approver.token,
    investigator: investigator.token,
    official: official.token,
  }
  agent = await enrollAgent(h, 'fuzz-site', 'fuzz-host')
  const now = Date.now()
  const filed = await ok<{ case_id: string }>(
    call('POST', '/v1/cases', people.requester, {
      data_required: 'the subject’s network records',
      categories: ['flows', 'dns', 'web'],
      staff_member: { name: 'Staff Member' },
      supervisor: { name: 'Their Supervisor' },
      receiving_official: official.id,
      requesting_office: 'Office of Human Resources',
      justification: 'parameter fuzzing (test)',
      subjects: [{ agent_id: agent.agent_id, addresses: ['10.0.0.7'] }],
      window: { start: iso(now - HOUR), end: iso(now + 6 * HOUR) },
    }),
    201,
  )
  caseId = filed.case_id
  await ok(
    call('POST', `/v1/cases/${caseId}/consultation`, people.chief, { summary: 'no objection' }),
  )
  await ok(
    call('POST', `/v1/cases/${caseId}/approval`, people.approver, {
      investigator: investigator.id,
    }),
  )
  await ok(
    call('POST', `/v1/cases/${caseId}/notice`, people.approver, {
      method: 'in_person',
      given_by: 'the approver',
      witness: 'a colleague of the approver',
      given_at: iso(Date.now()),
      to: ['staff_member', 'supervisor'],
    }),
  )
  accessGrant = (
    await ok<{ token: string }>(
      call('GET', `/v1/cases/${caseId}/access-grant`, people.investigator),
    )
  ).token
  expect(decodeJwt(accessGrant).case_id).toBe(caseId)
})

afterAll(async () => {
  await h?.close()
})

describe('GET /v1/usage refuses what the store cannot hold with a 400', () => {
  const cases: [string, string][] = [
    ['from=9999999999990', 'from'],
    ['from=9999999999990&to=9999999999999', 'from'],
    ['to=9999999999990', 'to'],
    ['from=1960-01-01T00:00:00Z', 'from'],
    ['from=1969-12-31T23:59:59Z&to=1970-01-01T01:00:00Z', 'from'],
    ['to=1000', 'from'],
    ['step=4294967296', 'step'],
    ['step=4294967296&from=0&to=4294967295', 'step'],
    ['step=NaN', 'step'],
    ['step=-10', 'step'],
    ['step=1e400', 'step'],
    ['from=NaN', 'from'],
    ['from=-1', 'from'],
    ['from=0&to=4102444800', 'from'],
    ['from=1700000000&to=1600000000', 'from'],
    ['by=hosts', 'by'],
    ['limit=1', '(top level)'],
  ]
  it.each(cases)('%s', async (query, path) => {
    const res = await call('GET', `/v1/usage?${query}`, everyone)
    expect(res.status).toBe(400)
    const body = await errorBody(res)
    expect(body.error).toBe('invalid_query')
    expect(body.issues?.map((i) => i.path)).toContain(path)
  })

  it('still answers a plain query over a long range', async () => {
    const res = await call(
      'GET',
      '/v1/usage?from=1970-01-01T00:00:00Z&to=1970-01-02T00:00:00Z&step=3600',
      everyone,
    )
    expect(res.status, await res.clone().text()).toBe(200)
  })
})

// --- the property: every GET route, every query parameter, random values ----------------------

interface Parameter {
  name: string
  in: string
}
interface Operation {
  parameters?: Parameter[]
  security: Record<string, string[]>[]
}

/** GET operations with query parameters, from the served document. */
async function getRoutes(): Promise<{ path: string; query: string[] }[]> {
  const doc = (await (await h.app.request('/v1/openapi.json')).json()) as {
    paths: Record<string, { get?: Operation }>
  }
  return Object.entries(doc.paths).flatMap(([path, item]) => {
    const query = (item.get?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name)
    return item.get === undefined || query.length === 0 ? [] : [{ path, query }]
  })
}

const nasty = fc.constantFrom(
  '9999999999990',
  '99999999999999999999999',
  '-1',
  '-9999999999990',
  '0',
  '4294967295',
  '4294967296',
  '18446744073709551616',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e308',
  '1e-308',
  '0x10',
  '1969-12-31T23:59:59Z',
  '0000-01-01T00:00:00Z',
  '+275760-09-13T00:00:00Z',
  '9999-12-31T23:59:59.999Z',
  '',
  ' ',
  "'",
  '\\',
  '%',
  '\u0000',
  'itsd',
  'tcp',
  '10.0.0.7',
  '::1',
  'a-0000000000000000',
)
const value = fc.oneof(
  nasty,
  fc.string({ maxLength: 40 }),
  fc.integer().map(String),
  fc.double().map(String),
  fc.bigInt().map(String),
  fc
    .date({ noInvalidDate: false })
    .map((d) => (Number.isNaN(d.getTime()) ? 'Invalid' : d.toISOString())),
)

/** Fills the path's parameters and picks the token (and grant) that gets past authentication. */
function request(path: string): { url: string; token: string; headers: Record<string, string> } {
  if (/\/v1\/cases\/\{id\}\/(flows|dns|web)$/.test(path)) {
    return {
      url: path.replace('{id}', caseId),
      token: people.investigator,
      headers: { 'x-tally-grant': accessGrant },
    }
  }
  const url = path
    .replace('{register}', 'itsd')
    .replace('{id}', caseId)
    .replace('{export_id}', 'x')
    .replace('{name}', 'x')
  if (path === '/v1/agents/grants') return { url, token: agent.credential, headers: {} }
  return { url, token: everyone, headers: {} }
}

describe('every query parameter of every GET route', () => {
  it('covers the routes that take query parameters', async () => {
    const routes = (await getRoutes()).map((r) => r.path)
    for (const path of [
      '/v1/usage',
      '/v1/fleet',
      '/v1/register/{register}/entries',
      '/v1/cases/{id}/flows',
    ]) {
      expect(routes).toContain(path)
    }
  })

  it('answers random values with anything but a 5xx other than 503', async () => {
    const routes = await getRoutes()
    const seen = new Set<number>()
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.array(fc.tuple(fc.nat(), value), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        async (route, picks, unknown) => {
          const query = new URLSearchParams()
          for (const [i, v] of picks) query.append(route.query[i % route.query.length] ?? 'x', v)
          if (unknown) query.append('unexpected', '1')
          const { url, token, headers } = request(route.path)
          const res = await call('GET', `${url}?${query}`, token, undefined, headers)
          const text = await res.text()
          seen.add(res.status)
          expect(
            res.status < 500 || res.status === 503,
            `${route.path}?${query} -> ${res.status} ${text}`,
          ).toBe(true)
        },
      ),
      { numRuns: 400 },
    )
    // The parameters were reached: some answers were refusals of them, some were answers.
    expect(seen).toContain(400)
    expect(seen).toContain(200)
  })
})
