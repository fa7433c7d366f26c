import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SequenceCounter } from '../../../agent/sequence.ts'
import { StateFileError } from '../../../common/atomic-file.ts'

describe('SequenceCounter (tier I batches)', () => {
  it('persists the next number before handing one out', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-seq-'))
    const counter = new SequenceCounter(dir, 1, 'next-restricted-seq')
    expect([counter.take(), counter.take()]).toEqual([1, 2])
    expect(readFileSync(join(dir, 'next-restricted-seq'), 'utf8')).toBe('3\n')
    expect(new SequenceCounter(dir, 1, 'next-restricted-seq').take()).toBe(3)
  })

  it('refuses an empty or damaged file with one line naming it, rather than restart at 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-seq-'))
    const file = join(dir, 'next-restricted-seq')
    for (const content of ['', 'garbage\n', '-4\n']) {
      writeFileSync(file, content)
      let error: unknown
      try {
        new SequenceCounter(dir, 1, 'next-restricted-seq')
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(StateFileError)
      expect((error as Error).message).toContain(file)
      expect((error as Error).message).not.toContain('\n')
    }
  })
})
