import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  readStateFile,
  readStateFileAsync,
  StateFileError,
  writeFileAtomic,
  writeFileAtomicAsync,
} from '../../common/atomic-file.ts'

const dir = () => mkdtempSync(join(tmpdir(), 'tally-atomic-'))
const parseNumber = (data: Buffer) => {
  const n = Number(data.toString('utf8').trim())
  if (!Number.isSafeInteger(n)) throw new Error('not an integer')
  return n
}

describe('writeFileAtomic', () => {
  it('replaces the file with the given mode and leaves no temp file behind', async () => {
    const d = dir()
    const file = join(d, 'key')
    writeFileSync(file, 'old', { mode: 0o644 })
    writeFileAtomic(file, 'new\n', 0o600)
    expect(readFileSync(file, 'utf8')).toBe('new\n')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    await writeFileAtomicAsync(file, Buffer.from('newer'), 0o640)
    expect(readFileSync(file, 'utf8')).toBe('newer')
    expect(statSync(file).mode & 0o777).toBe(0o640)
    expect(readdirSync(d)).toEqual(['key'])
  })

  it('keeps the old file and removes its temp file when the write fails', () => {
    const d = dir()
    const file = join(d, 'key')
    writeFileAtomic(file, 'old')
    // A directory where the file should be: the rename fails after the temp file was written.
    mkdirSync(join(d, 'dir'))
    expect(() => writeFileAtomic(join(d, 'dir'), 'new')).toThrow(/EISDIR/)
    expect(readFileSync(file, 'utf8')).toBe('old')
    expect(readdirSync(d).sort()).toEqual(['dir', 'key'])
  })
})

describe('readStateFile', () => {
  it('gives undefined for a missing file and the parsed value for a sound one', async () => {
    const d = dir()
    expect(readStateFile(join(d, 'none'), { parse: parseNumber })).toBeUndefined()
    writeFileAtomic(join(d, 'n'), '42\n')
    expect(readStateFile(join(d, 'n'), { parse: parseNumber })).toBe(42)
    expect(await readStateFileAsync(join(d, 'n'), { parse: parseNumber })).toBe(42)
    expect(readStateFile(join(d, 'n'))?.toString()).toBe('42\n')
  })

  it('refuses an empty or corrupt file with one line naming it', async () => {
    const d = dir()
    const empty = join(d, 'credential.json')
    writeFileSync(empty, '')
    const corrupt = join(d, 'next-seq')
    writeFileSync(corrupt, 'garbage\n\nmore')
    for (const attempt of [
      () => readStateFile(empty, { parse: (b) => JSON.parse(b.toString()), remedy: 'remove it' }),
      () => readStateFile(corrupt, { parse: parseNumber }),
    ]) {
      let error: unknown
      try {
        attempt()
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(StateFileError)
      const message = (error as Error).message
      expect(message).not.toContain('\n')
      expect(message.startsWith(d)).toBe(true)
    }
    expect(() => readStateFile(empty)).toThrow(`${empty}: is empty`)
    await expect(readStateFileAsync(corrupt, { parse: parseNumber })).rejects.toThrow(
      `${corrupt}: is corrupt (not an integer)`,
    )
  })
})
