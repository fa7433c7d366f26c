/**
 * A persisted sequence number for batches that are not spooled (tier I batches of
 * investigations, which never touch the disk). Host batches take theirs from the spool, inside
 * the write, so that a crash leaves no gap (see ship/spool.ts).
 *
 * The next number is written (atomically, fsync'd) before a batch with the current one leaves:
 * a crash in between leaves a gap, never a number used for two different batches, which the
 * collector would take for a retry and drop.
 */
import { join } from 'node:path'
import { readStateFile, writeFileAtomic } from '../common/atomic-file.ts'

function parseSeq(data: Buffer): number {
  const seq = Number(data.toString('utf8').trim())
  if (!Number.isSafeInteger(seq) || seq < 1) throw new Error('not a positive integer')
  return seq
}

export class SequenceCounter {
  #file: string
  #next: number

  /** Throws a one-line StateFileError naming the file when it is empty or damaged. */
  constructor(stateDir: string, atLeast = 1, name = 'next-seq') {
    this.#file = join(stateDir, name)
    const stored = readStateFile(this.#file, {
      parse: parseSeq,
      remedy: 'remove it only if no batch numbered from it can still reach the collector',
    })
    this.#next = Math.max(stored ?? 1, atLeast)
  }

  /** Reserves the next number durably. */
  take(): number {
    const seq = this.#next
    writeFileAtomic(this.#file, `${seq + 1}\n`)
    this.#next = seq + 1
    return seq
  }
}
