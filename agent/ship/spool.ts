/**
 * A bounded on-disk spool of batches waiting for the collector's acknowledgement. The spool also
 * hands out the batches' sequence numbers, inside the write, so that a number and its batch
 * become durable together: a crash before the write leaves the number free for the next batch,
 * never a gap.
 *
 * One file per record, `<seq zero-padded to 16 digits>.batch`, so that lexical order is seq order
 * and 16 digits hold every safe integer. A record file is a 52-byte header then the body:
 *
 *   offset  size  field
 *        0     4  magic "TLYB"
 *        4     2  format version (1), big-endian
 *        6     2  header length (52), so a later version can grow the header
 *        8     8  seq, big-endian
 *       16     4  body length, big-endian
 *       20    32  SHA-256 of the body
 *       52     n  body (gzip'd JSON, opaque here)
 *
 * Every file (records, the next-seq file, the counters file) is written atomically (temp file,
 * fsync, rename, directory fsync), so a `kill -9` at any moment leaves either the whole file or
 * the previous one (plus perhaps a record's temp file, which `open()` deletes).
 *
 * The next seq is the larger of the next-seq file and the newest record + 1, so a lost or damaged
 * next-seq file costs nothing while records are spooled; with an empty spool it restarts low and
 * the collector's `seq_conflict` answer tells the agent where to resume (`renumber()`).
 *
 * A full or read-only disk (ENOSPC, EDQUOT, EROFS) is not fatal: records then wait in memory, at
 * most `maxMemoryRecords` of them (the oldest beyond are dropped and counted), are sent from
 * there, and go to disk first thing once a write succeeds again.
 *
 * The loss counters (dropped, corrupted, rejected) are persisted, with what each waiting record
 * carries of them and what acknowledged records delivered: a loss is reported by the next batch
 * built, and if that batch is itself lost (dropped, rejected, damaged) the next one reports it
 * again; so every loss reaches the collector once, across restarts too.
 *
 * Corruption is detected lazily, in `oldest()`, when a record is about to be sent: `open()` only
 * lists names and sizes, so it stays cheap on a large spool, and every record is still verified
 * exactly once before it can leave. A corrupted record is removed and counted, never fatal.
 */
