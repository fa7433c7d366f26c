/**
 * The console's static files (collector/console/static/), read once when the collector starts,
 * and the headers every /console/ answer carries. The register's verification
 * (common/register-verify/) is served beside them, its types stripped, so that the auditor's
 * page runs the very code `tally register verify` runs.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { stripTypeScriptTypes } from 'node:module'
import { extname, join, relative } from 'node:path'
import type { Context, MiddlewareHandler } from 'hono'
import { problem } from '../http.ts'

const STATIC_DIR = join(import.meta.dirname, 'static')
const REGISTER_VERIFY_DIR = join(import.meta.dirname, '..', '..', 'common', 'register-verify')
/** Where the shared verification is served: /console/register-verify/NAME.ts. */
export const REGISTER_VERIFY_PATH = 'register-verify'

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

const asset = (body: Buffer, type: string): Asset => ({
  body,
  type,
  etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
})

function readAssets(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>()
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const type = CONTENT_TYPES[extname(entry.name)]
    if (type === undefined) continue
    const file = join(entry.parentPath, entry.name)
    out.set(relative(dir, file).split('\\').join('/'), asset(readFileSync(file), type))
  }
  return out
}

/**
 * Each module of the shared verification as JavaScript, under its own name: the browser takes
 * a module by its Content-Type, not its extension, so the folder's relative imports
 * (`./bytes.ts`) resolve among the served files as they are, with nothing rewritten. The folder
 * imports nothing else (test/console/console.test.ts holds it to that).
 */
function readRegisterVerify(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>()
  for (const name of readdirSync(dir)) {
    if (extname(name) !== '.ts') continue
    const code = withoutExperimentalWarning(() =>
      stripTypeScriptTypes(readFileSync(join(dir, name), 'utf8'), { mode: 'strip' }),
    )
    out.set(`${REGISTER_VERIFY_PATH}/${name}`, asset(Buffer.from(code), CONTENT_TYPES['.js'] ?? ''))
  }
  return out
}

/**
 * Node 24 flags stripTypeScriptTypes as experimental with a warning on stderr, once per process;
 * the collector's stderr is its operators' log, and the warning says nothing they can act on.
 * The stripping it does is the one Node applies to every file of this project.
 */
function withoutExperimentalWarning<T>(run: () => T): T {
  const emitWarning = process.emitWarning
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string })?.type
    if (type === 'ExperimentalWarning' && String(warning).includes('stripTypeScriptTypes')) return
    ;(emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest)
  }) as typeof process.emitWarning
  try {
    return run()
  } finally {
    process.emitWarning = emitWarning
  }
}

export function consoleAssets(dir = STATIC_DIR, registerVerifyDir = REGISTER_VERIFY_DIR) {
  // Looked up by name in this map only: a path the map does not hold (../, an encoded slash)
  // is a 404, never a read from disk.
  const files = new Map([...readAssets(dir), ...readRegisterVerify(registerVerifyDir)])
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
