/**
 * The collector's self-telemetry, with OpenTelemetry metrics.
 *
 * DESIGN names `@opentelemetry/sdk-node`; the collector only exports metrics (no traces, no
 * auto-instrumentation), so the metrics SDK alone (`@opentelemetry/sdk-metrics`) is the smaller
 * choice: the same instruments and exporters without the tracing and instrumentation packages.
 *
 * Every app has its own MeterProvider (tests build several apps in one process): nothing is
 * registered globally. Readers:
 * - Prometheus, always: `PrometheusExporter` with its own server off; the app serves its text on
 *   `GET /metrics` (`prometheus()` below).
 * - A reader pulled by the collector itself, always (`collect()`): the cumulative values that
 *   self-metrics.ts writes to tally.collector_metrics, without a round trip through text.
 * - OTLP over HTTP (JSON bodies), only when `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (used as is) or
 *   `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/metrics` appended) is set, every
 *   `OTEL_METRIC_EXPORT_INTERVAL` ms (60000 by default). Headers, timeout, compression and
 *   temporality come from the exporter's usual `OTEL_EXPORTER_OTLP_*` variables.
 *
 * Instruments are named so the Prometheus text shows the names the dashboards use: counters
 * without `_total` (the Prometheus serializer appends it to every monotonic sum, and OTLP
 * consumers add it themselves), the histogram with its unit in its name (the serializer adds no
 * unit suffix). Exposed on /metrics:
 *   tally_ingest_batches_total{outcome}      batches acknowledged: stored, duplicate
 *   tally_ingest_samples_total               host samples stored
 *   tally_ingest_rejected_total{reason}      ingest requests refused with a 4xx
 *   tally_ingest_unavailable_total           ingest requests answered 503 (store failed)
 *   tally_ingest_duration_seconds{status}    POST /v1/ingest, request start to answer (histogram)
 *   tally_http_requests_total{route,status}  every request, by route label and status
 * plus `target_info` (the resource: service.name and the SDK's attributes).
 *
 * Labels hold only values this code chooses (route labels, status codes, fixed reasons):
 * never a path, a query, a host, an agent or anything from a body.
 *
 * Nothing of OIOS outside OIOS: /metrics answers anyone, and its counters go on to
 * tally.collector_metrics, which ITSD's dashboards read. Every route of the case family (the
 * workflow of every kind of case, OIOS's designations, both registers, tier I ingest, drill-down,
 * exports and the agents' grants poll) is counted under the one label `cases`, so an OIOS step
 * and the same step on an ITSD case add to the same series, and no label says which kind of case,
 * which register or which tier I category a request was for.
 */

