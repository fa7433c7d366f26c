/**
 * What keeps the bundled agent small (bench/README.md, "Agent footprint"; the figures themselves
 * come from `npm run bench:footprint`, never from a test): the bundle is pure ASCII, carries no
 * systeminformation and calls no global fetch, and the service runs it with the small-heap options,
 * which this Node accepts.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = new URL('../../', import.meta.url).pathname
const UNIT = join(ROOT, 'deploy', 'systemd', 'tally-agent.service')
const execFileAsync = promisify(execFile)

describe('the agent footprint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-footprint-'))
  const bundle = join(dir, 'tally-agent.mjs')
  let printed = ''
  let text = ''

  beforeAll(async () => {
    const built = await execFileAsync(
      process.execPath,
      ['scripts/build-agent.ts', '--outfile', bundle, '--composition'],
      { cwd: ROOT },
    )
    printed = built.stdout
    text = readFileSync(bundle, 'latin1')
  }, 60_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('is pure ASCII, so V8 holds its source at one byte per character', () => {
    const beyond = [...text].findIndex((c) => c.charCodeAt(0) > 0x7f)
    expect(beyond, `first character beyond ASCII at ${beyond}`).toBe(-1)
    // The escapes keep the meaning: the agent's own non-ASCII-free source still runs.
    expect(printed).toMatch(/KiB {2}zod\n/)
  })

  it('carries no systeminformation and calls no global fetch (undici)', () => {
    const packages = /packages: (.*)$/m.exec(printed)?.[1]?.split(', ') ?? []
    expect(packages.length).toBeGreaterThan(0)
    expect(packages).not.toContain('systeminformation')
    // Only the agent's own client (agent/http.ts) speaks HTTP.
    expect(text).not.toMatch(/(?<![\w.])fetch\(/)
    expect(text).toContain('// agent/http.ts\n')
  })

  it('is run by the service with a small heap, options this Node accepts', async () => {
    const unit = readFileSync(UNIT, 'utf8')
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? ''
    const words = execStart.split(/\s+/)
    const options = words.slice(
      1,
      words.findIndex((w) => w.endsWith('.mjs')),
    )
    expect(options).toEqual(expect.arrayContaining(['--max-semi-space-size=1']))
    expect(unit).toMatch(/^Environment=MALLOC_ARENA_MAX=2$/m)
    const { stdout } = await execFileAsync(process.execPath, [...options, bundle, '--version'])
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
  })
})
