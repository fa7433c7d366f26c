/**
 * A real agent whose state directory fills up (a small tmpfs, filled with a file): it keeps
 * running, holds a bounded number of batches in memory and sends them from there, counts and
 * reports every batch it has to drop, and spools to disk again once there is room.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  AgentProcess,
  CollectorProcess,
  freePort,
  queryStore,
  type TallyProcess,
  tmp,
  waitFor,
} from './harness.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function mountTmpfs(): string | undefined {
  const mountPoint = mkdtempSync(join(tmpdir(), 'tally-agent-full-'))
  const result = spawnSync('mount', [
    '-t',
    'tmpfs',
    '-o',
    'size=512k,mode=0700',
    'tmpfs',
    mountPoint,
  ])
  if (result.status === 0) return mountPoint
  rmSync(mountPoint, { recursive: true, force: true })
  return undefined
}

const stateDir = mountTmpfs()
if (!stateDir) {
  console.warn('*** SKIPPED: the agent full-disk test needs to mount a tmpfs (run it as root)')
}

const started: TallyProcess[] = []
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop('SIGKILL')))
  if (stateDir) {
    spawnSync('umount', [stateDir])
    rmSync(stateDir, { recursive: true, force: true })
  }
})

const DISK_FULL =
  'the state directory refuses writes (disk full or read-only): batches are held in memory and sent from there; the oldest are dropped beyond spool.memory_batches'
const DISK_BACK = 'the state directory takes writes again: spooling to disk resumed'

describe.skipIf(!stateDir)('agent on a full disk (needs root for a tmpfs: skipped without)', () => {
  it('keeps running, sends from memory, counts every drop, and spools again when space returns', async () => {
    const dir = stateDir as string
    const dataDir = tmp('full-data')
    const port = await freePort()
    let collector = await new CollectorProcess(dataDir, port).ready()
    started.push(collector)
    const agent = new AgentProcess(dir, collector.url, {
      TALLY_ENROLLMENT_TOKEN: await collector.enrollToken('site-a'),
      TALLY_CAPTURE_INTERFACE: 'none',
      TALLY_SPOOL_MEMORY_BATCHES: '3',
    })
    started.push(agent)
    const lastSeq = async () => (await collector.fleet())[0]?.last_seq ?? 0
    await waitFor('first batches', async () => ((await lastSeq()) >= 2 ? true : undefined))

    const filler = join(dir, 'filler')
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k'])
    await waitFor('disk full said', () => (agent.logged(DISK_FULL).length > 0 ? true : undefined))
    // Still delivering, from memory.
    const atFull = await lastSeq()
    await waitFor('delivered from memory', async () =>
      (await lastSeq()) >= atFull + 2 ? true : undefined,
    )

    // The collector goes away: memory fills beyond its bound of 3 and the oldest are dropped.
    await collector.stop('SIGTERM')
    await waitFor('drops', () =>
      agent.lines.some((l) => l.msg?.startsWith('batches dropped') && l.reason === 'memory-full')
        ? true
        : undefined,
    )
    await sleep(1_500)
    collector = await new CollectorProcess(dataDir, port).ready()
    started.push(collector)
    const afterOutage = Math.max(...agent.spooledSeqs())
    await waitFor('backlog from memory delivered', async () =>
      (await lastSeq()) >= afterOutage ? true : undefined,
    )

    rmSync(filler)
    await waitFor('recovery said', () => (agent.logged(DISK_BACK).length > 0 ? true : undefined))
    const recoveredAt = agent.lines.findIndex((l) => l.msg === DISK_BACK)
    await waitFor('spooled to disk again', () =>
      agent.lines
        .slice(recoveredAt)
        .filter((l) => l.msg === 'batch spooled' && l.in_memory === undefined).length >= 2
        ? true
        : undefined,
    )
    expect(agent.child.exitCode, 'the agent never exited').toBeNull()
    expect(await agent.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    await collector.stop('SIGTERM')

    // Said once each way.
    expect(agent.logged(DISK_FULL)).toHaveLength(1)
    expect(agent.logged(DISK_BACK)).toHaveLength(1)
    const dropLines = agent.lines.filter((l) => l.msg?.startsWith('batches dropped'))
    const dropped = dropLines.reduce((sum, l) => sum + Number(l.dropped), 0)
    expect(dropped).toBeGreaterThan(0)
    expect(dropLines.every((l) => l.reason === 'memory-full')).toBe(true)

    // Every drop is counted on disk and reported to the collector, once.
    const counters = JSON.parse(readFileSync(join(dir, 'counters.json'), 'utf8')) as {
      dropped: number
      reported: { dropped: number }
    }
    expect(counters.dropped).toBe(dropped)
    const [health] = await queryStore<{ dropped: number; full: number; held: number }>(
      dataDir,
      `SELECT sumIf(value, metric = 'tally.agent.batches.dropped') AS dropped,
              maxIf(value, metric = 'tally.agent.spool.disk_full') AS full,
              maxIf(value, metric = 'tally.agent.spool.in_memory') AS held
       FROM tally.host_metrics`,
    )
    expect(health).toEqual({ dropped, full: 1, held: expect.any(Number) })
    expect(health?.held).toBeGreaterThan(0)

    // Nothing else is missing: the stored seqs are all the seqs but the dropped ones.
    const stored = await queryStore<{ seq: number }>(
      dataDir,
      'SELECT DISTINCT seq FROM tally.ingest_batches ORDER BY seq',
    )
    const newest = Math.max(...agent.spooledSeqs())
    expect(stored.length + dropped).toBe(newest)
  }, 120_000)
})
