/** Migrations on the real embedded engine: applied once, in order, and never silently edited. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore, type Store } from '../../collector/store/client.ts'
import {
  type Migration,
  MigrationError,
  migrate,
  migrationFile,
  readMigrations,
  splitStatements,
} from '../../collector/store/migrations.ts'
import { selectRows } from '../../collector/store/rows.ts'

let dir: string
let store: Store

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tally-migrations-test-'))
  store = openStore({ dataDir: dir })
})

afterAll(async () => {
  await store?.close()
  await rm(dir, { recursive: true, force: true })
})

const recorded = () =>
  selectRows<{ version: number; name: string; checksum: string }>(
    store,
    'SELECT version, name, checksum FROM tally.schema_migrations ORDER BY version',
  )

const tableExists = async (name: string): Promise<boolean> => {
  const [row] = await selectRows<{ n: number }>(
    store,
    "SELECT count() AS n FROM system.tables WHERE database = 'tally' AND name = {name:String}",
    { name },
  )
  return Number(row?.n) === 1
}

describe('migrate', () => {
  it('applies every migration in order, then nothing the second time', async () => {
    const migrations = readMigrations()
    const versions = migrations.map((m) => m.version)
    expect(versions.length).toBeGreaterThanOrEqual(2)
    expect(versions).toEqual([...versions].sort((a, b) => a - b))
    expect(new Set(versions).size).toBe(versions.length)

    expect(await migrate(store)).toEqual(versions)
    for (const table of ['agents', 'users', 'enroll_tokens', 'host_metrics', 'ingest_batches']) {
      expect(await tableExists(table), table).toBe(true)
    }
    const rows = await recorded()
    expect(rows).toEqual(
      migrations.map((m) => ({ version: m.version, name: m.name, checksum: m.checksum })),
    )

    expect(await migrate(store)).toEqual([])
    expect(await migrate(store)).toEqual([])
    expect(await recorded()).toEqual(rows)
  })

  it('applies a migration added later, once', async () => {
    const extra: Migration = {
      version: 900,
      name: 'test_extra',
      statements: [
        'CREATE TABLE tally.test_extra (x UInt8) ENGINE = MergeTree ORDER BY x',
        'INSERT INTO tally.test_extra VALUES (1), (2)',
      ],
      checksum: 'c'.repeat(64),
    }
    expect(await migrate(store, [...readMigrations(), extra])).toEqual([900])
    expect(await migrate(store, [...readMigrations(), extra])).toEqual([])
    const [row] = await selectRows<{ n: number }>(
      store,
      'SELECT count() AS n FROM tally.test_extra',
    )
    // Its statements ran once: a second run would have failed on CREATE or doubled the rows.
    expect(Number(row?.n)).toBe(2)
  })

  it('refuses an applied migration whose checksum changed, and applies nothing after it', async () => {
    const before = await recorded()
    const [first, ...rest] = readMigrations()
    if (first === undefined) throw new Error('no migrations')
    const edited: Migration = {
      ...first,
      statements: [
        ...first.statements,
        'CREATE TABLE tally.should_not_exist (x UInt8) ENGINE = Memory',
      ],
      checksum: `${first.checksum.slice(0, -1)}${first.checksum.endsWith('0') ? '1' : '0'}`,
    }
    const later: Migration = {
      version: 901,
      name: 'after_the_edit',
      statements: ['CREATE TABLE tally.after_the_edit (x UInt8) ENGINE = Memory'],
      checksum: 'd'.repeat(64),
    }
    const attempt = migrate(store, [edited, ...rest, later])
    await expect(attempt).rejects.toBeInstanceOf(MigrationError)
    await expect(attempt).rejects.toThrow(
      new RegExp(`migration ${first.version}_${first.name} was changed after it was applied`),
    )
    expect(await tableExists('should_not_exist')).toBe(false)
    expect(await tableExists('after_the_edit')).toBe(false)
    expect(await recorded()).toEqual(before)

    // A changed checksum of a later migration is refused too.
    const last = rest.at(-1)
    if (last !== undefined) {
      await expect(
        migrate(store, [first, ...rest.slice(0, -1), { ...last, checksum: 'e'.repeat(64) }]),
      ).rejects.toThrow(MigrationError)
    }
    // The real files still pass.
    expect(await migrate(store)).toEqual([])
  })
})

describe('a migration that fails', () => {
  const resumeDir = () => join(dir, 'resume')
  const write = async (files: Record<string, string>) => {
    await rm(resumeDir(), { recursive: true, force: true })
    await mkdir(resumeDir())
    for (const [name, text] of Object.entries(files)) await writeFile(join(resumeDir(), name), text)
    return readMigrations(pathToFileURL(`${resumeDir()}/`))
  }
  const FIRST =
    'CREATE TABLE IF NOT EXISTS tally.resume_a (x UInt8) ENGINE = MergeTree ORDER BY x;\n'
  const second = (middle: string) =>
    'CREATE TABLE IF NOT EXISTS tally.resume_b (x UInt8) ENGINE = MergeTree ORDER BY x;\n' +
    `${middle};\n` +
    'CREATE TABLE IF NOT EXISTS tally.resume_d (x UInt8) ENGINE = MergeTree ORDER BY x;\n'

  it('names its file, statement and reason, is not recorded, and the next start completes it', async () => {
    const failing = await write({
      '950_resume_first.sql': FIRST,
      '951_resume_second.sql': second(
        'CREATE TABLE IF NOT EXISTS tally.resume_c (x UInt8) ENGINE = NoSuchEngine',
      ),
    })
    const attempt = migrate(store, failing)
    await expect(attempt).rejects.toBeInstanceOf(MigrationError)
    await expect(attempt).rejects.toThrow(
      /^migration 951_resume_second\.sql failed at statement 2 of 3 \(CREATE TABLE IF NOT EXISTS tally\.resume_c .*\): .*NoSuchEngine/,
    )
    const versions = (await recorded()).map((r) => Number(r.version))
    expect(versions).toContain(950)
    expect(versions).not.toContain(951)
    // Half applied: the statement before the failure ran, the one after did not.
    expect(await tableExists('resume_b')).toBe(true)
    expect(await tableExists('resume_d')).toBe(false)

    // The operator fixes the file; the next start runs 951 again from its first statement.
    const fixed = await write({
      '950_resume_first.sql': FIRST,
      '951_resume_second.sql': second(
        'CREATE TABLE IF NOT EXISTS tally.resume_c (x UInt8) ENGINE = MergeTree ORDER BY x',
      ),
    })
    expect(await migrate(store, fixed)).toEqual([951])
    for (const table of ['resume_a', 'resume_b', 'resume_c', 'resume_d']) {
      expect(await tableExists(table), table).toBe(true)
    }
    expect(await migrate(store, fixed)).toEqual([])
  })

  it('names migration files as they are on disk', () => {
    expect(migrationFile({ version: 7, name: 'collector_metrics' })).toBe(
      '007_collector_metrics.sql',
    )
  })
})

describe('every statement of every migration file is idempotent', () => {
  const IDEMPOTENT =
    /^(CREATE (DATABASE|TABLE|(MATERIALIZED )?VIEW|DICTIONARY) IF NOT EXISTS |CREATE OR REPLACE |ALTER TABLE \S+ (ADD|DROP|MODIFY|CLEAR) (COLUMN|INDEX|PROJECTION|CONSTRAINT) IF (NOT )?EXISTS |ALTER TABLE \S+ MODIFY TTL |DROP (DATABASE|TABLE|VIEW|DICTIONARY) IF EXISTS )/

  /** A backfill: inserts only into its own target while that is still empty. */
  const BACKFILL = /^INSERT INTO (\S+) [\s\S]*\bWHERE \(SELECT count\(\) FROM \1\) = 0\n/

  it('by its form, so a half-applied migration can run again', () => {
    for (const migration of readMigrations()) {
      migration.statements.forEach((statement, i) => {
        const where = `${migrationFile(migration)} statement ${i + 1}`
        if (statement.startsWith('INSERT ')) expect(statement, where).toMatch(BACKFILL)
        else expect(statement, where).toMatch(IDEMPOTENT)
      })
    }
  })

  it('on the engine: every statement runs again after the whole schema is there', async () => {
    await migrate(store)
    for (const migration of readMigrations()) {
      for (const statement of migration.statements) await store.command({ query: statement })
    }
    expect(await migrate(store)).toEqual([])
  })
})

