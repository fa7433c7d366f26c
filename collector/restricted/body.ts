/**
 * Reads an agent's request body the way POST /v1/ingest does (collector/routes/ingest.ts): the
 * compressed size is capped before the body is read whole (hono's bodyLimit, in the route), the
 * decompressed size while inflating, so a gzip bomb stops at the cap instead of filling memory.
 */
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import type { Context } from 'hono'
import { problem } from '../http.ts'

const inflate = promisify(gunzip)

const MiB = 1024 * 1024

/**
 * Tier I batches carry packet segments (up to 64 MiB of packets per interval from the agent's
 * recorder, base64 in JSON), so their caps are wider than those of tier T batches.
 */
export interface BodyLimits {
  maxBodyBytes: number
  maxDecompressedBytes: number
}
export const RESTRICTED_BODY_LIMITS: BodyLimits = {
  maxBodyBytes: 128 * MiB,
  maxDecompressedBytes: 160 * MiB,
}

/** The body as JSON, or the answer that says why not (415, 413, 400). */
export async function readAgentJson(
  c: Context,
  limits: BodyLimits,
): Promise<{ ok: true; value: unknown } | { ok: false; response: Response }> {
  const encoding = (c.req.header('content-encoding') ?? 'identity').toLowerCase()
  if (encoding !== 'gzip' && encoding !== 'identity') {
    return {
      ok: false,
      response: problem(
        c,
        415,
        'unsupported_encoding',
        `Content-Encoding ${encoding} is not supported; use gzip`,
      ),
    }
  }
  let body = Buffer.from(await c.req.arrayBuffer())
  if (encoding === 'gzip') {
    try {
      body = await inflate(body, { maxOutputLength: limits.maxDecompressedBytes })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        return {
          ok: false,
          response: problem(
            c,
            413,
            'body_too_large',
            `decompressed body exceeds ${limits.maxDecompressedBytes} bytes`,
          ),
        }
      }
      return {
        ok: false,
        response: problem(
          c,
          400,
          'malformed_gzip',
          `body is not valid gzip: ${(err as Error).message}`,
        ),
      }
    }
  } else if (body.length > limits.maxDecompressedBytes) {
    return {
      ok: false,
      response: problem(
        c,
        413,
        'body_too_large',
        `body exceeds ${limits.maxDecompressedBytes} bytes`,
      ),
    }
  }
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) }
  } catch (err) {
    return {
      ok: false,
      response: problem(c, 400, 'malformed_json', `body is not JSON: ${(err as Error).message}`),
    }
  }
}
