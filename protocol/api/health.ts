/** The process's own routes: liveness, readiness, metrics and the API document. */
import { z } from 'zod'
import { RETRY_AFTER, route } from './contract.ts'

export const Health = z.strictObject({ status: z.literal('ok') })
export const Ready = z.strictObject({ status: z.literal('ready') })

export const healthz = route({
  method: 'GET',
  path: '/healthz',
  operationId: 'healthz',
  summary: 'The process is up',
  security: 'none',
  status: 200,
  answer: { description: 'up', schema: Health },
})

export const readyz = route({
  method: 'GET',
  path: '/readyz',
  operationId: 'readyz',
  summary: 'The store is reachable and takes writes',
  description:
    'A tiny write, at most every few seconds, decides: a full or read-only store still ' +
    'answers reads. A store failure seen by any request also counts until a write succeeds.',
  security: 'none',
  status: 200,
  answer: { description: 'ready', schema: Ready },
  errors: {
    '503': {
      description:
        'the store is not reachable (`store_unavailable`) or does not take writes ' +
        '(`store_not_writable`)',
      headers: RETRY_AFTER('seconds to wait before asking again'),
    },
  },
})

export const metrics = route({
  method: 'GET',
  path: '/metrics',
  operationId: 'metrics',
  summary: "The collector's own metrics, Prometheus text format 0.0.4",
  security: 'none',
  status: 200,
  answer: {
    description: 'tally_ingest_* and tally_http_requests_total',
    content: { 'text/plain': { schema: { type: 'string' } } },
  },
})

export const openapi = route({
  method: 'GET',
  path: '/v1/openapi.json',
  operationId: 'openapi',
  summary: 'This document',
  security: 'none',
  status: 200,
  answer: {
    description: 'OpenAPI 3.1',
    content: { 'application/json': { schema: { type: 'object' } } },
  },
})

export const HEALTH_RESPONSES = { Health, Ready }
