/**
 * A bounded on-disk spool of batches waiting for the collector's acknowledgement.
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
 * A record is written to a temp file, fsync'd, renamed into place and the directory fsync'd, so a
 * `kill -9` at any moment leaves either the whole record or none (plus perhaps a temp file, which
 * `open()` deletes).
 *
 * Corruption is detected lazily, in `oldest()`, when a record is about to be sent: `open()` only
 * lists names and sizes, so it stays cheap on a large spool, and every record is still verified
 * exactly once before it can leave. A corrupted record is removed and counted, never fatal. Until
 * then a corrupted file counts in `depth`/`bytes`, and its name counts in `maxSeq()`, which at
 * worst makes the agent skip some sequence numbers.
 */
import { createHash, randomBytes } from 'node:crypto'
import { lstat, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'

export interface SpoolOptions {
  /** Most records kept; appending beyond drops the oldest. */
  maxRecords: number
  /** Most bytes kept on disk, headers included; appending beyond drops the oldest. */
  maxBytes: number
}

export interface SpoolRecord {
  seq: number
  body: Buffer
}

export interface SpoolStats {
  depth: number
  /** On-disk size of the records, headers included. */
  bytes: number
  /** Records dropped to make room since the spool was opened. */
  dropped: number
  /** Records found corrupted (and removed) since the spool was opened. */
  corrupted: number
}

const MAGIC = Buffer.from('TLYB', 'ascii')
const FORMAT_VERSION = 1
export const RECORD_HEADER_BYTES = 52
const SEQ_DIGITS = 16
const RECORD_NAME = /^(\d{16})\.batch$/
const TEMP_NAME = /^\d{16}\.batch\.[0-9a-z.-]+\.tmp$/

interface IndexEntry {
  seq: number
  size: number
}

function recordName(seq: number): string {
  return `${String(seq).padStart(SEQ_DIGITS, '0')}.batch`
}

function isValidSeq(seq: number): boolean {
  return Number.isSafeInteger(seq) && seq >= 1
}

function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code
  return undefined
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

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

export class Spool {
  readonly #dir: string
  readonly #options: SpoolOptions
  /** Sorted by seq, oldest first. */
  readonly #index: IndexEntry[]
  #bytes: number
  #dropped = 0
  #corrupted = 0
  /**
   * The agent appends while the sender reads and removes: operations run one at a time so the
   * index and the files never disagree mid-operation.
   */
  #tail: Promise<unknown> = Promise.resolve()

  private constructor(dir: string, options: SpoolOptions, index: IndexEntry[]) {
    this.#dir = dir
    this.#options = options
    this.#index = index
    this.#bytes = index.reduce((sum, entry) => sum + entry.size, 0)
  }

  static async open(dir: string, options: SpoolOptions): Promise<Spool> {
    if (!Number.isSafeInteger(options.maxRecords) || options.maxRecords < 1) {
      throw new Error(`spool maxRecords must be a positive integer, got ${options.maxRecords}`)
    }
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes <= RECORD_HEADER_BYTES) {
      throw new Error(
        `spool maxBytes must be an integer above ${RECORD_HEADER_BYTES}, got ${options.maxBytes}`,
      )
    }
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const index: IndexEntry[] = []
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
      index.push({ seq, size: info.size })
    }
    index.sort((a, b) => a.seq - b.seq)
    const spool = new Spool(dir, options, index)
    // The limits may have been lowered since these records were written.
    await spool.#exclusive(() => spool.#makeRoom(0, 0))
    return spool
  }

  /** Stores a record; it is durable once this resolves. `seq` must be above every seq present. */
  append(seq: number, body: Buffer): Promise<void> {
    return this.#exclusive(async () => {
      if (!isValidSeq(seq)) throw new Error(`spool seq must be a positive safe integer, got ${seq}`)
      const newest = this.#index.at(-1)
      if (newest && seq <= newest.seq) {
        throw new Error(`spool seq ${seq} is not above the newest record's seq ${newest.seq}`)
      }
      const size = RECORD_HEADER_BYTES + body.length
      if (size > this.#options.maxBytes) {
        throw new Error(
          `batch ${seq} of ${body.length} bytes (plus a ${RECORD_HEADER_BYTES}-byte header) ` +
            `exceeds the spool's maxBytes of ${this.#options.maxBytes}`,
        )
      }
      // Drop before writing so the disk never holds more than the bound.
      await this.#makeRoom(1, size)

      const name = recordName(seq)
      const finalPath = join(this.#dir, name)
      const tempPath = join(
        this.#dir,
        `${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
      )
      const handle = await open(tempPath, 'wx', 0o600)
      try {
        await handle.writeFile(encodeRecord(seq, body))
        await handle.sync()
      } catch (error) {
        await handle.close().catch(() => {})
        await unlink(tempPath).catch(() => {})
        throw error
      }
      await handle.close()
      await rename(tempPath, finalPath)
      await fsyncDirectory(this.#dir)
      this.#index.push({ seq, size })
      this.#bytes += size
    })
  }

  /** The oldest intact record; corrupted ones met on the way are removed and counted. */
  oldest(): Promise<SpoolRecord | undefined> {
    return this.#exclusive(async () => {
      for (;;) {
        const entry = this.#index[0]
        if (!entry) return undefined
        const path = join(this.#dir, recordName(entry.seq))
        let file: Buffer | undefined
        try {
          file = await readFile(path)
        } catch (error) {
          // Deleted behind our back: the record is lost, which is what `corrupted` counts.
          if (errorCode(error) !== 'ENOENT') throw error
        }
        const decoded = file ? decodeRecord(entry.seq, file) : { problem: 'missing' }
        if ('body' in decoded) return { seq: entry.seq, body: decoded.body }
        this.#forget(0)
        this.#corrupted += 1
        // Best effort: if it cannot be deleted, the next open() finds and counts it again.
        await unlink(path).catch(() => {})
      }
    })
  }

  /** Deletes a record the collector acknowledged; a seq no longer present is not an error. */
  remove(seq: number): Promise<void> {
    return this.#exclusive(async () => {
      const position = this.#index.findIndex((entry) => entry.seq === seq)
      if (position < 0) return
      this.#forget(position)
      // No directory fsync: if the removal is lost in a crash the batch is resent, and the
      // collector answers a resent (agent_id, seq) with `duplicate`.
      await unlink(join(this.#dir, recordName(seq))).catch((error: unknown) => {
        if (errorCode(error) !== 'ENOENT') throw error
      })
    })
  }

  maxSeq(): number | undefined {
    return this.#index.at(-1)?.seq
  }

  stats(): SpoolStats {
    return {
      depth: this.#index.length,
      bytes: this.#bytes,
      dropped: this.#dropped,
      corrupted: this.#corrupted,
    }
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
      this.#dropped += 1
      await unlink(join(this.#dir, recordName(oldest.seq))).catch((error: unknown) => {
        if (errorCode(error) !== 'ENOENT') throw error
      })
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