import { createHash } from 'node:crypto'
import { lstat, mkdir, readdir, readFile, unlink, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import {
  errorCode,
  isNoSpaceError,
  readStateFileAsync,
  StateFileError,
  writeFileAtomicAsync,
} from '../../common/atomic-file.ts'

export interface SpoolOptions {
  /** Most records kept on disk; appending beyond drops the oldest. */
  maxRecords: number
  /** Most bytes kept on disk, headers included; appending beyond drops the oldest. */
  maxBytes: number
  /** A record older than this (since it was first spooled) is dropped unsent. Default 7 days. */
  maxAgeMs?: number
  /** Records held in memory while the disk refuses writes; beyond, the oldest go. Default 60. */
  maxMemoryRecords?: number
  /** Where the next seq is kept. Default: `next-seq` in the spool directory. */
  seqFile?: string
  /** Where the loss counters are kept. Default: `counters.json` in the spool directory. */
  countersFile?: string
  /** Wall clock for record ages; injectable for tests. */
  now?: () => number
  onEvent?: (event: SpoolEvent) => void
}

export type DropReason = 'full' | 'expired' | 'memory-full'

export type SpoolEvent =
  /** A write failed for lack of space (or a read-only disk): records now wait in memory. */
  | { kind: 'disk-full'; code: string; message: string }
  /** Writes succeed again; `flushed` records moved from memory to disk. */
  | { kind: 'disk-recovered'; flushed: number }
  | { kind: 'dropped'; seq: number; reason: DropReason }
  | { kind: 'corrupted'; seq: number; problem: string }

export interface LossCounters {
  /** Records dropped unsent: spool full, too old, or beyond the memory bound on a full disk. */
  dropped: number
  /** Records found damaged on disk (and removed). */
  corrupted: number
  /** Records the collector refused for good. */
  rejected: number
}

export interface SpoolRecord {
  seq: number
  body: Buffer
}

export interface SpoolStats extends LossCounters {
  /** Records waiting, on disk and in memory. */
  depth: number
  /** On-disk size of the records, headers included. */
  bytes: number
  /** Records held in memory because the disk refused them. */
  inMemory: number
  /** True while the last write to the state directory failed for lack of space. */
  diskFull: boolean
}

/** What `open()` found wrong in the state files and recovered from. */
export interface SpoolRecovery {
  /** The next-seq file was missing or unreadable: why, and where numbering resumes. */
  seq?: { problem: string; next: number }
  /** The counters file was unreadable: why; the counters restarted from 0. */
  counters?: string
}

/** Builds a record's body once its seq is known; `unreported` is the losses to report in it. */
export type BuildRecord = (seq: number, unreported: LossCounters) => Buffer | Promise<Buffer>

const MAGIC = Buffer.from('TLYB', 'ascii')
const FORMAT_VERSION = 1
export const RECORD_HEADER_BYTES = 52
const SEQ_DIGITS = 16
const RECORD_NAME = /^(\d{16})\.batch$/
const TEMP_NAME = /^\d{16}\.batch\.[0-9a-z.-]+\.tmp$/
const DAY_MS = 86_400_000
export const DEFAULT_MAX_AGE_MS = 7 * DAY_MS
export const DEFAULT_MAX_MEMORY_RECORDS = 60

interface DiskEntry {
  seq: number
  size: number
  /** When the record was first spooled (its file's mtime, kept across renumbering). */
  writtenAt: number
}

type ResolvedOptions = Required<Omit<SpoolOptions, 'onEvent'>>

interface MemoryEntry {
  seq: number
  body: Buffer
  writtenAt: number
}

const LOSSES = ['dropped', 'corrupted', 'rejected'] as const
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const CountersFile = z.object({
  dropped: count,
  corrupted: count,
  rejected: count,
  reported: z.object({ dropped: count, corrupted: count, rejected: count }),
  carried: z
    .record(z.string(), z.object({ dropped: count, corrupted: count, rejected: count }))
    .default({}),
})

const zero = (): LossCounters => ({ dropped: 0, corrupted: 0, rejected: 0 })

function recordName(seq: number): string {
  return `${String(seq).padStart(SEQ_DIGITS, '0')}.batch`
}

function isValidSeq(seq: number): boolean {
  return Number.isSafeInteger(seq) && seq >= 1
}

function parseSeq(data: Buffer): number {
  const seq = Number(data.toString('utf8').trim())
  if (!isValidSeq(seq)) throw new Error('not a positive integer')
  return seq
}

function encodeRecord(seq: number, body: Buffer): Buffer {
  const header = Buffer.alloc(RECORD_HEADER_BYTES)
  MAGIC.copy(header, 0)
  header.writeUInt16BE(FORMAT_VERSION, 4)
  header.writeUInt16BE(RECORD_HEADER_BYTES, 6)
  header.writeBigUInt64BE(BigInt(seq), 8)
  header.writeUInt32BE(body.length, 16)
  createHash('sha256').update(body).digest().copy(header, 20)
  return Buffer.concat([header, body])
}

/** The body if `file` is an intact record of `seq`, otherwise why it is not. */
function decodeRecord(seq: number, file: Buffer): { body: Buffer } | { problem: string } {
  if (file.length < RECORD_HEADER_BYTES) return { problem: `short file (${file.length} bytes)` }
  if (!file.subarray(0, 4).equals(MAGIC)) return { problem: 'bad magic' }
  const version = file.readUInt16BE(4)
  if (version !== FORMAT_VERSION) return { problem: `unknown format version ${version}` }
  if (file.readUInt16BE(6) !== RECORD_HEADER_BYTES) return { problem: 'bad header length' }
  const headerSeq = file.readBigUInt64BE(8)
  if (headerSeq !== BigInt(seq)) return { problem: `header seq ${headerSeq} does not match name` }
  const length = file.readUInt32BE(16)
  if (length !== file.length - RECORD_HEADER_BYTES) {
    return { problem: `body length ${length} but ${file.length - RECORD_HEADER_BYTES} on disk` }
  }
  const body = file.subarray(RECORD_HEADER_BYTES)
  const checksum = createHash('sha256').update(body).digest()
  if (!checksum.equals(file.subarray(20, RECORD_HEADER_BYTES))) return { problem: 'bad checksum' }
  return { body }
}

/** Removes a file; a missing one, or a disk that refuses (read-only), is not an error here. */
function resolveOptions(dir: string, options: SpoolOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    maxRecords: options.maxRecords,
    maxBytes: options.maxBytes,
    maxAgeMs: options.maxAgeMs ?? DEFAULT_MAX_AGE_MS,
    maxMemoryRecords: options.maxMemoryRecords ?? DEFAULT_MAX_MEMORY_RECORDS,
    seqFile: options.seqFile ?? join(dir, 'next-seq'),
    countersFile: options.countersFile ?? join(dir, 'counters.json'),
    now: options.now ?? Date.now,
  }
  if (!Number.isSafeInteger(resolved.maxRecords) || resolved.maxRecords < 1) {
    throw new Error(`spool maxRecords must be a positive integer, got ${resolved.maxRecords}`)
  }
  if (!Number.isSafeInteger(resolved.maxBytes) || resolved.maxBytes <= RECORD_HEADER_BYTES) {
    throw new Error(
      `spool maxBytes must be an integer above ${RECORD_HEADER_BYTES}, got ${resolved.maxBytes}`,
    )
  }
  if (!(resolved.maxAgeMs > 0)) {
    throw new Error(`spool maxAgeMs must be positive, got ${resolved.maxAgeMs}`)
  }
  if (!Number.isSafeInteger(resolved.maxMemoryRecords) || resolved.maxMemoryRecords < 1) {
    throw new Error(
      `spool maxMemoryRecords must be a positive integer, got ${resolved.maxMemoryRecords}`,
    )
  }
  return resolved
}

