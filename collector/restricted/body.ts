/**
 * Reads an agent's request body the way POST /v1/ingest does (collector/routes/ingest.ts): the
 * compressed size is capped before the body is read whole (hono's bodyLimit, in the route), the
 * decompressed size while inflating, so a gzip bomb stops at the cap instead of filling memory.
 */
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import type { Context } from 'hono'
import type { CollectorConfig } from '../config.ts'
import { DomainError } from '../errors.ts'

const inflate = promisify(gunzip)

/** The `restricted` settings (config.ts): tier I's caps are settings, as tier T's are. */
export type BodyLimits = CollectorConfig['restricted']

/** The body as JSON; throws the refusal that says why not (415, 413, 400). */
export async function readAgentJson(c: Context, limits: BodyLimits): Promise<unknown> {
  const encoding = (c.req.header('content-encoding') ?? 'identity').toLowerCase()
  if (encoding !== 'gzip' && encoding !== 'identity') {
    throw new DomainError(
      'unsupported_encoding',
      'unsupported_encoding',
      `Content-Encoding ${encoding} is not supported; use gzip`,
    )
  }
  let body: Buffer = Buffer.from(await c.req.arrayBuffer())
  if (encoding === 'gzip') {
    body = await inflated(body, limits.max_decompressed_bytes)
  } else if (body.length > limits.max_decompressed_bytes) {
    throw tooLarge(`body exceeds ${limits.max_decompressed_bytes} bytes`)
  }
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new DomainError(
      'invalid',
      'malformed_json',
      `body is not JSON: ${(err as Error).message}`,
    )
  }
}

const tooLarge = (message: string) => new DomainError('too_large', 'body_too_large', message)

/** Inflates, stopping at `max` bytes: a gzip bomb ends at the cap instead of filling memory. */
async function inflated(body: Buffer, max: number): Promise<Buffer> {
  try {
    return await inflate(body, { maxOutputLength: max })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw tooLarge(`decompressed body exceeds ${max} bytes`)
    }
    throw new DomainError(
      'invalid',
      'malformed_gzip',
      `body is not valid gzip: ${(err as Error).message}`,
    )
  }
}
