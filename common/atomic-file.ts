/**
 * State and key files written so that a crash or a full disk leaves either the old file or the
 * new one, never an empty or half-written one: the data goes to a temp file beside it, is
 * fsync'd, renamed over the target, and the directory is fsync'd so the rename itself survives a
 * power cut. Shared by the agent and the collector (which must not import each other).
 *
 * Reading refuses an empty or unparsable file with one line naming it, so a process can stop
 * with that line instead of a stack trace, or recover where the caller knows how.
 */
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** A state file that exists but cannot be used; `message` is one line naming the file. */
export class StateFileError extends Error {
  override name = 'StateFileError'
  readonly file: string
  constructor(file: string, problem: string, remedy?: string) {
    super(`${file}: ${problem}${remedy ? `; ${remedy}` : ''}`)
    this.file = file
  }
}

/**
 * The temp file's name: beside the target (a rename across file systems is not atomic), unique
 * per writer, and ending in `.tmp` so a directory scan can tell it from real files.
 */
export function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  )
}

/** Errors that mean the file system has no room or takes no writes, as opposed to a bug. */
const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS'])

export function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code
  return undefined
}

/** True for ENOSPC, EDQUOT and EROFS: the disk is full or read-only, retrying later may work. */
export function isNoSpaceError(error: unknown): boolean {
  const code = errorCode(error)
  return code !== undefined && NO_SPACE_CODES.has(code)
}

function fsyncDirectorySync(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Replaces `path` with `data` atomically and durably (temp file, fsync, rename, directory fsync).
 * The file gets `mode` whatever the umask. On failure the temp file is removed and the old file,
 * if any, is untouched.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const temp = tempPathFor(path)
  const fd = openSync(temp, 'wx', mode)
  try {
    try {
      fchmodSync(fd, mode)
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
      let written = 0
      while (written < bytes.length) written += writeSync(fd, bytes, written)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, path)
  } catch (error) {
    try {
      unlinkSync(temp)
    } catch {
      // already renamed or never created: nothing to clean
    }
    throw error
  }
  fsyncDirectorySync(dirname(path))
}

/** writeFileAtomic without blocking the event loop on the fsyncs. */
export async function writeFileAtomicAsync(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const temp = tempPathFor(path)
  try {
    const handle = await open(temp, 'wx', mode)
    try {
      await handle.chmod(mode)
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, path)
  } catch (error) {
    await unlink(temp).catch(() => {})
    throw error
  }
  const dir = await open(dirname(path), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

export interface ReadStateOptions<T> {
  /** Turns the bytes into a value; throwing (any error) marks the file corrupt. */
  parse: (data: Buffer) => T
  /** What the operator can do, appended to the one-line message, e.g. "remove it to enroll again". */
  remedy?: string
}

/**
 * Reads a state file: undefined if it does not exist, the parsed value if it is sound, and a
 * StateFileError naming the file if it is empty or `parse` refuses it. Other read errors
 * (permissions, I/O) are StateFileErrors too, so the caller always has one line to show.
 */
export function readStateFile(path: string): Buffer | undefined
export function readStateFile<T>(path: string, options: ReadStateOptions<T>): T | undefined
export function readStateFile<T>(
  path: string,
  options?: ReadStateOptions<T>,
): T | Buffer | undefined {
  let data: Buffer
  try {
    data = readFileSync(path)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw new StateFileError(path, `cannot be read (${describe(error)})`, options?.remedy)
  }
  return parseState(path, data, options)
}

/** readStateFile without blocking the event loop. */
export async function readStateFileAsync(path: string): Promise<Buffer | undefined>
export async function readStateFileAsync<T>(
  path: string,
  options: ReadStateOptions<T>,
): Promise<T | undefined>
export async function readStateFileAsync<T>(
  path: string,
  options?: ReadStateOptions<T>,
): Promise<T | Buffer | undefined> {
  let data: Buffer
  try {
    data = await readFile(path)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw new StateFileError(path, `cannot be read (${describe(error)})`, options?.remedy)
  }
  return parseState(path, data, options)
}

function parseState<T>(
  path: string,
  data: Buffer,
  options: ReadStateOptions<T> | undefined,
): T | Buffer {
  if (data.length === 0) throw new StateFileError(path, 'is empty', options?.remedy)
  if (!options) return data
  try {
    return options.parse(data)
  } catch (error) {
    throw new StateFileError(path, `is corrupt (${describe(error)})`, options.remedy)
  }
}

/** An error as a short single line: no stack, no newlines, bounded. */
function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > 200 ? `${line.slice(0, 200)}…` : line
}
