/**
 * GET /v1/openapi.json: an OpenAPI 3.1 document naming every route the app serves and nothing
 * else, whose schemas (made by zod from the ones the routes validate with) hold under a JSON
 * Schema 2020-12 validator: strict objects stay strict.
 */
import Ajv2020 from 'ajv/dist/2020.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { bodyCaps, capFor, DEFAULT_CAP } from '../../collector/body-caps.ts'
import { isApiPath } from '../../collector/contract.ts'
import { type Harness, makeBatch, openHarness } from './harness.ts'

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'] as const

const Operation = z.looseObject({
  operationId: z.string(),
  security: z.array(z.record(z.string(), z.array(z.string()))),
  responses: z.record(z.string(), z.looseObject({ description: z.string() })),
})

const Document = z.looseObject({
  openapi: z.literal('3.1.0'),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  components: z.looseObject({
    securitySchemes: z.record(
      z.string(),
      z.looseObject({ type: z.literal('http'), scheme: z.literal('bearer') }),
    ),
    schemas: z.record(z.string(), z.record(z.string(), z.unknown())),
  }),
  paths: z.record(z.string(), z.partialRecord(z.enum(METHODS), Operation)),
})
type Document = z.infer<typeof Document>

let h: Harness
let doc: Document
let raw: string

beforeAll(async () => {
  h = await openHarness()
  const res = await h.app.request('/v1/openapi.json')
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type') ?? '').toMatch(/^application\/json/)
  raw = await res.text()
  doc = Document.parse(JSON.parse(raw))
})

afterAll(async () => {
  await h?.close()
})

/** `METHOD /path/{param}` for every operation of the document. */
const documented = (d: Document): string[] =>
  Object.entries(d.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m] !== undefined).map((m) => `${m.toUpperCase()} ${path}`),
  )

/**
 * `METHOD /path/{param}` for every endpoint of the API the app serves (middleware entries are
 * method ALL); the web console's pages are not part of it (collector/contract.ts OUTSIDE_THE_API).
 */
