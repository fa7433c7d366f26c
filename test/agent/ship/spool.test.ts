import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
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
    for (const seq of [1, 2, 3]) await spool.append(seq, bodyOf(seq))

    const first = await spool.oldest()
    expect(first?.seq).toBe(1)
    expect(first?.body).toEqual(bodyOf(1))
    // oldest() does not consume: only remove() does.
    expect((await spool.oldest())?.seq).toBe(1)
    await spool.remove(1)
    expect((await spool.oldest())?.seq).toBe(2)
    await spool.remove(3)
    await spool.remove(3)
    expect(spool.stats()).toEqual({
      depth: 1,
      bytes: RECORD_HEADER_BYTES + 10,
      dropped: 0,
      corrupted: 0,
    })
    expect(await drainSeqs(spool)).toEqual([2])
    expect(await readdir(dir)).toEqual([])
  })

  it('creates a private directory and private files', async () => {
    const spool = await Spool.open(dir, roomy)
    await spool.append(7, bodyOf(7))
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    expect((await stat(fileOf(7))).mode & 0o777).toBe(0o600)
  })

  it('keeps its records across a reopen', async () => {
    const before = await Spool.open(dir, roomy)
    for (const seq of [5, 6, 9]) await before.append(seq, bodyOf(seq, 100 + seq))
    await before.remove(5)

    const after = await Spool.open(dir, roomy)
    expect(after.maxSeq()).toBe(9)
    expect(after.stats()).toEqual({
      depth: 2,
      bytes: 2 * RECORD_HEADER_BYTES + 106 + 109,
      dropped: 0,
      corrupted: 0,
    })
    const record = await after.oldest()
    expect(record?.seq).toBe(6)
    expect(record?.body).toEqual(bodyOf(6, 106))
    expect(await drainSeqs(after)).toEqual([6, 9])
  })

  it('deletes a temp file left by an interrupted write, and ignores foreign files', async () => {
    const spool = await Spool.open(dir, roomy)
    await spool.append(1, bodyOf(1))
    const leftover = join(dir, '0000000000000002.batch.1234.abcdef.tmp')
    await writeFile(leftover, 'half a record')
    await writeFile(join(dir, 'README'), 'not a record')

    const reopened = await Spool.open(dir, roomy)
    expect((await readdir(dir)).sort()).toEqual(['0000000000000001.batch', 'README'])
    expect(reopened.stats().depth).toBe(1)
    expect(reopened.maxSeq()).toBe(1)
  })

  it('drops the oldest records when full by count', async () => {
    const spool = await Spool.open(dir, { maxRecords: 3, maxBytes: 1_000_000 })
    for (let seq = 1; seq <= 5; seq += 1) await spool.append(seq, bodyOf(seq))
    expect(spool.stats()).toMatchObject({ depth: 3, dropped: 2 })
    expect(await drainSeqs(spool)).toEqual([3, 4, 5])
    expect(spool.stats().dropped).toBe(2)
  })

  it('drops the oldest records when full by bytes', async () => {
    const recordBytes = RECORD_HEADER_BYTES + 100
    const spool = await Spool.open(dir, { maxRecords: 100, maxBytes: recordBytes * 3 + 10 })
    for (let seq = 1; seq <= 4; seq += 1) await spool.append(seq, bodyOf(seq, 100))
    expect(spool.stats()).toEqual({ depth: 3, bytes: recordBytes * 3, dropped: 1, corrupted: 0 })
    // A larger batch pushes out as many old ones as it needs.
    await spool.append(5, bodyOf(5, 250))
    expect(spool.stats()).toMatchObject({ depth: 2, dropped: 3 })
    expect(await drainSeqs(spool)).toEqual([4, 5])
  })

  it('enforces lowered limits on the records it finds at open, and counts only its own drops', async () => {
    const big = await Spool.open(dir, roomy)
    for (let seq = 1; seq <= 4; seq += 1) await big.append(seq, bodyOf(seq))
    const small = await Spool.open(dir, { maxRecords: 2, maxBytes: 1_000_000 })
    expect(small.stats()).toMatchObject({ depth: 2, dropped: 2 })
    const again = await Spool.open(dir, { maxRecords: 2, maxBytes: 1_000_000 })
    expect(again.stats()).toMatchObject({ depth: 2, dropped: 0, corrupted: 0 })
  })

  it('rejects a batch larger than the whole spool without touching the others', async () => {
    const spool = await Spool.open(dir, { maxRecords: 10, maxBytes: 1000 })
    await spool.append(1, bodyOf(1))
    await expect(spool.append(2, bodyOf(2, 1000))).rejects.toThrow(/exceeds the spool's maxBytes/)
    expect(spool.stats()).toMatchObject({ depth: 1, dropped: 0 })
    expect(spool.maxSeq()).toBe(1)
  })

  it('rejects a seq that is not above the newest record', async () => {
    const spool = await Spool.open(dir, roomy)
    await spool.append(3, bodyOf(3))
    await expect(spool.append(3, bodyOf(3))).rejects.toThrow(/not above/)
    await expect(spool.append(2, bodyOf(2))).rejects.toThrow(/not above/)
    await expect(spool.append(0, bodyOf(0))).rejects.toThrow(/positive/)
    await expect(spool.append(1.5, bodyOf(1))).rejects.toThrow(/positive/)
  })

  it('rejects impossible limits', async () => {
    await expect(Spool.open(dir, { maxRecords: 0, maxBytes: 1000 })).rejects.toThrow(/maxRecords/)
    await expect(Spool.open(dir, { maxRecords: 1, maxBytes: 10 })).rejects.toThrow(/maxBytes/)
  })

  it('serializes concurrent appends, reads and removes', async () => {
    const spool = await Spool.open(dir, roomy)
    const appends = Array.from({ length: 20 }, (_, i) => spool.append(i + 1, bodyOf(i + 1)))
    const reads = [spool.oldest(), spool.oldest()]
    await Promise.all([...appends, ...reads, spool.remove(1)])
    expect(spool.stats().depth).toBe(19)
    expect(await drainSeqs(spool)).toEqual(Array.from({ length: 19 }, (_, i) => i + 2))
  })

  describe('corrupted records are removed, counted, and skipped', () => {
    async function spoolWithFive(): Promise<Spool> {
      const spool = await Spool.open(dir, roomy)
      for (let seq = 1; seq <= 5; seq += 1) await spool.append(seq, bodyOf(seq, 64))
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
