import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RECORD_HEADER_BYTES, Spool } from '../../../agent/ship/spool.ts'

let root: string
let dir: string

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tally-spool-'))
  dir = join(root, 'spool')
})

afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

const roomy = { maxRecords: 100, maxBytes: 1_000_000 }

function bodyOf(seq: number, size = 10): Buffer {
  return Buffer.alloc(size, seq % 256)
}

function fileOf(seq: number): string {
  return join(dir, `${String(seq).padStart(16, '0')}.batch`)
}

/** Appends a record and checks the spool gave it the expected seq. */
async function put(spool: Spool, seq: number, size = 10): Promise<void> {
  const result = await spool.append((assigned) => bodyOf(assigned, size))
  expect(result.seq).toBe(seq)
}

const emptyStats = {
  depth: 0,
  bytes: 0,
  inMemory: 0,
  diskFull: false,
  dropped: 0,
  corrupted: 0,
  rejected: 0,
}

async function drainSeqs(spool: Spool): Promise<number[]> {
  const seqs: number[] = []
  for (let record = await spool.oldest(); record; record = await spool.oldest()) {
    seqs.push(record.seq)
    await spool.remove(record.seq)
  }
  return seqs
}

describe('Spool', () => {
  it('hands records back oldest first and forgets removed ones', async () => {
    const spool = await Spool.open(dir, roomy)
    expect(await spool.oldest()).toBeUndefined()
    expect(spool.maxSeq()).toBeUndefined()
    for (const seq of [1, 2, 3]) await put(spool, seq)

    const first = await spool.oldest()
    expect(first?.seq).toBe(1)
    expect(first?.body).toEqual(bodyOf(1))
    // oldest() does not consume: only remove() does.
    expect((await spool.oldest())?.seq).toBe(1)
    await spool.remove(1)
    expect((await spool.oldest())?.seq).toBe(2)
    await spool.remove(3)
    await spool.remove(3)
    expect(spool.stats()).toEqual({ ...emptyStats, depth: 1, bytes: RECORD_HEADER_BYTES + 10 })
    expect(await drainSeqs(spool)).toEqual([2])
    expect((await readdir(dir)).sort()).toEqual(['counters.json', 'next-seq'])
  })

  it('creates a private directory and private files', async () => {
    const spool = await Spool.open(dir, roomy)
    await put(spool, 1)
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    for (const file of [fileOf(1), join(dir, 'next-seq'), join(dir, 'counters.json')]) {
      expect((await stat(file)).mode & 0o777).toBe(0o600)
    }
  })

  it('keeps its records across a reopen', async () => {
    const before = await Spool.open(dir, roomy)
    for (const seq of [1, 2, 3]) await put(before, seq, 100 + seq)
    await before.remove(1)

    const after = await Spool.open(dir, roomy)
    expect(after.maxSeq()).toBe(3)
    expect(after.nextSeq).toBe(4)
    expect(after.stats()).toEqual({
      ...emptyStats,
      depth: 2,
      bytes: 2 * RECORD_HEADER_BYTES + 102 + 103,
    })
    const record = await after.oldest()
    expect(record?.seq).toBe(2)
    expect(record?.body).toEqual(bodyOf(2, 102))
    expect(await drainSeqs(after)).toEqual([2, 3])
    // Numbering goes on after the acknowledged ones, even with the spool empty.
    const third = await Spool.open(dir, roomy)
    await put(third, 4)
  })

  it('deletes a temp file left by an interrupted write, and ignores foreign files', async () => {
    const spool = await Spool.open(dir, roomy)
    await put(spool, 1)
    const leftover = join(dir, '0000000000000002.batch.1234.abcdef.tmp')
    await writeFile(leftover, 'half a record')
    await writeFile(join(dir, 'README'), 'not a record')

    const reopened = await Spool.open(dir, roomy)
    expect((await readdir(dir)).sort()).toEqual([
      '0000000000000001.batch',
      'README',
      'counters.json',
      'next-seq',
    ])
    expect(reopened.stats().depth).toBe(1)
    expect(reopened.maxSeq()).toBe(1)
  })

  it('drops the oldest records when full by count', async () => {
    const spool = await Spool.open(dir, { maxRecords: 3, maxBytes: 1_000_000 })
    for (let seq = 1; seq <= 5; seq += 1) await put(spool, seq)
    expect(spool.stats()).toMatchObject({ depth: 3, dropped: 2 })
    expect(await drainSeqs(spool)).toEqual([3, 4, 5])
    expect(spool.stats().dropped).toBe(2)
  })

  it('drops the oldest records when full by bytes', async () => {
    const recordBytes = RECORD_HEADER_BYTES + 100
    const spool = await Spool.open(dir, { maxRecords: 100, maxBytes: recordBytes * 3 + 10 })
    for (let seq = 1; seq <= 4; seq += 1) await put(spool, seq, 100)
    expect(spool.stats()).toEqual({ ...emptyStats, depth: 3, bytes: recordBytes * 3, dropped: 1 })
    // A larger batch pushes out as many old ones as it needs.
    await put(spool, 5, 250)
    expect(spool.stats()).toMatchObject({ depth: 2, dropped: 3 })
    expect(await drainSeqs(spool)).toEqual([4, 5])
  })

  it('enforces lowered limits on the records it finds at open, and keeps the count across reopens', async () => {
    const big = await Spool.open(dir, roomy)
    for (let seq = 1; seq <= 4; seq += 1) await put(big, seq)
    const small = await Spool.open(dir, { maxRecords: 2, maxBytes: 1_000_000 })
    expect(small.stats()).toMatchObject({ depth: 2, dropped: 2 })
    const again = await Spool.open(dir, { maxRecords: 2, maxBytes: 1_000_000 })
    expect(again.stats()).toMatchObject({ depth: 2, dropped: 2, corrupted: 0 })
  })

  it('rejects a batch larger than the whole spool without touching the others', async () => {
    const spool = await Spool.open(dir, { maxRecords: 10, maxBytes: 1000 })
    await put(spool, 1)
    await expect(spool.append(() => bodyOf(2, 1000))).rejects.toThrow(
      /exceeds the spool's maxBytes/,
    )
    expect(spool.stats()).toMatchObject({ depth: 1, dropped: 0 })
    expect(spool.maxSeq()).toBe(1)
    // The refused batch took no number.
    await put(spool, 2)
  })

  it('gives a number only to a batch it wrote: a build that fails takes none', async () => {
    const spool = await Spool.open(dir, roomy)
    await put(spool, 1)
    await expect(
      spool.append(() => {
        throw new Error('inventory failed')
      }),
    ).rejects.toThrow('inventory failed')
    await put(spool, 2)
    expect((await readFile(join(dir, 'next-seq'), 'utf8')).trim()).toBe('3')
  })

  it('rejects impossible limits', async () => {
    await expect(Spool.open(dir, { maxRecords: 0, maxBytes: 1000 })).rejects.toThrow(/maxRecords/)
    await expect(Spool.open(dir, { maxRecords: 1, maxBytes: 10 })).rejects.toThrow(/maxBytes/)
    await expect(Spool.open(dir, { ...roomy, maxAgeMs: 0 })).rejects.toThrow(/maxAgeMs/)
    await expect(Spool.open(dir, { ...roomy, maxMemoryRecords: 0 })).rejects.toThrow(
      /maxMemoryRecords/,
    )
  })

  it('serializes concurrent appends, reads and removes', async () => {
    const spool = await Spool.open(dir, roomy)
    const appends = Array.from({ length: 20 }, () => spool.append((seq) => bodyOf(seq)))
    const reads = [spool.oldest(), spool.oldest()]
    await Promise.all([...appends, ...reads, spool.remove(1)])
    expect(spool.stats().depth).toBe(19)
    expect(await drainSeqs(spool)).toEqual(Array.from({ length: 19 }, (_, i) => i + 2))
  })

  describe('corrupted records are removed, counted, and skipped', () => {
    async function spoolWithFive(): Promise<Spool> {
      const spool = await Spool.open(dir, roomy)
      for (let seq = 1; seq <= 5; seq += 1) await put(spool, seq, 64)
      return spool
    }

    it('a flipped byte in the body', async () => {
      const spool = await spoolWithFive()
      const file = await readFile(fileOf(1))
      file[RECORD_HEADER_BYTES + 10] = (file[RECORD_HEADER_BYTES + 10] ?? 0) ^ 0xff
      await writeFile(fileOf(1), file)
      expect((await spool.oldest())?.seq).toBe(2)
      expect(spool.stats()).toMatchObject({ depth: 4, corrupted: 1 })
      await expect(stat(fileOf(1))).rejects.toThrow(/ENOENT/)
    })

    it('a truncated file, in the body or in the header', async () => {
      const spool = await spoolWithFive()
      await truncate(fileOf(1), RECORD_HEADER_BYTES + 20)
      await truncate(fileOf(2), 10)
      expect((await spool.oldest())?.seq).toBe(3)
      expect(spool.stats()).toMatchObject({ depth: 3, corrupted: 2 })
    })

    it('garbage under a valid name, an empty file, a bad magic', async () => {
      const spool = await spoolWithFive()
      await writeFile(fileOf(1), Buffer.alloc(200, 0x41))
      await writeFile(fileOf(2), '')
      const file = await readFile(fileOf(3))
      file.write('NOPE', 0, 'ascii')
      await writeFile(fileOf(3), file)
      expect(await drainSeqs(spool)).toEqual([4, 5])
      expect(spool.stats()).toMatchObject({ depth: 0, bytes: 0, corrupted: 3 })
    })

    it('a record whose header names another seq', async () => {
      const spool = await spoolWithFive()
      // A valid record of seq 2, copied under seq 1's name.
      await writeFile(fileOf(1), await readFile(fileOf(2)))
      expect(await drainSeqs(spool)).toEqual([2, 3, 4, 5])
      expect(spool.stats().corrupted).toBe(1)
    })

    it('a record deleted behind the spool', async () => {
      const spool = await spoolWithFive()
      await rm(fileOf(1))
      expect((await spool.oldest())?.seq).toBe(2)
      expect(spool.stats().corrupted).toBe(1)
    })

    it('found after a reopen', async () => {
      await spoolWithFive()
      await writeFile(fileOf(4), 'garbage')
      const reopened = await Spool.open(dir, roomy)
      // Detection is lazy: open() only lists the files.
      expect(reopened.stats()).toMatchObject({ depth: 5, corrupted: 0 })
      expect(await drainSeqs(reopened)).toEqual([1, 2, 3, 5])
      expect(reopened.stats().corrupted).toBe(1)
    })
  })
})

