/**
 * Self-telemetry: the counters /metrics shows after real ingest requests on the embedded engine,
 * one MeterProvider per app, and the OTLP reader only when the environment asks for it.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  CASES_ROUTE,
  createTelemetry,
  otlpMetricsUrl,
  routeLabel,
} from '../../collector/telemetry.ts'
import { IngestAck } from '../../protocol/v1.ts'
import {
  type App,
  type EnrolledAgent,
  enrollAgent,
  errorBody,
  gz,
  type Harness,
  makeBatch,
  openHarness,
  postIngest,
} from './harness.ts'

let h: Harness
let agent: EnrolledAgent

beforeAll(async () => {
  h = await openHarness()
  agent = await enrollAgent(h, 'site-t', 'host-t')
})

afterAll(async () => {
  await h?.close()
})

async function scrape(app: App): Promise<string[]> {
  const res = await app.request('/metrics')
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
  return (await res.text()).split('\n')
}

/** The value of one series, or undefined when /metrics does not show it. */
function value(lines: string[], series: string): number | undefined {
  const line = lines.find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('GET /metrics after ingest on the real engine', () => {
  let app: App
  let lines: string[]

  beforeAll(async () => {
    // An app of its own, so its provider has seen only the requests below.
    app = h.appWith({})
    const batch = makeBatch(agent.agent_id, 1)
    const first = await postIngest(app, gz(batch), { credential: agent.credential })
    expect(IngestAck.parse(await first.json()).status).toBe('stored')
    const again = await postIngest(app, gz(batch), { credential: agent.credential })
    expect(IngestAck.parse(await again.json()).status).toBe('duplicate')
    const unknownField = await postIngest(app, gz({ ...makeBatch(agent.agent_id, 2), extra: 1 }), {
      credential: agent.credential,
    })
    expect((await errorBody(unknownField)).error).toBe('invalid_batch')
    const broken = await postIngest(app, Buffer.from('{"version": 1,'), {
      credential: agent.credential,
      encoding: undefined,
    })
    expect((await errorBody(broken)).error).toBe('malformed_json')
    lines = await scrape(app)
  })

  it('counts batches by outcome, stored samples, rejections by reason', () => {
    const expected = [
      '# HELP tally_ingest_batches_total Agent batches acknowledged, by outcome.',
      '# TYPE tally_ingest_batches_total counter',
      'tally_ingest_batches_total{outcome="stored"} 1',
      'tally_ingest_batches_total{outcome="duplicate"} 1',
      '# TYPE tally_ingest_samples_total counter',
      'tally_ingest_samples_total 4',
      '# TYPE tally_ingest_rejected_total counter',
      'tally_ingest_rejected_total{reason="too_large"} 0',
      'tally_ingest_rejected_total{reason="encoding"} 0',
      'tally_ingest_rejected_total{reason="gzip"} 0',
      'tally_ingest_rejected_total{reason="json"} 1',
      'tally_ingest_rejected_total{reason="identity"} 0',
      'tally_ingest_rejected_total{reason="schema"} 1',
      '# TYPE tally_ingest_unavailable_total counter',
      'tally_ingest_unavailable_total 0',
    ]
    for (const line of expected) expect(lines).toContain(line)
  })

  it('counts requests by route template and status, with no path or scope labels', () => {
    expect(lines).toContain('# TYPE tally_http_requests_total counter')
    expect(value(lines, 'tally_http_requests_total{route="/v1/ingest",status="200"}')).toBe(2)
    expect(value(lines, 'tally_http_requests_total{route="/v1/ingest",status="400"}')).toBe(2)
    const requestLines = lines.filter((l) => l.startsWith('tally_http_requests_total'))
    expect(requestLines).toHaveLength(2)
    expect(lines.filter((l) => l.includes('otel_scope'))).toEqual([])
  })

  it('times ingest requests in seconds, by status', () => {
    expect(lines).toContain('# TYPE tally_ingest_duration_seconds histogram')
    expect(value(lines, 'tally_ingest_duration_seconds_count{status="200"}')).toBe(2)
    expect(value(lines, 'tally_ingest_duration_seconds_count{status="400"}')).toBe(2)
    expect(value(lines, 'tally_ingest_duration_seconds_bucket{status="200",le="+Inf"}')).toBe(2)
    const sum = value(lines, 'tally_ingest_duration_seconds_sum{status="200"}') ?? Number.NaN
    // In seconds, not milliseconds: two in-process requests take well under a minute.
    expect(sum).toBeGreaterThan(0)
    expect(sum).toBeLessThan(60)
    // Cumulative buckets up to +Inf, in seconds.
    const buckets = lines
      .filter((l) => l.startsWith('tally_ingest_duration_seconds_bucket{status="200"'))
      .map((l) => Number(l.split(' ')[1]))
    expect(buckets).toHaveLength(13)
    expect(buckets).toEqual([...buckets].sort((x, y) => x - y))
    expect(value(lines, 'tally_ingest_duration_seconds_bucket{status="200",le="30"}')).toBe(2)
  })

  it('shows the previous scrape, unmatched paths and refused routes by template', async () => {
    await app.request('/no/such/path?secret=1')
    await app.request('/v1/admin/users/u-123/revoke', { method: 'POST' })
    const next = await scrape(app)
    expect(value(next, 'tally_http_requests_total{route="/metrics",status="200"}')).toBe(1)
    expect(value(next, 'tally_http_requests_total{route="unmatched",status="404"}')).toBe(1)
    expect(
      value(next, 'tally_http_requests_total{route="/v1/admin/users/:id/revoke",status="401"}'),
    ).toBe(1)
    expect(next.filter((l) => l.includes('secret') || l.includes('u-123'))).toEqual([])
  })

  it('keeps each app to its own provider', async () => {
    // The harness app served only the enrollment; it saw none of the batches above.
    const other = await scrape(h.app)
    expect(other).toContain('tally_ingest_batches_total{outcome="stored"} 0')
    expect(other).toContain('tally_ingest_samples_total 0')
    expect(value(other, 'tally_http_requests_total{route="/v1/agents/enroll",status="201"}')).toBe(
      1,
    )
    expect(value(other, 'tally_http_requests_total{route="/v1/ingest",status="200"}')).toBe(
      undefined,
    )
  })
})

describe('route labels', () => {
  it('count every route of the case family, OIOS included, under the one label cases', () => {
    const templates = [
      ...new Set(h.app.routes.filter((r) => r.method !== 'ALL').map((r) => r.path)),
    ]
    const family = templates.filter((t) =>
      /^\/v1\/(cases|oios|register|restricted)(\/|$)|^\/v1\/agents\/grants$/.test(t),
    )
    // The family is really there: OIOS's own routes and tier I among it.
    expect(family).toEqual(
      expect.arrayContaining([
        '/v1/cases/oios',
        '/v1/oios/designations',
        '/v1/cases/:id/flows',
        '/v1/restricted/ingest',
        '/v1/register/:register/entries',
      ]),
    )
    for (const t of family) expect(routeLabel(t), t).toBe(CASES_ROUTE)
    // No label of any route names OIOS; other routes keep their template.
    for (const t of templates) expect(routeLabel(t), t).not.toMatch(/oios/i)
    expect(routeLabel('/v1/ingest')).toBe('/v1/ingest')
    expect(routeLabel('/v1/admin/users/:id/revoke')).toBe('/v1/admin/users/:id/revoke')
    expect(routeLabel(undefined)).toBe('unmatched')
  })
})

describe('the telemetry facade', () => {
  it('adds samples for stored batches only, and counts 503s', async () => {
    const telemetry = createTelemetry()
    telemetry.batch('stored', 3)
    telemetry.batch('duplicate', 5)
    telemetry.unavailable()
    telemetry.unavailable()
    telemetry.rejected('too_large')
    const lines = (await telemetry.prometheus()).split('\n')
    expect(lines).toContain('tally_ingest_samples_total 3')
    expect(lines).toContain('tally_ingest_batches_total{outcome="duplicate"} 1')
    expect(lines).toContain('tally_ingest_unavailable_total 2')
    expect(lines).toContain('tally_ingest_rejected_total{reason="too_large"} 1')
    expect(lines.find((l) => l.startsWith('target_info'))).toContain(
      'service_name="tally-collector"',
    )
    await telemetry.shutdown()
    await telemetry.shutdown()
  })
})

/** The part of an OTLP/JSON metrics request this test reads. */
const OtlpPayload = z.object({
  resourceMetrics: z.array(
    z.object({
      resource: z.object({ attributes: z.array(z.unknown()) }),
      scopeMetrics: z.array(
        z.object({
          metrics: z.array(
            z.object({
              name: z.string(),
              sum: z
                .object({
                  dataPoints: z.array(
                    z.object({ asDouble: z.number().optional(), asInt: z.unknown().optional() }),
                  ),
                })
                .optional(),
            }),
          ),
        }),
      ),
    }),
  ),
})

describe('OTLP', () => {
  it('takes the signal endpoint as is and appends /v1/metrics to the generic one', () => {
    expect(otlpMetricsUrl({})).toBeUndefined()
    expect(otlpMetricsUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })).toBeUndefined()
    expect(otlpMetricsUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318' })).toBe(
      'http://otel:4318/v1/metrics',
    )
    expect(otlpMetricsUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318/' })).toBe(
      'http://otel:4318/v1/metrics',
    )
    expect(
      otlpMetricsUrl({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318',
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://other:4318/custom',
      }),
    ).toBe('http://other:4318/custom')
  })

  it('exports to the endpoint of the environment, last on shutdown', async () => {
    const received: { path: string; type: string; body: Buffer }[] = []
    const server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        received.push({
          path: req.url ?? '',
          type: req.headers['content-type'] ?? '',
          body: Buffer.concat(chunks),
        })
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      })
    })
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready))
    try {
      const { port } = server.address() as AddressInfo
      const telemetry = createTelemetry({
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` },
      })
      telemetry.batch('stored', 7)
      expect(received).toEqual([])
      await telemetry.shutdown()
      expect(received.length).toBeGreaterThanOrEqual(1)
      const [first] = received
      expect(first?.path).toBe('/v1/metrics')
      // @opentelemetry/exporter-metrics-otlp-http speaks OTLP/HTTP with JSON bodies.
      expect(first?.type).toBe('application/json')
      const payload = OtlpPayload.parse(JSON.parse(first?.body.toString('utf8') ?? ''))
      const resource = payload.resourceMetrics[0]
      expect(resource?.resource.attributes).toContainEqual({
        key: 'service.name',
        value: { stringValue: 'tally-collector' },
      })
      const metrics = resource?.scopeMetrics.flatMap((s) => s.metrics) ?? []
      const samples = metrics.find((m) => m.name === 'tally_ingest_samples')
      expect(samples?.sum?.dataPoints.map((p) => p.asDouble ?? p.asInt)).toEqual([7])
      expect(metrics.map((m) => m.name).sort()).toEqual([
        'tally_ingest_batches',
        'tally_ingest_rejected',
        'tally_ingest_samples',
        'tally_ingest_unavailable',
      ])
    } finally {
      await new Promise<void>((done) => server.close(() => done()))
    }
  })
})