import type { Counter, Histogram } from '@opentelemetry/api'
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http'
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus'
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources'
import {
  type IMetricReader,
  MeterProvider,
  MetricReader,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics'
import type { Context, MiddlewareHandler } from 'hono'
import { matchedRoutes } from 'hono/route'
import type { Logger } from 'pino'
import type { IngestAck } from '../protocol/v1.ts'

export type BatchOutcome = IngestAck['status']

/** Why POST /v1/ingest refused a request with a 4xx. */
export const REJECT_REASONS = [
  'too_large',
  'encoding',
  'gzip',
  'json',
  'identity',
  'schema',
  'time',
  'seq_conflict',
] as const
export type RejectReason = (typeof REJECT_REASONS)[number]

/** What the ingest route reports. */
export interface IngestCounters {
  /** A batch acknowledged; `samples` count only when it was stored (a duplicate adds none). */
  batch(outcome: BatchOutcome, samples: number): void
  rejected(reason: RejectReason): void
  /** Answered 503: the store could not take the batch. */
  unavailable(): void
}

export interface Telemetry extends IngestCounters {
  /** Counts every request by route and status, and times POST /v1/ingest. Install it first. */
  middleware: MiddlewareHandler
  /** Every instrument in the Prometheus text format (0.0.4). */
  prometheus(): Promise<string>
  /** Every instrument's cumulative value now, for tally.collector_metrics (self-metrics.ts). */
  collect(): Promise<ResourceMetrics>
  /** Flushes the OTLP reader (if any, within 5 s) and stops the provider. Idempotent. */
  shutdown(): Promise<void>
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

const INGEST_ROUTE = '/v1/ingest'
/** The `route` label of a request no route matched (404), so paths never become labels. */
const UNMATCHED_ROUTE = 'unmatched'
/** The one `route` label of every route of the case family (see the file comment). */
export const CASES_ROUTE = 'cases'

/** Route templates counted as `cases`: the whole family, whatever kind of case it serves. */
const CASE_FAMILY = [
  /^\/v1\/cases(\/|$)/,
  /^\/v1\/oios(\/|$)/,
  /^\/v1\/register(\/|$)/,
  /^\/v1\/restricted(\/|$)/,
]
const CASE_FAMILY_ROUTES = new Set(['/v1/agents/grants'])

/**
 * The label a route template is counted under: the template itself, or `cases` for the case
 * family, so that OIOS work and ITSD work are one series.
 */
export function routeLabel(template: string | undefined): string {
  if (template === undefined) return UNMATCHED_ROUTE
  if (CASE_FAMILY_ROUTES.has(template) || CASE_FAMILY.some((family) => family.test(template))) {
    return CASES_ROUTE
  }
  return template
}

/** The label of the endpoint that answered a request (for metrics and request logs). */
export function requestRouteLabel(c: Context): string {
  // The template of the endpoint that matched (never the path itself); middleware entries
  // (`use`, method ALL) match every request and name no endpoint.
  return routeLabel(matchedRoutes(c).findLast((r) => r.method !== 'ALL')?.path)
}

/** Seconds; an ingest answer waits for the store, so the buckets reach well past a second. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

const SHUTDOWN_TIMEOUT_MS = 5_000

export interface TelemetryOptions {
  /**
   * Where the OTLP settings are read from. Defaults to none (Prometheus only): the process
   * entry (server.ts) passes `process.env` and shuts the provider down.
   */
  env?: Readonly<Record<string, string | undefined>>
  /** Warns about failed OTLP exports and metric collection errors. */
  logger?: Logger
}

/** The OTLP metrics URL the environment asks for, or undefined for none. */
export function otlpMetricsUrl(
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const signal = env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT?.trim()
  if (signal) return signal
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()
  if (!base) return undefined
  return `${base.endsWith('/') ? base : `${base}/`}v1/metrics`
}

const positiveInt = (value: string | undefined, fallback: number): number => {
  const n = Number(value)
  return Number.isInteger(n) && n > 0 ? n : fallback
}

/** The OTLP exporter, logging failed exports (the SDK would only tell the global diag logger). */
function loggedExporter(exporter: PushMetricExporter, logger?: Logger): PushMetricExporter {
  const logged: PushMetricExporter = {
    export: (metrics, done) =>
      exporter.export(metrics, (result) => {
        if (result.error !== undefined) {
          logger?.warn({ err: result.error }, 'OTLP metrics export failed')
        }
        done(result)
      }),
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown(),
  }
  if (exporter.selectAggregationTemporality !== undefined) {
    logged.selectAggregationTemporality = exporter.selectAggregationTemporality.bind(exporter)
  }
  if (exporter.selectAggregation !== undefined) {
    logged.selectAggregation = exporter.selectAggregation.bind(exporter)
  }
  return logged
}

/**
 * A reader the collector pulls from itself: the values as the SDK holds them, cumulative, with
 * nothing to flush or stop (the provider's other readers export; this one is only read).
 */
class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export function createTelemetry(options: TelemetryOptions = {}): Telemetry {
  const env = options.env ?? {}
  const logger = options.logger
  // Its own HTTP server stays off: the app serves the text on its own port.
  const prometheus = new PrometheusExporter({ preventServerStart: true })
  // No prefix, no timestamps, no resource labels, target_info kept, and no scope labels: the
  // scope is always this collector, a label on every line would say nothing.
  const serializer = new PrometheusSerializer('', false, undefined, false, true)
  const pull = new PullReader()
  const readers: IMetricReader[] = [prometheus, pull]
  const url = otlpMetricsUrl(env)
  if (url !== undefined) {
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: loggedExporter(new OTLPMetricExporter({ url }), logger),
        exportIntervalMillis: positiveInt(env.OTEL_METRIC_EXPORT_INTERVAL, 60_000),
        exportTimeoutMillis: positiveInt(env.OTEL_METRIC_EXPORT_TIMEOUT, 30_000),
      }),
    )
  }
  const provider = new MeterProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || 'tally-collector' }),
    ),
    readers,
  })
  const meter = provider.getMeter('tally-collector')

  const batches: Counter = meter.createCounter('tally_ingest_batches', {
    description: 'Agent batches acknowledged, by outcome.',
  })
  const samples: Counter = meter.createCounter('tally_ingest_samples', {
    description: 'Host samples stored.',
  })
  const rejected: Counter = meter.createCounter('tally_ingest_rejected', {
    description: 'Ingest requests refused with a 4xx, by reason.',
  })
  const unavailable: Counter = meter.createCounter('tally_ingest_unavailable', {
    description: 'Ingest requests answered 503 because the store failed.',
  })
  const duration: Histogram = meter.createHistogram('tally_ingest_duration_seconds', {
    description: 'POST /v1/ingest, from the start of the request to the answer, by status.',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  const requests: Counter = meter.createCounter('tally_http_requests', {
    description: 'HTTP requests answered, by route label (template, or cases) and status.',
  })

  // Every series the ingest counters can have starts at 0, so rate() sees their first increase.
  for (const outcome of ['stored', 'duplicate'] as const) batches.add(0, { outcome })
  samples.add(0)
  for (const reason of REJECT_REASONS) rejected.add(0, { reason })
  unavailable.add(0)

  const middleware: MiddlewareHandler = async (c, next) => {
    const started = performance.now()
    await next()
    const status = String(c.res.status)
    const route = requestRouteLabel(c)
    requests.add(1, { route, status })
    if (route === INGEST_ROUTE) duration.record((performance.now() - started) / 1000, { status })
  }

  let stopping: Promise<void> | undefined
  return {
    batch(outcome, n) {
      batches.add(1, { outcome })
      if (outcome === 'stored') samples.add(n)
    },
    rejected(reason) {
      rejected.add(1, { reason })
    },
    unavailable() {
      unavailable.add(1)
    },
    middleware,
    async prometheus() {
      const { resourceMetrics, errors } = await prometheus.collect()
      if (errors.length > 0) logger?.warn({ errors }, 'metric collection errors')
      return serializer.serialize(resourceMetrics)
    },
    async collect() {
      const { resourceMetrics, errors } = await pull.collect()
      if (errors.length > 0) logger?.warn({ errors }, 'metric collection errors')
      return resourceMetrics
    },
    // Bounded, so an OTLP endpoint that is down (the exporter retries) cannot hold up a stop.
    shutdown: () =>
      (stopping ??= provider.shutdown({ timeoutMillis: SHUTDOWN_TIMEOUT_MS }).catch((err) => {
        logger?.warn({ err }, 'metrics shutdown incomplete')
      })),
  }
}
