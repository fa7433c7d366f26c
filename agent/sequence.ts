/**
 * The agent's batch sequence number, persisted so a restart never reuses one.
 *
 * The next number is written (and fsync'd) before a batch with the current one is spooled: a
 * crash in between leaves a gap, never a number used for two different batches, which the
 * collector would take for a retry and drop.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs'
import { dirname, join } from 'node:path'

export class SequenceCounter {
  #file: string
  #next: number

  constructor(stateDir: string, atLeast = 1, name = 'next-seq') {
    this.#file = join(stateDir, name)
    const stored = existsSync(this.#file) ? Number(readFileSync(this.#file, 'utf8').trim()) : 1
    this.#next = Math.max(Number.isSafeInteger(stored) && stored > 0 ? stored : 1, atLeast)
  }

  /** Reserves the next number durably. */
  take(): number {
    const seq = this.#next
    const tmp = `${this.#file}.tmp`
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, `${seq + 1}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, this.#file)
    const dir = openSync(dirname(this.#file), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
    this.#next = seq + 1
    return seq
  }
}