/** The records on disk, oldest first; removes what an interrupted write left. */
async function scanRecords(dir: string): Promise<DiskEntry[]> {
  const index: DiskEntry[] = []
  for (const name of await readdir(dir)) {
    if (TEMP_NAME.test(name)) {
      // A write interrupted before its rename: the record never existed.
      await unlink(join(dir, name)).catch(() => {})
      continue
    }
    const match = RECORD_NAME.exec(name)
    if (!match?.[1]) continue
    const seq = Number(match[1])
    if (!isValidSeq(seq)) continue
    const info = await lstat(join(dir, name))
    if (!info.isFile()) continue
    index.push({ seq, size: info.size, writtenAt: info.mtimeMs })
  }
  return index.sort((a, b) => a.seq - b.seq)
}

/** The next seq: the stored one, but never below `afterNewest`; a lost file goes in `recovery`. */
async function readNextSeq(
  seqFile: string,
  afterNewest: number,
  recovery: SpoolRecovery,
): Promise<number> {
  let stored: number | undefined
  try {
    stored = await readStateFileAsync(seqFile, { parse: parseSeq })
    if (stored === undefined) recovery.seq = { problem: `${seqFile}: missing`, next: 0 }
  } catch (error) {
    if (!(error instanceof StateFileError)) throw error
    recovery.seq = { problem: error.message, next: 0 }
  }
  const next = Math.max(stored ?? 1, afterNewest)
  if (recovery.seq) recovery.seq.next = next
  return next
}

/** The loss counters as persisted; an unreadable file goes in `recovery` and counts restart. */
async function readCounters(
  countersFile: string,
  index: readonly DiskEntry[],
  recovery: SpoolRecovery,
): Promise<{ counters: LossCounters; reported: LossCounters; carried: Map<number, LossCounters> }> {
  let counters = zero()
  let reported = zero()
  const carried = new Map<number, LossCounters>()
  try {
    const file = await readStateFileAsync(countersFile, {
      parse: (data) => CountersFile.parse(JSON.parse(data.toString('utf8'))),
    })
    if (file) {
      counters = { dropped: file.dropped, corrupted: file.corrupted, rejected: file.rejected }
      reported = file.reported
      const waiting = new Set(index.map((entry) => entry.seq))
      for (const [key, losses] of Object.entries(file.carried)) {
        // A record gone while the agent was down went by acknowledgement (every other way out
        // is persisted when it happens): what it carried was delivered.
        if (waiting.has(Number(key))) carried.set(Number(key), losses)
        else for (const loss of LOSSES) reported[loss] += losses[loss]
      }
    }
  } catch (error) {
    if (!(error instanceof StateFileError)) throw error
    recovery.counters = error.message
  }
  return { counters, reported, carried }
}

