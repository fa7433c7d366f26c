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
  spooledOnDisk,
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

    // The accounting is read from what the agent itself says and keeps, not from timing: its
    // drop lines name the seqs (the oldest in memory go first, so each line is a run of seqs).
    const dropLines = agent.lines.filter((l) => l.msg?.startsWith('batches dropped'))
    expect(dropLines.every((l) => l.reason === 'memory-full')).toBe(true)
    const droppedSeqs: number[] = []
    for (const line of dropLines) {
      const first = Number(line.first_seq)
      const last = Number(line.last_seq)
      expect(last - first + 1, 'a drop line names a run of seqs').toBe(Number(line.dropped))
      for (let seq = first; seq <= last; seq++) droppedSeqs.push(seq)
    }
    expect(droppedSeqs.length).toBeGreaterThan(0)
    expect(new Set(droppedSeqs).size, 'no batch dropped twice').toBe(droppedSeqs.length)

    // Persisted: every drop counted, and each either reported by an acknowledged batch or
    // carried by one still waiting.
    const counters = JSON.parse(readFileSync(join(dir, 'counters.json'), 'utf8')) as {
      dropped: number
      reported: { dropped: number }
      carried?: Record<string, { dropped: number }>
    }
    expect(counters.dropped).toBe(droppedSeqs.length)
    const carried = Object.values(counters.carried ?? {}).reduce((n, c) => n + c.dropped, 0)
    expect(counters.reported.dropped + carried).toBe(counters.dropped)

    // Every seq the agent made is stored, dropped, or still in its spool (a next start sends
    // it): none is lost silently. A batch can be both stored and counted dropped when the agent
    // had no acknowledgement of it at the moment it dropped it (its answer was lost when the
    // collector stopped, or it was still in flight when memory ran over): it cannot know the
    // batch arrived, so it counts the loss. That over-counts a loss, never hides one.
    const perSeq = await queryStore<{ seq: number; records: number; dropped: number }>(
      dataDir,
      `SELECT b.seq AS seq, b.records AS records, ifNull(m.dropped, 0) AS dropped
       FROM (SELECT seq, count() AS records FROM tally.ingest_batches GROUP BY seq) AS b
       LEFT JOIN (SELECT seq, sumIf(value, metric = 'tally.agent.batches.dropped') AS dropped
                  FROM tally.host_metrics GROUP BY seq) AS m USING seq
       ORDER BY seq`,
    )
    for (const b of perSeq) expect(b.records, `batch ${b.seq} stored once`).toBe(1)
    const stored = new Set(perSeq.map((b) => b.seq))
    const stillSpooled = spooledOnDisk(dir)
    const newest = Math.max(...agent.spooledSeqs())
    for (let seq = 1; seq <= newest; seq++) {
      const accounted = stored.has(seq) || droppedSeqs.includes(seq) || stillSpooled.includes(seq)
      expect(accounted, `batch ${seq} stored, dropped or spooled`).toBe(true)
    }
    const storedAndDropped = droppedSeqs.filter((seq) => stored.has(seq))
    if (storedAndDropped.length > 0)
      console.log(`stored, and counted dropped unacknowledged: ${storedAndDropped.join(' ')}`)

    // The collector saw every reported drop: what acknowledged batches carried, plus what the
    // stored batches the agent never heard back about carried (their drops it reports again).
    const unacknowledged = perSeq.filter(
      (b) => droppedSeqs.includes(b.seq) || stillSpooled.includes(b.seq),
    )
    const [health] = await queryStore<{ dropped: number; full: number; held: number }>(
      dataDir,
      `SELECT sumIf(value, metric = 'tally.agent.batches.dropped') AS dropped,
              maxIf(value, metric = 'tally.agent.spool.disk_full') AS full,
              maxIf(value, metric = 'tally.agent.spool.in_memory') AS held
       FROM tally.host_metrics`,
    )
    expect(health).toEqual({
      dropped: counters.reported.dropped + unacknowledged.reduce((n, b) => n + b.dropped, 0),
      full: 1,
      held: expect.any(Number),
    })
    expect(health?.held).toBeGreaterThan(0)
  }, 120_000)
})
