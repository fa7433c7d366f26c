/**
 * The collector's key and token files: written atomically (no temp file left, mode 0600), and an
 * empty or corrupt one stops a real `tally collector run` with one line naming the file, no
 * stack trace, instead of starting with a key that verifies nothing or minting a new admin.
 */
import { spawn } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { StateFileError } from '../../common/atomic-file.ts'
import { freePort, tmp } from '../e2e/harness.ts'

const ROOT = new URL('../../', import.meta.url).pathname

describe('loadOrCreateSigningKey', () => {
  it('creates the key 0600 with no temp file left, and loads the same key again', () => {
    const dir = tmp('key-files')
    const file = join(dir, 'grant-signing-key.pem')
    const made = loadOrCreateSigningKey(file)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readdirSync(dir)).toEqual(['grant-signing-key.pem'])
    expect(loadOrCreateSigningKey(file).publicJwk).toEqual(made.publicJwk)
  })

  it.each([
    ['empty', '', /: is empty; restore it from a backup/],
    ['not a key', 'hello\n', /: is corrupt \(.*\); restore it from a backup/],
    [
      'another kind of key',
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
        format: 'pem',
        type: 'pkcs8',
      }),
      /: is corrupt \(an Ed25519 private key is needed, not ec\)/,
    ],
  ])('refuses a file that is %s in one line naming it', (_what, content, message) => {
    const file = join(tmp('key-files'), 'grant-signing-key.pem')
    writeFileSync(file, content)
    let thrown: unknown
    try {
      loadOrCreateSigningKey(file)
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(StateFileError)
    const text = (thrown as Error).message
    expect(text.startsWith(`${file}: `)).toBe(true)
    expect(text).toMatch(message)
    expect(text).not.toContain('\n')
    // Left as it was, for the operator to look at.
    expect(readFileSync(file, 'utf8')).toBe(content)
  })
})

/** Runs `tally collector run` on `dataDir` until it exits (it should, at once). */
async function runCollector(dataDir: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['bin/tally.ts', 'collector', 'run'], {
    cwd: ROOT,
    env: {
      ...process.env,
      TALLY_DATA_DIR: dataDir,
      TALLY_LISTEN_PORT: String(await freePort()),
      TALLY_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stderr }
}

describe('a real collector with a broken key or token file', () => {
  it.each([
    ['grant-signing-key.pem', ''],
    ['grant-signing-key.pem', '-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n'],
    ['register-signing-key.pem', ''],
    ['admin.token', ''],
    ['admin.token', '\u0000\u0000\u0000\u0000'],
  ])('%s holding %j stops it with one line naming the file', async (name, content) => {
    const dataDir = join(tmp('key-files-run'), 'data')
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    const file = join(dataDir, name)
    writeFileSync(file, content, { mode: 0o600 })
    const { code, stderr } = await runCollector(dataDir)
    expect(code).toBe(1)
    const lines = stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'))
    expect(lines, stderr).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(`^tally: ${file.replace(/[.]/g, '\\.')}: is (empty|corrupt)`),
    )
    expect(stderr).not.toMatch(/^\s+at /m)
    expect(readFileSync(file, 'utf8')).toBe(content)
  })
})