describe('Spool numbering', () => {
  it('recovers a lost or damaged next-seq file from its newest record, and says so', async () => {
    const spool = await Spool.open(dir, roomy)
    expect(spool.recovery.seq?.problem).toMatch(/next-seq: missing$/)
    for (const seq of [1, 2, 3]) await put(spool, seq)
    await spool.remove(1)

    await rm(join(dir, 'next-seq'))
    const lost = await Spool.open(dir, roomy)
    expect(lost.recovery.seq).toEqual({ problem: `${join(dir, 'next-seq')}: missing`, next: 4 })
    await put(lost, 4)

    await writeFile(join(dir, 'next-seq'), '')
    const empty = await Spool.open(dir, roomy)
    expect(empty.recovery.seq).toEqual({ problem: `${join(dir, 'next-seq')}: is empty`, next: 5 })
    await writeFile(join(dir, 'next-seq'), 'x7\n')
    const garbage = await Spool.open(dir, roomy)
    expect(garbage.recovery.seq?.problem).toMatch(/next-seq: is corrupt/)
    await put(garbage, 5)

    const sound = await Spool.open(dir, roomy)
    expect(sound.recovery).toEqual({})
  })

  it('renumbers every waiting record in order after a given seq, moving up and down', async () => {
    const spool = await Spool.open(dir, roomy)
    await put(spool, 1)
    // Records 1, 5, 6: renumbered from 3, record 1 moves up and the others down.
    await writeFile(join(dir, 'next-seq'), '5\n')
    const gapped = await Spool.open(dir, roomy)
    await put(gapped, 5)
    await put(gapped, 6)
    const rewrite = (body: Buffer, seq: number) => Buffer.concat([body, Buffer.from(`>${seq}`)])
    expect(await gapped.renumber(3, rewrite)).toEqual({ count: 3, first: 3, last: 5 })
    expect(gapped.nextSeq).toBe(6)
    expect((await readFile(join(dir, 'next-seq'), 'utf8')).trim()).toBe('6')
    const bodies: string[] = []
    for (let record = await gapped.oldest(); record; record = await gapped.oldest()) {
      bodies.push(`${record.seq}:${record.body.subarray(10).toString()}`)
      await gapped.remove(record.seq)
    }
    // Original order kept: the first record (body of 1s) is now 3, and so on.
    expect(bodies).toEqual(['3:>3', '4:>4', '5:>5'])
    const reopened = await Spool.open(dir, roomy)
    expect(reopened.nextSeq).toBe(6)
  })

  it('renumbers records moving down by more than the spool holds', async () => {
    await writeFile(join(root, 'seq'), '100\n')
    const spool = await Spool.open(dir, { ...roomy, seqFile: join(root, 'seq') })
    for (const seq of [100, 101, 102]) await put(spool, seq)
    expect(await spool.renumber(101, (body) => body)).toEqual({ count: 3, first: 101, last: 103 })
    expect(await drainSeqs(spool)).toEqual([101, 102, 103])
  })
})

