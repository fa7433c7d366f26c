/** What every route shares: the Hono environment and the one shape of an error answer. */
import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { Logger } from 'pino'
import type { z } from 'zod'
import type { ErrorBody } from '../protocol/v1.ts'
import type { AgentIdentity } from './auth/agents.ts'
import type { User } from './auth/users.ts'
import { DomainError, type Failure } from './errors.ts'

export type CollectorEnv = {
  Variables: { agent: AgentIdentity; user: User; log: Logger }
}

export function problem(
  c: Context,
  status: ContentfulStatusCode,
  error: string,
  message: string,
  issues?: ErrorBody['issues'],
): Response {
  const body: ErrorBody = issues === undefined ? { error, message } : { error, message, issues }
  return c.json(body, status)
}

export function zodIssues(err: z.ZodError): NonNullable<ErrorBody['issues']> {
  return err.issues.map((issue) => ({
    path: issue.path.join('.') || '(top level)',
    message: issue.message,
  }))
}

/** Parses a JSON request body against a schema, or answers the 400 that says what is wrong. */
export async function readJson<S extends z.ZodType>(
  c: Context,
  schema: S,
): Promise<{ ok: true; value: z.output<S> } | { ok: false; response: Response }> {
  let raw: unknown
  try {
    raw = JSON.parse(await c.req.text())
  } catch (err) {
    return {
      ok: false,
      response: problem(
        c,
        400,
        'malformed_json',
        `request body is not JSON: ${(err as Error).message}`,
      ),
    }
  }
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    return {
      ok: false,
      response: problem(
        c,
        400,
        'invalid_request',
        'request body does not match the schema',
        zodIssues(parsed.error),
      ),
    }
  }
  return { ok: true, value: parsed.data }
}

/** The one mapping from a domain failure to an HTTP status. */
export const STATUS_OF_FAILURE: Record<Failure, ContentfulStatusCode> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  unprocessable: 422,
  too_large: 413,
  unsupported_encoding: 415,
  unavailable: 503,
}

/** The answer to a DomainError; app.onError adds Retry-After to an `unavailable` one. */
export function problemOf(c: Context, err: DomainError): Response {
  // The code and the message first, as every error answer has them; a field cannot replace them.
  const body: Record<string, unknown> = { error: err.code, message: err.message, ...err.fields }
  body.error = err.code
  body.message = err.message
  if (err.issues !== undefined) body.issues = err.issues
  return c.json(body, STATUS_OF_FAILURE[err.failure])
}

/**
 * Parses a JSON request body against a schema, or throws the 400 that says what is wrong
 * (`malformed_json` or `invalid_request` with the schema's issues).
 */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  let raw: unknown
  try {
    raw = JSON.parse(await c.req.text())
  } catch (err) {
    throw new DomainError(
      'invalid',
      'malformed_json',
      `request body is not JSON: ${(err as Error).message}`,
    )
  }
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    throw new DomainError('invalid', 'invalid_request', 'request body does not match the schema', {
      issues: zodIssues(parsed.error),
    })
  }
  return parsed.data
}
