/**
 * The routes are served from the contract table (protocol/api/): every route the app serves has
 * a contract and every contract is served, each with its method and path; the query refusals of
 * the routes keep their exact answers (code, message, issues or none), byte for byte; and the
 * drill-down's documented query (checked by the service against the grant) names exactly the
 * parameters the service takes.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ContractRoutes, honoPath, isApiPath, OUTSIDE_THE_API } from '../../collector/contract.ts'
import { route } from '../../protocol/api/contract.ts'
import { ROUTES } from '../../protocol/api/index.ts'
import { ROLES } from '../../protocol/api/names.ts'
import { drillQuery } from '../../protocol/api/restricted.ts'
import { type EnrolledAgent, enrollAgent, type Harness, openHarness, userToken } from './harness.ts'

let h: Harness
let everyone: string
let agent: EnrolledAgent

beforeAll(async () => {
  h = await openHarness()
  everyone = await userToken(h.store, [...ROLES], 'every role')
  agent = await enrollAgent(h, 'contract-site', 'contract-host')
})

afterAll(async () => {
  await h?.close()
})

/** `METHOD /path/{param}` of every endpoint the app serves (middleware entries are method ALL). */
const served = (app: Hono): string[] => [
  ...new Set(
    app.routes
      .filter((r) => r.method !== 'ALL')
      .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`),
  ),
]

const exact = async (path: string, token: string) => {
  const res = await h.app.request(path, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.text() }
}

describe('the contract table and the served routes', () => {
  it('are the same set: every served API route has a contract, every contract is served', () => {
    const api = served(h.app as unknown as Hono).filter((r) => isApiPath(r.split(' ')[1] ?? ''))
    const contracts = ROUTES.map((c) => `${c.method} ${c.path}`)
    expect(new Set(contracts).size).toBe(contracts.length)
    expect(api.sort()).toEqual([...contracts].sort())
    // The console is served beside the API, and left out by name only.
    expect(OUTSIDE_THE_API).toEqual(['/console'])
    expect(served(h.app as unknown as Hono)).toContain('POST /console/session')
    expect(ROUTES.filter((c) => !isApiPath(c.path))).toEqual([])
  })

  it('are served through their contracts: no route file nor the app registers a handler by hand', () => {
    const dir = new URL('../../collector/routes/', import.meta.url)
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'))
    expect(files.length).toBeGreaterThanOrEqual(8)
    const sources = [
      ...files.map((f) => [`collector/routes/${f}`, readFileSync(new URL(f, dir), 'utf8')]),
      [
        'collector/app.ts',
        readFileSync(new URL('../../collector/app.ts', import.meta.url), 'utf8'),
      ],
    ]
    for (const [path, text] of sources) {
      // A path as first argument is a route; c.get('log') and the like are not.
      expect(text, path).not.toMatch(/\.(get|post|put|patch|delete|all)\(\s*['"`]\//)
      expect(text, path).not.toMatch(/\.on\(/)
      // The app is the one Hono the route families are mounted on.
      if (path !== 'collector/app.ts') expect(text, path).not.toMatch(/new Hono\b/)
    }
  })

  it('turns OpenAPI path parameters into Hono ones', () => {
    expect(honoPath('/v1/register/{register}/checkpoints/{size}/countersign')).toBe(
      '/v1/register/:register/checkpoints/:size/countersign',
    )
    expect(isApiPath('/console')).toBe(false)
    expect(isApiPath('/consoles')).toBe(true)
  })
})

