/**
 * The one error type of the collector's domain. Services say what went wrong in the domain's
 * words (a failure kind and a stable code a client can branch on); the HTTP status and the
 * answer's shape are decided in one place, `app.onError` through `problemOf` (http.ts), the way
 * Hono's HTTPException carries a response. Domain code therefore neither builds responses nor
 * knows status numbers, and routes do not catch: they let the error through.
 */
import type { ErrorBody } from '../protocol/v1.ts'

/** What kind of refusal or failure; each maps to exactly one HTTP status (http.ts). */
export type Failure =
  /** The request itself is wrong: malformed, or values that cannot be (400). */
  | 'invalid'
  /** No credential, or one that is not (any longer) valid (401). */
  | 'unauthenticated'
  /** A known caller whose role, scope or separation of duties forbids this (403). */
  | 'forbidden'
  /** Nothing by that id, or nothing this caller may know of (404). */
  | 'not_found'
  /** The state of things refuses this step now (409). */
  | 'conflict'
  /** Well-formed but implausible, so sending it again cannot succeed (422). */
  | 'unprocessable'
  /** More than the collector takes in one request or answer (413). */
  | 'too_large'
  /** A body in an encoding the collector does not read (415). */
  | 'unsupported_encoding'
  /** A dependency cannot work now; the caller may retry later (503 with Retry-After). */
  | 'unavailable'

export type ProblemIssue = NonNullable<ErrorBody['issues']>[number]

export interface DomainErrorOptions {
  /** Per-field problems, answered as the body's `issues`. */
  issues?: ProblemIssue[]
  /** Further fields of the answer (e.g. `last_seq` of a seq conflict); never tier I values. */
  fields?: Record<string, unknown>
  /** The underlying error, for the log only: never sent to the client. */
  cause?: unknown
}

export class DomainError extends Error {
  override name = 'DomainError'
  readonly failure: Failure
  /** Stable, snake_case, part of the API: clients and tests branch on it. */
  readonly code: string
  readonly issues: ProblemIssue[] | undefined
  readonly fields: Record<string, unknown> | undefined

  constructor(failure: Failure, code: string, message: string, options: DomainErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.failure = failure
    this.code = code
    this.issues = options.issues
    this.fields = options.fields
  }
}

/**
 * The register could not be written (or read where a step depends on it), so the access it was
 * to record must not happen: every step fails closed with this one error.
 */
export class RegisterUnavailable extends DomainError {
  override name = 'RegisterUnavailable'
  /** What failed, for the log; the client gets the fixed message. */
  readonly detail: string

  constructor(detail: string, options: { cause?: unknown } = {}) {
    super(
      'unavailable',
      'register_unavailable',
      'the register could not be written, so nothing was done; retry later',
      options,
    )
    this.detail = detail
  }
}
