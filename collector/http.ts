/** What every route shares: the Hono environment and the one shape of an error answer. */
import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { Logger } from 'pino'
import type { z } from 'zod'
import type { ErrorBody } from '../protocol/v1.ts'
import type { AgentIdentity } from './auth/agents.ts'
import type { User } from './auth/users.ts'

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