describe('readMigrations and splitStatements', () => {
  it('read NNN_name.sql files in order and ignore the rest', async () => {
    const sqlDir = join(dir, 'sql')
    await rm(sqlDir, { recursive: true, force: true })
    await mkdir(sqlDir)
    await writeFile(join(sqlDir, '002_second.sql'), 'SELECT 2;\n')
    await writeFile(join(sqlDir, '001_first.sql'), '-- a comment\nSELECT 1;\nSELECT 11;\n')
    await writeFile(join(sqlDir, 'README.md'), 'not a migration')
    await writeFile(join(sqlDir, '3_bad.sql'), 'SELECT 3;')
    await writeFile(join(sqlDir, '004_Upper.sql'), 'SELECT 4;')
    const read = readMigrations(pathToFileURL(`${sqlDir}/`))
    expect(read.map((m) => [m.version, m.name, m.statements])).toEqual([
      [1, 'first', ['SELECT 1', 'SELECT 11']],
      [2, 'second', ['SELECT 2']],
    ])
    expect(read[0]?.checksum).toMatch(/^[0-9a-f]{64}$/)
    expect(read[0]?.checksum).not.toBe(read[1]?.checksum)
  })

  it('split on a semicolon at the end of a line only, dropping comment lines', () => {
    expect(
      splitStatements(
        "-- header\nCREATE TABLE t (s String DEFAULT ';')\nENGINE = Memory;\n\n  -- note\nSELECT 1;  \n",
      ),
    ).toEqual(["CREATE TABLE t (s String DEFAULT ';')\nENGINE = Memory", 'SELECT 1'])
  })
})
