/**
 * The guard against processes left behind: it finds a test's processes by the tag in their
 * environment (even in a group of their own, even re-parented) and below the process that started
 * them, and a run of a test file that leaves processes behind fails, names them and kills them.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findLeftovers, killLeftovers, settleLeftovers } from './leftovers.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'tally-leftovers-'))
const started: number[] = []
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone, as it should be
    }
  }
  rmSync(dir, { recursive: true, force: true })
})

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'
  } catch {
    return false
  }
}

describe('findLeftovers', () => {
  it('finds a tagged process in a group of its own, and a clean-environment child below a root', async () => {
    const tag = `leftovers-test-${process.pid}-${Date.now()}`
    const tagged = spawn('sleep', ['303'], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, TALLY_LEFTOVERS_PROBE: tag },
    })
    const clean = spawn('sleep', ['304'], { stdio: 'ignore', env: { PATH: process.env.PATH } })
    for (const child of [tagged, clean]) started.push(child.pid ?? -1)
    const byTag = findLeftovers('TALLY_LEFTOVERS_PROBE', tag)
    expect(byTag.map((p) => [p.pid, p.pgid, p.command])).toEqual([
      [tagged.pid, tagged.pid, 'sleep 303'],
    ])
    const withTree = findLeftovers('TALLY_LEFTOVERS_PROBE', tag, { root: process.pid })
    expect(withTree.map((p) => p.pid).sort()).toEqual([tagged.pid, clean.pid].sort())

    killLeftovers(withTree)
    expect(
      await settleLeftovers(() => findLeftovers('TALLY_LEFTOVERS_PROBE', tag), 10_000),
    ).toEqual([])
    expect(findLeftovers('TALLY_LEFTOVERS_PROBE', `${tag}-other`)).toEqual([])
  })
})

describe('a test run that leaves processes behind', () => {
  it('fails, names both processes and kills them', async () => {
    const pidsFile = join(dir, 'pids')
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      execFile(
        process.execPath,
        [
          join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'),
          'run',
          '--config',
          'test/setup/fixtures/vitest.config.ts',
        ],
        {
          cwd: ROOT,
          env: {
            ...process.env,
            LEFTOVER_PIDS_FILE: pidsFile,
            // nothing in the fixture ends by itself: no need to wait for it
            TALLY_LEFTOVER_GRACE_MS: '500',
            NO_COLOR: '1',
            CI: '1',
          },
          maxBuffer: 16 * 1024 * 1024,
        },
        (error, stdout, stderr) =>
          resolve({
            code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
            output: `${stdout}\n${stderr}`,
          }),
      )
    })
    const pids = readFileSync(pidsFile, 'utf8').trim().split('\n').map(Number)
    started.push(...pids)
    const [grouped, escaped] = pids
    expect(pids, result.output).toHaveLength(2)
    expect(result.code, result.output).toBe(1)
    // The file's check: the process in its own group, named with its command.
    expect(result.output).toMatch(
      new RegExp(
        `leaves-processes\\.fixture\\.ts left 1 process\\(es\\)[^\\n]*\\n\\s*pid ${grouped} .*sleep 301`,
      ),
    )
    // The run's check: the re-parented one.
    expect(result.output).toMatch(
      new RegExp(`tests left 1 process\\(es\\)[^\\n]*\\n\\s*pid ${escaped} .*sleep 302`),
    )
    for (const pid of pids) expect(alive(pid), `pid ${pid} killed`).toBe(false)
  })
})
