/**
 * A typed client of the collector's API, built on the contract table (protocol/api/): a call
 * names its route, and the answer comes back parsed by the route's answer schema, so callers
 * (the command line, tests) never cast. A refusal is thrown as an ApiError carrying the
 * problem body.
 */
import { readFileSync } from 'node:fs'
import { httpUrlProblem } from '../common/config.ts'
import { type AnswerOf, type CallOf, pathOf, type RouteContract } from './api/contract.ts'
import { ErrorBody } from './v1.ts'

export interface ApiTarget {
  collectorUrl: string
  token: string
}

export class ApiError extends Error {
  override name = 'ApiError'
  /** The HTTP status of a refusal; absent when the collector could not be asked. */
  readonly status: number | undefined
  readonly problem: ErrorBody | undefined
  constructor(message: string, status?: number, problem?: ErrorBody) {
    super(message)
    this.status = status
    this.problem = problem
  }
}

export function readTokenFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim()
  } catch (err) {
    throw new ApiError(
      `cannot read the token file ${file}: ${(err as Error).message}\n` +
        'The collector writes its admin token to <data_dir>/admin.token at start; pass --token-file or set TALLY_TOKEN.',
    )
  }
}

/** The URL of `path` on the collector; a collector URL without its scheme is named as such. */
function collectorUrlOf(target: ApiTarget, path: string): URL {
  const problem = httpUrlProblem(target.collectorUrl)
  if (problem !== undefined) {
    throw new ApiError(
      `the collector URL ${target.collectorUrl} (--collector or TALLY_COLLECTOR_URL) ${problem}`,
    )
  }
  return new URL(path, target.collectorUrl)
}

async function send(target: ApiTarget, path: string, init: RequestInit, timeoutMs: number) {
  try {
    return await fetch(collectorUrlOf(target, path), {
      ...init,
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch (err) {
    if (err instanceof ApiError) throw err
    throw new ApiError(
      `cannot reach the collector at ${target.collectorUrl}: ${(err as Error).message}`,
    )
  }
}

function refusal(method: string, path: string, status: number, text: string): ApiError {
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    // A proxy's HTML error page, or not a collector at all: said with the status.
  }
  const problem = ErrorBody.safeParse(parsed)
  const detail = problem.success
    ? [
        problem.data.message,
        ...(problem.data.issues ?? []).map((i) => `  ${i.path}: ${i.message}`),
      ].join('\n')
    : text
  return new ApiError(
    `${method} ${path} failed (${status}): ${detail}`,
    status,
    problem.success ? problem.data : undefined,
  )
}

function pathWithQuery(contract: RouteContract, call: CallOf<RouteContract>): string {
  const path = pathOf(contract, call.params as Record<string, string> | undefined)
  const query = new URLSearchParams()
  for (const [key, value] of Object.entries(call.query ?? {})) {
    if (value !== undefined) query.set(key, String(value))
  }
  return query.size > 0 ? `${path}?${query}` : path
}

/** One request; the answer's JSON, or the refusal thrown as an ApiError. */
async function request(
  target: ApiTarget,
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<unknown> {
  const response = await send(
    target,
    path,
    {
      method,
      headers: {
        authorization: `Bearer ${target.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    },
    30_000,
  )
  const text = await response.text()
  if (!response.ok) throw refusal(method, path, response.status, text)
  try {
    return text === '' ? undefined : JSON.parse(text)
  } catch {
    throw new ApiError(
      `${method} ${path}: the answer is not JSON; is ${target.collectorUrl} a Tally collector?`,
    )
  }
}

/** Calls one route of the API; the answer is parsed by its schema. */
export async function call<R extends RouteContract>(
  target: ApiTarget,
  contract: R,
  ...[input]: CallOf<R> extends { params: unknown } | { body: unknown } ? [CallOf<R>] : [CallOf<R>?]
): Promise<AnswerOf<R>> {
  const given = (input ?? {}) as CallOf<RouteContract>
  const path = pathWithQuery(contract, given)
  const parsed = await request(target, contract.method, path, given.body, given.headers)
  const schema = contract.answer.schema
  if (schema === undefined) return parsed as AnswerOf<R>
  const answer = schema.safeParse(parsed)
  if (!answer.success) {
    throw new ApiError(
      `${contract.method} ${path}: the answer does not match the API (${answer.error.issues[0]?.message}); is ${target.collectorUrl} a Tally collector of this version?`,
    )
  }
  return answer.data as AnswerOf<R>
}

/** GET of a file (an export's content): the bytes as they are. */
export async function download(
  target: ApiTarget,
  path: string,
  headers: Record<string, string> = {},
): Promise<Buffer> {
  const response = await send(
    target,
    path,
    { headers: { authorization: `Bearer ${target.token}`, ...headers } },
    120_000,
  )
  const bytes = Buffer.from(await response.arrayBuffer())
  if (!response.ok) {
    const problem = ErrorBody.safeParse(JSON.parse(bytes.toString('utf8') || '{}'))
    throw new ApiError(
      `GET ${path} failed (${response.status}): ${problem.success ? problem.data.message : ''}`,
      response.status,
      problem.success ? problem.data : undefined,
    )
  }
  return bytes
}

/**
 * A call by method and path, for the register audit (collector/register/audit.ts), which walks
 * pages by path and parses what it reads itself; everything else calls a route through `call`.
 */
export const callPath = (
  target: ApiTarget,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<unknown> => request(target, method, path, body)