async function removeFile(path: string): Promise<void> {
  await unlink(path).catch((error: unknown) => {
    if (errorCode(error) !== 'ENOENT' && !isNoSpaceError(error)) throw error
  })
}

export class Spool {
  readonly #dir: string
  readonly #options: ResolvedOptions
  readonly #onEvent: (event: SpoolEvent) => void
  /** On-disk records, sorted by seq, oldest first. */
  readonly #index: DiskEntry[]
  /** Records the disk refused; every seq here is above every seq in #index. */
  #memory: MemoryEntry[] = []
  #bytes: number
  #next: number
  #counters: LossCounters
  /** How much of each counter went out in batches the collector acknowledged. */
  #reported: LossCounters
  /** What each waiting record reports; back to unreported if the record is lost. */
  #carried: Map<number, LossCounters>
  #diskFull: { code: string } | undefined
  readonly recovery: SpoolRecovery
  /**
   * The agent appends while the sender reads and removes: operations run one at a time so the
   * index and the files never disagree mid-operation.
   */
  #tail: Promise<unknown> = Promise.resolve()

  private constructor(
    dir: string,
    options: ResolvedOptions,
    onEvent: (event: SpoolEvent) => void,
    index: DiskEntry[],
    state: {
      next: number
      counters: LossCounters
      reported: LossCounters
      carried: Map<number, LossCounters>
    },
    recovery: SpoolRecovery,
  ) {
    this.#dir = dir
    this.#options = options
    this.#onEvent = onEvent
    this.#index = index
    this.#bytes = index.reduce((sum, entry) => sum + entry.size, 0)
    this.#next = state.next
    this.#counters = state.counters
    this.#reported = state.reported
    this.#carried = state.carried
    this.recovery = recovery
  }

