/**
 * How the agent reads the collector's answer to an upload. Both uploaders use it, the sender of
 * spooled batches (sender.ts) and the tier I uploader (restricted-uploader.ts), so that a 401, a
 * Retry-After or a redirect means the same to both. What is particular to one endpoint (the
 * ingest's acknowledgement and its seq_conflict) stays with its uploader.
 *
 * No schema library here: the tier I path must not load it for this.
 */
import type { AgentResponse } from '../http.ts'

export type UploadAnswer =
  | { kind: 'accepted' }
  /** 401: the credential is revoked or unknown; an operator may fix it, so keep the upload. */
  | { kind: 'credential-rejected' }
  /** A 4xx other than 401, 408 and 429: sending it again will never succeed. */
  | { kind: 'refused' }
  /** 3xx: never followed (it would resend the credential elsewhere); the URL is wrong. */
  | { kind: 'redirected'; location: string | null }
  /** 5xx, 408, 429 or anything else: send again, not before `retryAfterMs` if one was given. */
  | { kind: 'retry'; retryAfterMs?: number }

/** A Retry-After beyond this is taken as a misconfiguration, not as an instruction. */
export const MAX_RETRY_AFTER_MS = 3_600_000

export function classifyAnswer(status: number, headers: AgentResponse['headers']): UploadAnswer {
  if (status >= 200 && status < 300) return { kind: 'accepted' }
  if (status === 401) return { kind: 'credential-rejected' }
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) return { kind: 'refused' }
  if (status >= 300 && status < 400)
    return { kind: 'redirected', location: headers.get('location') }
  const retryAfterMs = parseRetryAfter(headers.get('retry-after'))
  return retryAfterMs === undefined ? { kind: 'retry' } : { kind: 'retry', retryAfterMs }
}

/** Retry-After as delta-seconds or as an HTTP date, clamped to [0, 1 h]. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | undefined {
  if (value === null) return undefined
  const trimmed = value.trim()
  let ms: number
  if (/^\d+$/.test(trimmed)) ms = Number(trimmed) * 1000
  else {
    const date = Date.parse(trimmed)
    if (Number.isNaN(date)) return undefined
    ms = date - nowMs
  }
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS)
}

/** fetch reports "fetch failed" and hides the useful part (ECONNREFUSED, ...) in `cause`. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  if (error.name === 'TimeoutError') return 'request timed out'
  const cause: unknown = error.cause
  if (cause instanceof Error) {
    const code = 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined
    return `${error.message}: ${code ? `${code} ` : ''}${cause.message}`
  }
  return error.message
}
