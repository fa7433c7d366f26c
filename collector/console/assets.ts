/**
 * The console's static files (collector/console/static/), read once when the collector starts,
 * and the headers every /console/ answer carries.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { extname, join, relative } from 'node:path'
import type { Context, MiddlewareHandler } from 'hono'
import { problem } from '../http.ts'

const STATIC_DIR = join(import.meta.dirname, 'static')

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

/**
 * Only the console's own files, nothing inline (a script injected into a page cannot run), no
 * frame around it (no clickjacking), forms posting only here, no plugin, no <base> rewrite.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next()
  c.res.headers.set('Content-Security-Policy', CONTENT_SECURITY_POLICY)
  c.res.headers.set('X-Content-Type-Options', 'nosniff')
  c.res.headers.set('Referrer-Policy', 'no-referrer')
  c.res.headers.set('X-Frame-Options', 'DENY')
  c.res.headers.set('Cross-Origin-Opener-Policy', 'same-origin')
  c.res.headers.set('Cross-Origin-Resource-Policy', 'same-origin')
  // Files revalidate (an upgraded collector serves its own console at once); answers about the
  // session are never stored.
  if (!c.res.headers.has('Cache-Control')) c.res.headers.set('Cache-Control', 'no-store')
}

interface Asset {
  body: Buffer
  type: string
  etag: string
}

function readAssets(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>()
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const type = CONTENT_TYPES[extname(entry.name)]
    if (type === undefined) continue
    const file = join(entry.parentPath, entry.name)
    const body = readFileSync(file)
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
    out.set(relative(dir, file).split('\\').join('/'), { body, type, etag })
  }
  return out
}

export function consoleAssets(dir = STATIC_DIR) {
  // Looked up by name in this map only: a path the map does not hold (../, an encoded slash)
  // is a 404, never a read from disk.
  const files = readAssets(dir)
  return {
    names: () => [...files.keys()],
    serve(c: Context, path: string): Response {
      const asset = files.get(path)
      if (asset === undefined) return problem(c, 404, 'not_found', 'no such console file')
      const headers = {
        'Content-Type': asset.type,
        ETag: asset.etag,
        'Cache-Control': 'no-cache',
      }
      if (c.req.header('if-none-match') === asset.etag) return c.body(null, 304, headers)
      return c.body(new Uint8Array(asset.body), 200, headers)
    },
  }
}