  static async open(dir: string, options: SpoolOptions): Promise<Spool> {
    const resolved = resolveOptions(dir, options)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const index = await scanRecords(dir)
    const recovery: SpoolRecovery = {}
    const next = await readNextSeq(resolved.seqFile, (index.at(-1)?.seq ?? 0) + 1, recovery)
    const { counters, reported, carried } = await readCounters(
      resolved.countersFile,
      index,
      recovery,
    )
    const spool = new Spool(
      dir,
      resolved,
      options.onEvent ?? (() => {}),
      index,
      { next, counters, reported, carried },
      recovery,
    )
    // The limits may have been lowered since these records were written.
    await spool.#exclusive(async () => {
      const before = spool.#counters.dropped
      await spool.#expire()
      await spool.#makeRoom(0, 0)
      if (spool.#counters.dropped !== before) await spool.#persistState()
    })
    return spool
  }

  /**
   * Stores a new record under the next seq, which it passes to `build`; resolves once the record
   * and the advanced seq are durable (or held in memory, if the disk is full: `inMemory`).
   */
  append(build: BuildRecord): Promise<{ seq: number; inMemory: boolean }> {
    return this.#exclusive(async () => {
      await this.#expire()
      let diskProblem: unknown
      let flushed = 0
      if (this.#memory.length > 0) {
        const result = await this.#flushMemory()
        flushed = result.flushed
        diskProblem = result.problem
      }

      const seq = this.#next
      const unreported = this.#unreported()
      const body = await build(seq, unreported)
      const size = RECORD_HEADER_BYTES + body.length
      if (size > this.#options.maxBytes) {
        throw new Error(
          `batch ${seq} of ${body.length} bytes (plus a ${RECORD_HEADER_BYTES}-byte header) ` +
            `exceeds the spool's maxBytes of ${this.#options.maxBytes}`,
        )
      }
      const writtenAt = this.#options.now()
      let inMemory = true
      if (this.#memory.length === 0) {
        try {
          await this.#writeToDisk(seq, body, writtenAt)
          inMemory = false
        } catch (error) {
          if (!isNoSpaceError(error)) throw error
          diskProblem = error
        }
      }
      if (inMemory) this.#holdInMemory({ seq, body, writtenAt })
      this.#next = seq + 1
      if (LOSSES.some((loss) => unreported[loss] > 0)) this.#carried.set(seq, unreported)

      diskProblem = (await this.#persistState()) ?? diskProblem
      this.#noteDisk(diskProblem, flushed)
      return { seq, inMemory }
    })
  }

  /** The oldest intact record; corrupted ones met on the way are removed and counted. */
  oldest(): Promise<SpoolRecord | undefined> {
    return this.#exclusive(async () => {
      if ((await this.#expire()) > 0) this.#noteDisk(await this.#persistState(), 0)
      for (;;) {
        const entry = this.#index[0]
        if (!entry) {
          const held = this.#memory[0]
          return held ? { seq: held.seq, body: held.body } : undefined
        }
        const read = await this.#read(entry.seq)
        if ('body' in read) return { seq: entry.seq, body: read.body }
        await this.#discardCorrupted(0, read.problem)
      }
    })
  }

  /** Deletes a record the collector acknowledged; a seq no longer present is not an error. */
  remove(seq: number): Promise<void> {
    return this.#exclusive(async () => {
      const carried = this.#carried.get(seq)
      if (carried) {
        // Counted as delivered before the record goes: a crash in between resends it, and the
        // collector's `duplicate` then adds nothing.
        for (const loss of LOSSES) this.#reported[loss] += carried[loss]
        this.#carried.delete(seq)
        this.#noteDisk(await this.#persistState(), 0)
      }
      await this.#remove(seq)
    })
  }

  /** Deletes a record the collector refused for good, and counts it. */
  reject(seq: number): Promise<void> {
    return this.#exclusive(async () => {
      if (!(await this.#remove(seq))) return
      this.#lost(seq, 'rejected')
      this.#noteDisk(await this.#persistState(), 0)
    })
  }

  /**
   * Gives every waiting record a new seq, `first`, `first + 1`, ... in their order, and makes
   * `first + count` the next seq: what the agent does when the collector says it already holds
   * other batches under these numbers. `rewrite` puts the new seq into a record's body.
   *
   * Records are moved one by one (the new record is written, then the old one removed), those
   * moving down in ascending order and then those moving up in descending order: no move ever
   * lands on a record not yet moved, and the seq order of the records is their original order at
   * every step, so a crash part way leaves a spool that a later renumbering simply finishes.
   */
  renumber(
    first: number,
    rewrite: (body: Buffer, seq: number) => Buffer,
  ): Promise<{ count: number; first: number; last: number }> {
    return this.#exclusive(async () => {
      if (!isValidSeq(first)) throw new Error(`renumber: first seq must be positive, got ${first}`)
      // Damaged records would shift the numbering mid-way: take them out first.
      const bodies = new Map<number, Buffer>()
      for (let position = 0; position < this.#index.length; ) {
        const entry = this.#index[position] as DiskEntry
        const read = await this.#read(entry.seq)
        if ('body' in read) {
          bodies.set(entry.seq, read.body)
          position += 1
        } else await this.#discardCorrupted(position, read.problem)
      }
      // Disk entries are renumbered in place, so what they carry follows them by identity.
      const carriedBy = new Map<DiskEntry, LossCounters>()
      for (const entry of this.#index) {
        const losses = this.#carried.get(entry.seq)
        if (losses) carriedBy.set(entry, losses)
      }
      const rekeyCarried = (memory: Map<number, LossCounters>): void => {
        this.#carried = new Map(memory)
        for (const [entry, losses] of carriedBy) this.#carried.set(entry.seq, losses)
      }
      const disk = this.#index.map((entry, i) => ({ entry, to: first + i }))
      const moves = [
        ...disk.filter((m) => m.to < m.entry.seq),
        ...disk.filter((m) => m.to > m.entry.seq).reverse(),
      ]
      for (const { entry, to } of moves) {
        const from = entry.seq
        const body = rewrite(bodies.get(from) as Buffer, to)
        try {
          await writeFileAtomicAsync(join(this.#dir, recordName(to)), encodeRecord(to, body))
        } catch (error) {
          // Left part way, in order; the next conflict finishes it.
          rekeyCarried(
            new Map(
              this.#memory.flatMap((held) => {
                const losses = this.#carried.get(held.seq)
                return losses ? [[held.seq, losses] as const] : []
              }),
            ),
          )
          if (isNoSpaceError(error)) this.#noteDisk(error, 0)
          throw error
        }
        const writtenAt = new Date(entry.writtenAt)
        await utimes(join(this.#dir, recordName(to)), writtenAt, writtenAt).catch(() => {})
        await removeFile(join(this.#dir, recordName(from)))
        this.#bytes += RECORD_HEADER_BYTES + body.length - entry.size
        entry.seq = to
        entry.size = RECORD_HEADER_BYTES + body.length
      }
      const base = first + this.#index.length
      const heldCarried = new Map<number, LossCounters>()
      this.#memory = this.#memory.map((held, i) => {
        const losses = this.#carried.get(held.seq)
        if (losses) heldCarried.set(base + i, losses)
        return { ...held, seq: base + i, body: rewrite(held.body, base + i) }
      })
      rekeyCarried(heldCarried)
      const count = this.#index.length + this.#memory.length
      this.#next = first + count
      this.#noteDisk(await this.#persistState(), 0)
      return { count, first, last: first + count - 1 }
    })
  }

  maxSeq(): number | undefined {
    return this.#memory.at(-1)?.seq ?? this.#index.at(-1)?.seq
  }

  /** The seq the next append will use. */
  get nextSeq(): number {
    return this.#next
  }

  stats(): SpoolStats {
    return {
      depth: this.#index.length + this.#memory.length,
      bytes: this.#bytes,
      inMemory: this.#memory.length,
      diskFull: this.#diskFull !== undefined,
      ...this.#counters,
    }
  }

  /** Counts a record lost; what it carried goes back to be reported by a later one. */
  #lost(seq: number, loss: keyof LossCounters): void {
    this.#counters[loss] += 1
    this.#carried.delete(seq)
  }

  /** Losses neither delivered nor carried by a waiting record. */
  #unreported(): LossCounters {
    const out = zero()
    for (const loss of LOSSES) {
      let carried = 0
      for (const losses of this.#carried.values()) carried += losses[loss]
      out[loss] = Math.max(0, this.#counters[loss] - this.#reported[loss] - carried)
    }
    return out
  }

  async #read(seq: number): Promise<{ body: Buffer } | { problem: string }> {
    let file: Buffer | undefined
    try {
      file = await readFile(join(this.#dir, recordName(seq)))
    } catch (error) {
      // Deleted behind our back: the record is lost, which is what `corrupted` counts.
      if (errorCode(error) !== 'ENOENT') throw error
    }
    return file ? decodeRecord(seq, file) : { problem: 'missing' }
  }

  async #discardCorrupted(position: number, problem: string): Promise<void> {
    const entry = this.#index[position]
    if (!entry) return
    this.#forget(position)
    this.#lost(entry.seq, 'corrupted')
    this.#onEvent({ kind: 'corrupted', seq: entry.seq, problem })
    // Best effort: if it cannot be deleted, the next open() finds and counts it again.
    await unlink(join(this.#dir, recordName(entry.seq))).catch(() => {})
    this.#noteDisk(await this.#persistState(), 0)
  }

  async #remove(seq: number): Promise<boolean> {
    const held = this.#memory.findIndex((entry) => entry.seq === seq)
    if (held >= 0) {
      this.#memory.splice(held, 1)
      return true
    }
    const position = this.#index.findIndex((entry) => entry.seq === seq)
    if (position < 0) return false
    this.#forget(position)
    // No directory fsync: if the removal is lost in a crash the batch is resent, and the
    // collector answers a resent (agent_id, seq) with `duplicate`. A read-only disk keeps the
    // file for the same outcome after a restart.
    await removeFile(join(this.#dir, recordName(seq)))
    return true
  }

  async #writeToDisk(seq: number, body: Buffer, writtenAt: number): Promise<void> {
    const size = RECORD_HEADER_BYTES + body.length
    // Drop before writing so the disk never holds more than the bound.
    await this.#makeRoom(1, size)
    await writeFileAtomicAsync(join(this.#dir, recordName(seq)), encodeRecord(seq, body))
    this.#index.push({ seq, size, writtenAt })
    this.#bytes += size
  }

  /** Moves held records to disk, oldest first, until one is refused. */
  async #flushMemory(): Promise<{ flushed: number; problem?: unknown }> {
    let flushed = 0
    while (this.#memory.length > 0) {
      const held = this.#memory[0] as MemoryEntry
      try {
        await this.#writeToDisk(held.seq, held.body, held.writtenAt)
      } catch (error) {
        if (!isNoSpaceError(error)) throw error
        return { flushed, problem: error }
      }
      this.#memory.shift()
      flushed += 1
    }
    return { flushed }
  }

  #holdInMemory(entry: MemoryEntry): void {
    this.#memory.push(entry)
    while (this.#memory.length > this.#options.maxMemoryRecords) {
      const dropped = this.#memory.shift() as MemoryEntry
      this.#lost(dropped.seq, 'dropped')
      this.#onEvent({ kind: 'dropped', seq: dropped.seq, reason: 'memory-full' })
    }
  }

  /** Says once when the disk starts refusing writes, and once when it takes them again. */
  #noteDisk(problem: unknown, flushed: number): void {
    if (problem !== undefined) {
      if (this.#diskFull) return
      const code = errorCode(problem) ?? 'ENOSPC'
      this.#diskFull = { code }
      this.#onEvent({
        kind: 'disk-full',
        code,
        message: problem instanceof Error ? problem.message : String(problem),
      })
    } else if (this.#diskFull && this.#memory.length === 0) {
      this.#diskFull = undefined
      this.#onEvent({ kind: 'disk-recovered', flushed })
    }
  }

  /** Writes the next seq and the counters; a full disk is returned, not thrown. */
  async #persistState(): Promise<unknown> {
    try {
      await writeFileAtomicAsync(
        this.#options.countersFile,
        `${JSON.stringify({
          ...this.#counters,
          reported: this.#reported,
          carried: Object.fromEntries(this.#carried),
        })}\n`,
      )
      await writeFileAtomicAsync(this.#options.seqFile, `${this.#next}\n`)
      return undefined
    } catch (error) {
      if (!isNoSpaceError(error)) throw error
      return error
    }
  }

  /** Drops records spooled longer ago than maxAgeMs: the collector would refuse them anyway. */
  async #expire(): Promise<number> {
    const before = this.#counters.dropped
    const cutoff = this.#options.now() - this.#options.maxAgeMs
    for (let position = 0; position < this.#index.length; ) {
      const entry = this.#index[position] as DiskEntry
      if (entry.writtenAt >= cutoff) {
        position += 1
        continue
      }
      this.#forget(position)
      this.#lost(entry.seq, 'dropped')
      this.#onEvent({ kind: 'dropped', seq: entry.seq, reason: 'expired' })
      await removeFile(join(this.#dir, recordName(entry.seq)))
    }
    const kept = this.#memory.filter((held) => held.writtenAt >= cutoff)
    for (const held of this.#memory) {
      if (held.writtenAt >= cutoff) continue
      this.#lost(held.seq, 'dropped')
      this.#onEvent({ kind: 'dropped', seq: held.seq, reason: 'expired' })
    }
    this.#memory = kept
    return this.#counters.dropped - before
  }

  /** Drops the oldest records until `records` more records of `bytes` more bytes fit. */
  async #makeRoom(records: number, bytes: number): Promise<void> {
    const { maxRecords, maxBytes } = this.#options
    while (
      this.#index.length > 0 &&
      (this.#index.length + records > maxRecords || this.#bytes + bytes > maxBytes)
    ) {
      const oldest = this.#index[0]
      if (!oldest) break
      this.#forget(0)
      this.#lost(oldest.seq, 'dropped')
      this.#onEvent({ kind: 'dropped', seq: oldest.seq, reason: 'full' })
      await removeFile(join(this.#dir, recordName(oldest.seq)))
    }
  }

  #forget(position: number): void {
    const [entry] = this.#index.splice(position, 1)
    if (entry) this.#bytes -= entry.size
  }

  #exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(operation)
    this.#tail = result.catch(() => {})
    return result
  }
}
