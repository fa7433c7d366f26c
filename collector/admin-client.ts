/**
 * The admin and fleet commands talk to a running collector over its API, with a user token: the
 * embedded engine belongs to the collector process, and a server deployment has no local files.
 */
import { readFileSync } from 'node:fs'
import { httpUrlProblem } from '../common/config.ts'
import { ErrorBody } from '../protocol/v1.ts'

export interface ApiTarget {
  collectorUrl: string
  token: string
}

export class ApiError extends Error {
  override name = 'ApiError'
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

export async function callApi<T>(
  target: ApiTarget,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const url = collectorUrlOf(target, path)
  let response: Response
  try {
    response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${target.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    })
  } catch (err) {
    throw new ApiError(
      `cannot reach the collector at ${target.collectorUrl}: ${(err as Error).message}`,
    )
  }
  const text = await response.text()
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    // A proxy's HTML error page, or not a collector at all: said below with the status.
    if (response.ok)
      throw new ApiError(
        `${method} ${path}: the answer is not JSON; is ${target.collectorUrl} a Tally collector?`,
      )
    parsed = undefined
  }
  if (!response.ok) {
    const problem = ErrorBody.safeParse(parsed)
    const detail = problem.success
      ? [
          problem.data.message,
          ...(problem.data.issues ?? []).map((i) => `  ${i.path}: ${i.message}`),
        ].join('\n')
      : text
    throw new ApiError(`${method} ${path} failed (${response.status}): ${detail}`)
  }
  return parsed as T
}

/** GET of a file (an export's content): the bytes as they are. */
export async function downloadFile(
  target: ApiTarget,
  path: string,
  headers: Record<string, string> = {},
): Promise<Buffer> {
  const url = collectorUrlOf(target, path)
  let response: Response
  try {
    response = await fetch(url, {
      headers: { authorization: `Bearer ${target.token}`, ...headers },
      signal: AbortSignal.timeout(120_000),
    })
  } catch (err) {
    throw new ApiError(
      `cannot reach the collector at ${target.collectorUrl}: ${(err as Error).message}`,
    )
  }
  const bytes = Buffer.from(await response.arrayBuffer())
  if (!response.ok) {
    const problem = ErrorBody.safeParse(JSON.parse(bytes.toString('utf8') || '{}'))
    throw new ApiError(
      `GET ${path} failed (${response.status}): ${problem.success ? problem.data.message : ''}`,
    )
  }
  return bytes
}