const served = (): string[] => [
  ...new Set(
    h.app.routes
      .filter((r) => r.method !== 'ALL' && isApiPath(r.path))
      .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`),
  ),
]

/** Ajv on the document's component schemas, with their `$ref`s pointing at `$defs`. */
function validator(name: string) {
  const defs: unknown = JSON.parse(
    JSON.stringify(doc.components.schemas).replaceAll('"#/components/schemas/', '"#/$defs/'),
  )
  const ajv = new Ajv2020.default({
    strict: true,
    allErrors: true,
    formats: { ipv4: true, ipv6: true },
  })
  return ajv.compile({ $ref: `#/$defs/${name}`, $defs: defs })
}

describe('GET /v1/openapi.json', () => {
  it('documents exactly the routes the app serves', () => {
    const routes = served()
    expect(routes).toContain('POST /v1/ingest')
    expect(routes).toContain('GET /metrics')
    expect(routes).toContain('POST /v1/admin/users/{id}/revoke')
    expect(documented(doc).sort()).toEqual(routes.sort())
  })

  it('gives every operation a unique id and only declared security schemes', () => {
    const operations = Object.values(doc.paths).flatMap((item) =>
      METHODS.flatMap((m) => item[m] ?? []),
    )
    const ids = operations.map((o) => o.operationId)
    expect(new Set(ids).size).toBe(ids.length)
    const schemes = Object.keys(doc.components.securitySchemes).sort()
    expect(schemes).toEqual(['agentCredential', 'enrollmentToken', 'userToken'])
    for (const operation of operations) {
      for (const requirement of operation.security) {
        for (const scheme of Object.keys(requirement)) expect(schemes).toContain(scheme)
      }
    }
    expect(doc.paths['/v1/ingest']?.post?.security).toEqual([{ agentCredential: [] }])
    expect(doc.paths['/v1/agents/enroll']?.post?.security).toEqual([{ enrollmentToken: [] }])
    expect(doc.paths['/v1/fleet']?.get?.security).toEqual([{ userToken: [] }])
    expect(doc.paths['/healthz']?.get?.security).toEqual([])
  })

  it('resolves every $ref to a component', () => {
    const refs = [...raw.matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1] ?? '')
    expect(refs.length).toBeGreaterThan(10)
    for (const ref of new Set(refs)) {
      expect(ref).toMatch(/^#\/components\/schemas\//)
      expect(doc.components.schemas).toHaveProperty([ref.replace('#/components/schemas/', '')])
    }
  })

  it('describes ingest: HostBatch in, IngestAck or ErrorBody out', () => {
    const ingest = doc.paths['/v1/ingest']?.post
    expect(ingest?.requestBody).toEqual({
      required: true,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/HostBatch' } } },
    })
    expect(ingest?.responses['200']).toMatchObject({
      content: { 'application/json': { schema: { $ref: '#/components/schemas/IngestAck' } } },
    })
    for (const status of ['400', '401', '403', '413', '415', '503']) {
      expect(ingest?.responses[status]).toMatchObject({
        content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } },
      })
    }
    expect(ingest?.responses['503']).toHaveProperty(['headers', 'Retry-After'])
  })

  it('has a HostBatch schema that takes a batch and refuses unknown fields', () => {
    const hostBatch = doc.components.schemas.HostBatch
    expect(hostBatch?.additionalProperties).toBe(false)
    expect(Object.keys(hostBatch?.properties ?? {})).not.toContain('host')
    const validate = validator('HostBatch')
    const batch = makeBatch('agent-1', 1)
    expect(validate(batch), JSON.stringify(validate.errors)).toBe(true)
    // The default of `attributes` makes it optional on the wire.
    expect(
      validate({ ...batch, samples: [{ metric: 'system.uptime', value: 1 }] }),
      JSON.stringify(validate.errors),
    ).toBe(true)
    expect(validate({ ...batch, host: 'pc-17' })).toBe(false)
    expect(validate.errors).toContainEqual(
      expect.objectContaining({
        keyword: 'additionalProperties',
        params: { additionalProperty: 'host' },
      }),
    )
    expect(validate({ ...batch, interval: { ...batch.interval, tz: 'UTC' } })).toBe(false)
    const sample = {
      metric: 'system.uptime',
      value: 1,
      attributes: { 'client.address': '10.0.0.1' },
    }
    expect(validate({ ...batch, samples: [sample] })).toBe(false)
    expect(validate({ ...batch, version: 2 })).toBe(false)
  })

  it('has strict request schemas for the admin routes, from the routes', () => {
    const validate = validator('EnrollTokenRequest')
    expect(validate({ site: 'geneva-pm', ttl_hours: 2 })).toBe(true)
    expect(validate({ site: 'geneva-pm', owner: 'x' })).toBe(false)
    expect(validate({ site: 'Geneva PM' })).toBe(false)
    expect(validator('UserRequest')({ name: 'n', roles: ['operator'] })).toBe(true)
    expect(validator('UserRequest')({ name: 'n', roles: ['root'] })).toBe(false)
    expect(doc.paths['/v1/fleet']?.get?.parameters).toEqual([
      { name: 'site', in: 'query', required: false, schema: { type: 'string', maxLength: 63 } },
    ])
  })

  it('states the cap and the 413 of every route that takes a body, from the table the app enforces', () => {
    const caps = bodyCaps(h.config)
    const withBody = served().filter((r) => !r.startsWith('GET '))
    expect(withBody).toContain('POST /v1/agents/enroll')
    for (const route of withBody) {
      const [method = '', path = ''] = route.split(' ')
      const operation = doc.paths[path]?.[method.toLowerCase() as (typeof METHODS)[number]]
      expect(operation?.['x-max-body-bytes'], route).toBe(capFor(caps, method, path))
      expect(operation?.responses['413'], route).toMatchObject({
        content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } },
      })
      expect(operation?.responses['413']?.description, route).toContain(
        `${capFor(caps, method, path)} bytes`,
      )
    }
    // Every operation with a request body is in the table: none falls to the default by mistake.
    for (const route of withBody) {
      const [method = '', path = ''] = route.split(' ')
      const operation = doc.paths[path]?.[method.toLowerCase() as (typeof METHODS)[number]]
      if (operation?.requestBody !== undefined) expect(Object.keys(caps), route).toContain(route)
    }
    // And the table names only routes the app serves.
    for (const key of Object.keys(caps)) expect(withBody, key).toContain(key)
    expect(caps['POST /v1/agents/enroll']).toBeLessThanOrEqual(8 * 1024)
    expect(caps['POST /v1/ingest']).toBe(h.config.ingest.max_body_bytes)
    expect(DEFAULT_CAP).toBeLessThanOrEqual(4096)
  })
})