describe('query refusals keep their answers', () => {
  const registerEntries = JSON.stringify({
    error: 'invalid_request',
    message: 'query parameters: from (seq, >= 1), limit (1-10000), case_id',
    issues: [{ path: 'from', message: 'Too small: expected number to be >=1' }],
  })
  it.each([
    ['/v1/register/itsd/entries?from=0', registerEntries],
    [
      '/v1/register/itsd/consistency?to=1',
      JSON.stringify({
        error: 'invalid_request',
        message: 'query parameters: from (a tree size, >= 0, required), to (a tree size >= from)',
        issues: [{ path: 'from', message: 'Invalid input: expected number, received NaN' }],
      }),
    ],
    [
      '/v1/register/itsd/consistency?from=3&to=1',
      JSON.stringify({ error: 'invalid_request', message: 'to (1) is below from (3)' }),
    ],
  ])('GET %s', async (path, body) => {
    expect(await exact(path, everyone)).toEqual({ status: 400, body })
  })

  it.each([
    [
      '/v1/admin/proposals?state=bogus',
      'unknown or invalid query parameter: Invalid option: expected one of "proposed"|"confirmed"|"rejected"',
    ],
    ['/v1/admin/proposals?x=1', 'unknown or invalid query parameter: Unrecognized key: "x"'],
    [
      `/v1/fleet?site=${'a'.repeat(64)}`,
      'unknown or invalid query parameter: Too big: expected string to have <=63 characters',
    ],
    ['/v1/fleet?x=1', 'unknown or invalid query parameter: Unrecognized key: "x"'],
  ])('GET %s names the first problem', async (path, message) => {
    expect(await exact(path, everyone)).toEqual({
      status: 400,
      body: JSON.stringify({ error: 'invalid_query', message }),
    })
  })

  it('usage names every problem', async () => {
    expect(await exact('/v1/usage?step=5&by=hosts', everyone)).toEqual({
      status: 400,
      body: JSON.stringify({
        error: 'invalid_query',
        message: 'invalid usage query',
        issues: [
          {
            path: 'by',
            message:
              'Invalid option: expected one of "service"|"peer_class"|"transport"|"ip_version"|"direction"',
          },
          { path: 'step', message: 'Too small: expected number to be >=10' },
        ],
      }),
    })
    expect(await exact('/v1/usage?from=1700000000&to=1600000000&step=90', everyone)).toEqual({
      status: 400,
      body: JSON.stringify({
        error: 'invalid_query',
        message: 'invalid usage query',
        issues: [
          { path: 'from', message: 'must be before to' },
          { path: 'step', message: 'must be a whole number of minutes (a multiple of 60 s)' },
        ],
      }),
    })
  })

  it('the grants poll names its parameter and gives no issues', async () => {
    expect(await exact('/v1/agents/grants?register_size=-1', agent.credential)).toEqual({
      status: 400,
      body: JSON.stringify({
        error: 'invalid_request',
        message:
          'query parameter: register_size (the size of the register head the agent kept, an integer >= 0)',
      }),
    })
  })

  it('an oios register is a 404 to ITSD roles whatever its query holds', async () => {
    const auditor = await userToken(h.store, ['auditor'], 'auditor')
    const answer = await exact('/v1/register/oios/entries?from=0&bogus=1', auditor)
    expect(answer.status).toBe(404)
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'not_found' })
  })
})

describe('answers keep their bytes', () => {
  it("the register's public key in the order the register keeps it", async () => {
    const auditor = await userToken(h.store, ['auditor'], 'key reader')
    const answer = await exact('/v1/register/public-key', auditor)
    expect(answer.status).toBe(200)
    // register/signing.ts: the JWK as Node exports it, then alg, use and kid.
    expect(Object.keys(JSON.parse(answer.body))).toEqual(['crv', 'x', 'kty', 'alg', 'use', 'kid'])
  })
})

describe('serve', () => {
  const probe = route({
    method: 'GET',
    path: '/probe',
    operationId: 'probe',
    summary: 'a route whose handler forgets its query',
    security: 'none',
    query: z.strictObject({ n: z.coerce.number().optional() }),
    status: 200,
    answer: { description: 'nothing', schema: z.strictObject({}) },
  })

  it('refuses to answer for a handler that did not read the query its contract takes', async () => {
    const app = new Hono()
    app.route('/', new ContractRoutes(h.store).serve(probe, () => ({})).app as unknown as Hono)
    app.onError((err, c) => c.text(err.message, 500))
    const res = await app.request('/probe?n=x')
    expect(res.status).toBe(500)
    expect(await res.text()).toBe('probe: answered without reading its query')
  })
})

describe('the drill-down query', () => {
  it('documents exactly the parameters the service takes, per category', async () => {
    // The service names what a category takes when it refuses an unknown parameter.
    const { parseNarrowing } = await import('../../collector/restricted/narrowing.ts')
    for (const category of ['flows', 'dns', 'web'] as const) {
      const grant = {
        categories: [category],
        subjects: [],
        window: { start: 0, end: 1 },
      } as unknown as Parameters<typeof parseNarrowing>[1]
      let message = ''
      try {
        parseNarrowing(category, grant, { unexpected: ['1'] })
      } catch (err) {
        message = (err as Error).message
      }
      const takes = message.split(' takes ')[1]?.split(', ') ?? []
      expect(takes.sort(), category).toEqual(Object.keys(drillQuery(category).shape).sort())
    }
  })
})
