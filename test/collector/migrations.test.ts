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