describe('Spool losses and age', () => {
  it('reports each loss once: in the next record, again if that record is lost, across reopens', async () => {
    const seen: unknown[] = []
    const options = { maxRecords: 2, maxBytes: 1_000_000 }
    const spool = await Spool.open(dir, options)
    const build = (seq: number, unreported: unknown) => {
      seen.push(unreported)
      return bodyOf(seq)
    }
    const losses = (dropped: number, rejected = 0) => ({ dropped, corrupted: 0, rejected })
    for (let i = 0; i < 4; i += 1) await spool.append(build)
    // Writing 3 dropped 1 (reported by 4); writing 4 dropped 2.
    expect(seen).toEqual([losses(0), losses(0), losses(0), losses(1)])
    // 4, which carried the drop of 1, is rejected: both are reported by the next record.
    await spool.reject(4)
    await spool.append(build)
    expect(seen.at(-1)).toEqual(losses(2, 1))

    // What is carried by a waiting record survives a restart, and is not reported twice.
    const reopened = await Spool.open(dir, options)
    expect(reopened.stats()).toMatchObject({ dropped: 2, rejected: 1, depth: 2 })
    await reopened.remove(3)
    await reopened.append(build)
    expect(seen.at(-1)).toEqual(losses(0))
    // 5 is acknowledged: what it carried is delivered.
    await reopened.remove(5)
    await reopened.append(build)
    expect(seen.at(-1)).toEqual(losses(0))
    // Writing 8 drops 6 (the spool holds two): the next record reports that one drop.
    const again = await Spool.open(dir, options)
    await again.append(build)
    await again.append(build)
    expect(seen.slice(-2)).toEqual([losses(0), losses(1)])
    const counters = JSON.parse(await readFile(join(dir, 'counters.json'), 'utf8'))
    expect(counters).toMatchObject({ dropped: 4, rejected: 1, reported: losses(2, 1) })
  })

  it('restarts damaged counters from 0 and says why', async () => {
    const spool = await Spool.open(dir, { maxRecords: 1, maxBytes: 1_000_000 })
    await put(spool, 1)
    await put(spool, 2)
    await writeFile(join(dir, 'counters.json'), '{"dropped":')
    const reopened = await Spool.open(dir, roomy)
    expect(reopened.recovery.counters).toMatch(/counters\.json: is corrupt/)
    expect(reopened.stats()).toMatchObject({ dropped: 0, depth: 1 })
  })

  it('drops records older than maxAgeMs, at open and before sending, and counts them', async () => {
    let now = Date.now()
    const events: unknown[] = []
    const options = {
      ...roomy,
      maxAgeMs: 60_000,
      now: () => now,
      onEvent: (e: unknown) => events.push(e),
    }
    const spool = await Spool.open(dir, options)
    await put(spool, 1)
    now += 30_000
    await put(spool, 2)
    now += 40_000
    expect((await spool.oldest())?.seq).toBe(2)
    expect(spool.stats()).toMatchObject({ depth: 1, dropped: 1 })
    expect(events).toEqual([{ kind: 'dropped', seq: 1, reason: 'expired' }])
    await expect(stat(fileOf(1))).rejects.toThrow(/ENOENT/)
    // At open the file's time counts: record 2's file is over a minute old by then.
    now = Date.now() + 61_000
    const reopened = await Spool.open(dir, options)
    expect(reopened.stats()).toMatchObject({ depth: 0, dropped: 2 })
  })
})

