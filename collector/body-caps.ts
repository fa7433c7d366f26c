/**
 * Request body caps, one table for every route, applied before authentication: a body over its
 * route's cap is answered 413 before it is read (Content-Length checked up front, a chunked body
 * counted while it streams), so an unauthenticated client cannot make the collector hold more
 * than a few KiB. The OpenAPI document states each route's cap from the same table.
 *
 * The caps: what a legitimate request needs, with room. Enrollment and small admin requests a
 * few KiB; case requests (free text, subject lists) 64 KiB; agent batches their configured caps
 * (ingest.max_body_bytes, and the tier I ingest's packet segments). A route not in the table
 * (GETs, bodiless POSTs) gets DEFAULT_CAP.
 */
import type { MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { CollectorConfig } from './config.ts'
import { DomainError } from './errors.ts'

const KiB = 1024

/** For a route that takes no body, or one the table does not name. */
export const DEFAULT_CAP = 1 * KiB

/** A case request or step: free text, people, subjects and their addresses. */
const CASE_CAP = 64 * KiB

/** `METHOD /path/{param}`, as the OpenAPI document names operations. */
export type RouteKey = `${'POST' | 'PUT' | 'PATCH' | 'DELETE'} /${string}`

export function bodyCaps(config: CollectorConfig): Record<RouteKey, number> {
  return {
    'POST /v1/agents/enroll': 4 * KiB,
    'POST /v1/ingest': config.ingest.max_body_bytes,
    'POST /v1/restricted/ingest': config.restricted.max_body_bytes,
    'POST /v1/admin/enroll-tokens': 4 * KiB,
    'POST /v1/admin/users': 4 * KiB,
    'POST /v1/admin/users/{id}/roles': 4 * KiB,
    'POST /v1/cases': CASE_CAP,
    'POST /v1/cases/emergency': CASE_CAP,
    'POST /v1/cases/technical': CASE_CAP,
    'POST /v1/cases/oios': CASE_CAP,
    'POST /v1/cases/{id}/written-request': CASE_CAP,
    'POST /v1/cases/{id}/consultation': CASE_CAP,
    'POST /v1/cases/{id}/emergency-confirmation': CASE_CAP,
    'POST /v1/cases/{id}/approval': CASE_CAP,
    'POST /v1/cases/{id}/denial': CASE_CAP,
    'POST /v1/cases/{id}/notice': CASE_CAP,
    'POST /v1/cases/{id}/extension': CASE_CAP,
    'POST /v1/cases/{id}/closing': CASE_CAP,
    'POST /v1/oios/designations': 4 * KiB,
    'POST /v1/register/{register}/checkpoints/{size}/countersign': 4 * KiB,
    // Every file of a bundle with its digest.
    'POST /v1/cases/{id}/exports/{export_id}/receipt': CASE_CAP,
  }
}

interface CompiledCap {
  method: string
  pattern: RegExp
  maxBytes: number
}

function compile(caps: Record<RouteKey, number>): CompiledCap[] {
  return Object.entries(caps).map(([key, maxBytes]) => {
    const [method = '', path = ''] = key.split(' ')
    const pattern = new RegExp(
      `^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[A-Za-z0-9_]+\}/g, '[^/]+')}$`,
    )
    return { method, pattern, maxBytes }
  })
}

const capIn = (compiled: readonly CompiledCap[], method: string, path: string): number =>
  compiled.find((c) => c.method === method && c.pattern.test(path))?.maxBytes ?? DEFAULT_CAP

/** The cap for a request: its route's, or DEFAULT_CAP. */
export function capFor(caps: Record<RouteKey, number>, method: string, path: string): number {
  return capIn(compile(caps), method, path)
}

/** The one middleware, registered before every route and so before any authentication. */
export function bodyCapMiddleware(caps: Record<RouteKey, number>): MiddlewareHandler {
  const compiled = compile(caps)
  const limiters = new Map<number, MiddlewareHandler>()
  const limiter = (maxBytes: number): MiddlewareHandler => {
    let made = limiters.get(maxBytes)
    if (made === undefined) {
      made = bodyLimit({
        maxSize: maxBytes,
        onError: () => {
          throw new DomainError(
            'too_large',
            'body_too_large',
            `request body exceeds ${maxBytes} bytes`,
          )
        },
      })
      limiters.set(maxBytes, made)
    }
    return made
  }
  return async (c, next) => {
    if (c.req.raw.body === null) return next()
    return limiter(capIn(compiled, c.req.method, c.req.path))(c, next)
  }
}
