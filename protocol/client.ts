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

/** A call as it goes on the wire, whatever its route. */
interface WireCall {
  readonly params?: Readonly<Record<string, string>> | undefined
  readonly query?: Readonly<Record<string, string | number | undefined>> | undefined
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/**
 * A route's call in its wire form. CallOf<R> is a conditional type, which TypeScript cannot
 * relate to WireCall while R is generic; every CallOf<R> has this shape, so this is the one
 * place that says so.
 */
const wireOf = <R extends RouteContract>(input: CallOf<R> | Omit<CallOf<R>, 'body'>): WireCall =>
  input as WireCall

function pathWithQuery(contract: RouteContract, call: WireCall): string {
  const path = pathOf(contract, call.params)
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
  headers: Readonly<Record<string, string>> = {},
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
      body: body === undefined ? null : JSON.stringify(body),
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

/**
 * The call on the wire, and its answer parsed by the route's schema: the one place where the
 * answer's type is stated, after the schema of that type accepted it.
 */
async function answerOf<R extends RouteContract>(
  target: ApiTarget,
  contract: R,
  given: WireCall,
): Promise<AnswerOf<R>> {
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

/** Calls one route of the API; the answer is parsed by its schema. */
export function callRoute<R extends RouteContract>(
  target: ApiTarget,
  contract: R,
  input?: CallOf<R>,
): Promise<AnswerOf<R>> {
  return answerOf(target, contract, input === undefined ? {} : wireOf<R>(input))
}

/** As callRoute; the input may be left out only for a route that takes no parameters nor body. */
export const call = <R extends RouteContract>(
  target: ApiTarget,
  contract: R,
  ...[input]: CallOf<R> extends { params: unknown } | { body: unknown } ? [CallOf<R>] : [CallOf<R>?]
): Promise<AnswerOf<R>> => answerOf(target, contract, input === undefined ? {} : wireOf<R>(input))

/**
 * Calls a route whose body is a document an operator wrote (a case file), sent as written: the
 * collector checks it against the same schema and names each problem in its 400, so the
 * operator reads one set of messages whichever side would have found them.
 */
export function callWithDocument<R extends RouteContract>(
  target: ApiTarget,
  contract: R,
  input: Omit<CallOf<R>, 'body'>,
  document: unknown,
): Promise<AnswerOf<R>> {
  return answerOf(target, contract, { ...wireOf<R>(input), body: document })
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
 * A call by method and path whose answer is not parsed here: for the register audit
 * (collector/register/audit.ts), which treats the collector as a party it does not trust, walks
 * its pages by path and judges every answer's shape itself, so that a malformed answer is a
 * finding of the audit rather than a client error. Everything else calls a route through `call`.
 */
export const callPath = (
  target: ApiTarget,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<unknown> => request(target, method, path, body)
