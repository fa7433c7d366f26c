/**
 * The console serves common/register-verify/ to the browser as it is (types stripped, names
 * kept), so the auditor's page runs the code `tally register verify` runs. Here without a
 * browser: every module is served as JavaScript under /console/register-verify/, the served
 * files import one another by their served names, and verify a tampered register exactly as the
 * source does; and stripping them at start puts no warning on the collector's stderr.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Hono } from 'hono'
import { afterAll, describe, expect, it } from 'vitest'
import {
  CONTENT_SECURITY_POLICY,
  consoleAssets,
  securityHeaders,
} from '../../collector/console/assets.ts'
import type { RegisterEntry } from '../../collector/register/model.ts'
import * as signing from '../../collector/register/signing.ts'
import * as source from '../../common/register-verify/entries.ts'
import { GENESIS_HASH } from '../../common/register-verify/model.ts'

const SHARED = join(import.meta.dirname, '../../common/register-verify')

function appServing(assets: ReturnType<typeof consoleAssets>) {
  const app = new Hono()
  app.use('/console/*', securityHeaders)
  app.get('/console/:path{.+}', (c) => assets.serve(c, c.req.param('path')))
  return app
}

/** A short signed chain, one entry's details changed afterwards, another's signature forged. */
function tamperedRegister() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const entries: RegisterEntry[] = []
  let prev = GENESIS_HASH
  for (let seq = 1; seq <= 5; seq++) {
    const unsigned = {
      register: 'itsd' as const,
      seq,
      ts: `2025-01-02T03:04:0${seq}.000Z`,
      kind: 'test.note',
      actor: 'u-1',
      details: { n: seq },
      prev_hash: prev,
    }
    const entry: RegisterEntry = { ...unsigned, hash: signing.entryHash(unsigned) }
    entry.signature = signing.signEntry(entry, privateKey)
    entries.push(entry)
    prev = entry.hash
  }
  entries[1] = { ...(entries[1] as RegisterEntry), details: { n: 99 } }
  entries[3] = {
    ...(entries[3] as RegisterEntry),
    signature: (entries[2] as RegisterEntry).signature,
  }
  return { entries, key: publicKey.export({ format: 'jwk' }) as Record<string, string> }
}

describe('the register verification the console serves', () => {
  let dir: string | undefined
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  // First: Node warns once per process, so a later strip would pass for want of a warning.
  it('strips the types at start without a warning on stderr', async () => {
    // Recorded where Node hands a warning on to be printed (the test runner may not print it).
    const warnings: string[] = []
    const emitWarning = process.emitWarning
    process.emitWarning = ((warning: string | Error) => {
      warnings.push(String(warning))
    }) as typeof process.emitWarning
    try {
      consoleAssets()
    } finally {
      process.emitWarning = emitWarning
    }
    expect(warnings.filter((w) => w.includes('stripTypeScriptTypes'))).toEqual([])
  })

  it('serves every module as JavaScript that imports and verifies as the source does', async () => {
    const app = appServing(consoleAssets())
    const modules = (await readdir(SHARED)).filter((f) => f.endsWith('.ts'))
    dir = await mkdtemp(join(tmpdir(), 'tally-served-verify-'))
    await writeFile(join(dir, 'package.json'), '{"type":"module"}')
    for (const name of modules) {
      const res = await app.request(`/console/register-verify/${name}`)
      expect(res.status, name).toBe(200)
      expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
      expect(res.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY)
      const code = await res.text()
      // Types gone: what a browser parses is JavaScript (the positions kept for its errors).
      expect(code, name).not.toMatch(/\binterface\s+\w+|:\s*Promise<|\bimport\s+type\b/)
      await writeFile(join(dir, name), code)
    }
    expect((await app.request('/console/register-verify/nope.ts')).status).toBe(404)
    expect((await app.request('/console/register-verify/../assets.ts')).status).toBe(404)
    const served = (await import(join(dir, 'entries.ts'))) as typeof source
    const { entries, key } = tamperedRegister()
    const fromSource = await source.verifyEntries(entries, [], key, 'itsd')
    const fromServed = await served.verifyEntries(entries, [], key, 'itsd')
    expect(fromSource.problems.map((p) => [p.seq, p.kind])).toEqual([
      [2, 'changed'],
      [2, 'bad-signature'],
      [4, 'bad-signature'],
    ])
    expect(fromServed).toEqual(fromSource)
  })
})