/** A real small file system to fill: tmpfs needs root (and no container forbidding mounts). */
function mountTmpfs(): string | undefined {
  const mountPoint = mkdtempSync(join(tmpdir(), 'tally-full-'))
  const result = spawnSync('mount', [
    '-t',
    'tmpfs',
    '-o',
    'size=256k,mode=0700',
    'tmpfs',
    mountPoint,
  ])
  return result.status === 0 ? mountPoint : undefined
}
const fullDisk = mountTmpfs()
if (!fullDisk) console.warn('*** SKIPPED: the full-disk spool test needs to mount a tmpfs (root)')
afterAll(() => {
  if (!fullDisk) return
  spawnSync('umount', [fullDisk])
  rmSync(fullDisk, { recursive: true, force: true })
})

describe.skipIf(!fullDisk)('Spool on a full disk (a real 256 KiB tmpfs)', () => {
  const mountPoint = fullDisk as string

  it('holds records in memory, bounded, sends from there, and goes back to disk when space returns', async () => {
    const spoolDir = join(mountPoint, 'spool')
    const events: { kind: string }[] = []
    const spool = await Spool.open(spoolDir, {
      ...roomy,
      maxMemoryRecords: 3,
      onEvent: (e) => events.push(e),
    })
    await put(spool, 1, 8_000)
    // Fill the file system up to the last byte.
    const filler = join(mountPoint, 'filler')
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k'])
    const appended: { seq: number; inMemory: boolean }[] = []
    for (let i = 0; i < 5; i += 1) appended.push(await spool.append((seq) => bodyOf(seq, 8_000)))
    expect(appended).toEqual([2, 3, 4, 5, 6].map((seq) => ({ seq, inMemory: true })))
    expect(events.filter((e) => e.kind === 'disk-full')).toHaveLength(1)
    expect(events.filter((e) => e.kind === 'dropped')).toEqual([
      { kind: 'dropped', seq: 2, reason: 'memory-full' },
      { kind: 'dropped', seq: 3, reason: 'memory-full' },
    ])
    expect(spool.stats()).toMatchObject({ depth: 4, inMemory: 3, diskFull: true, dropped: 2 })
    // No temp file was left behind by the failed writes.
    expect((await readdir(spoolDir)).filter((n) => n.endsWith('.tmp'))).toEqual([])

    // Sent from memory as from disk, oldest first.
    expect((await spool.oldest())?.seq).toBe(1)
    await spool.remove(1)
    const held = await spool.oldest()
    expect(held?.seq).toBe(4)
    expect(held?.body).toEqual(bodyOf(4, 8_000))
    await spool.remove(4)

    await rm(filler)
    expect((await spool.append((seq) => bodyOf(seq, 8_000))).inMemory).toBe(false)
    expect(events.filter((e) => e.kind === 'disk-recovered')).toEqual([
      { kind: 'disk-recovered', flushed: 2 },
    ])
    expect(spool.stats()).toMatchObject({ depth: 3, inMemory: 0, diskFull: false, dropped: 2 })
    expect((await readdir(spoolDir)).filter((n) => n.endsWith('.batch')).sort()).toEqual([
      '0000000000000005.batch',
      '0000000000000006.batch',
      '0000000000000007.batch',
    ])
    // The drops were persisted once the disk took writes again.
    const reopened = await Spool.open(spoolDir, roomy)
    expect(reopened.stats()).toMatchObject({ depth: 3, dropped: 2 })
    expect(reopened.nextSeq).toBe(8)
  })
})
