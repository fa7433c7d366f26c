/**
 * Ordered SQL migrations, applied at start-up and recorded in `tally.schema_migrations`.
 *
 * A migration is a file `NNN_name.sql` in ./migrations; statements are separated by a semicolon
 * at the end of a line. An applied migration whose text has changed is an error: the database
 * would no longer be what the files describe.
 *
 * Resumable: a migration is recorded only after all its statements succeeded, and every statement
 * is idempotent (`CREATE ... IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`; a test holds every file
 * to it), so a start that failed or was killed half way leaves a data directory the next start
 * completes by running the unrecorded migration again from its first statement. A failure names
 * the file, the statement and the engine's reason.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import type { Store } from './client.ts'

export interface Migration {
  version: number
  name: string
  statements: string[]
  checksum: string
}

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url)

export function readMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const text = readFileSync(new URL(file, dir), 'utf8')
      return {
        version: Number(file.slice(0, 3)),
        name: file.slice(4, -4),
        statements: splitStatements(text),
        checksum: createHash('sha256').update(text).digest('hex'),
      }
    })
}

export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) =>
      s
        .split('\n')
        .filter((line) => !line.trimStart().startsWith('--'))
        .join('\n')
        .trim(),
    )
    .filter((s) => s.length > 0)
}

/**
 * Checksums an applied migration may still carry from an earlier text that differed from the
 * current one only in its comments (the statements are the same, which a test checks): the
 * database is what the files describe.
 */
export const COMMENT_ONLY_EDITS: Readonly<Record<number, readonly string[]>> = {
  // 006: its first comment cited a document outside the repository.
  6: ['680e22b3e024e543450a29b473728b60b61c6fe4c69f3ed0335bcf15108f357b'],
}

export class MigrationError extends Error {
  override name = 'MigrationError'
}

export const migrationFile = (m: Pick<Migration, 'version' | 'name'>): string =>
  `${String(m.version).padStart(3, '0')}_${m.name}.sql`

/** The first line of a statement, short, to name it in an error. */
const headline = (statement: string): string => {
  const line = statement.split('\n')[0]?.trim() ?? ''
  return line.length > 80 ? `${line.slice(0, 77)}...` : line
}

async function applyStatements(store: Store, migration: Migration): Promise<void> {
  const total = migration.statements.length
  for (const [i, statement] of migration.statements.entries()) {
    try {
      await store.command({ query: statement })
    } catch (err) {
      const reason = ((err as Error).message ?? String(err)).split('\n')[0]?.trim()
      throw new MigrationError(
        `migration ${migrationFile(migration)} failed at statement ${i + 1} of ${total} ` +
          `(${headline(statement)}): ${reason}. It is not recorded as applied; the next start ` +
          'runs it again from its first statement (every statement is idempotent)',
        { cause: err },
      )
    }
  }
}

/** Applies what is missing, in order. Returns the versions it applied. */
export async function migrate(store: Store, migrations = readMigrations()): Promise<number[]> {
  await store.command({ query: 'CREATE DATABASE IF NOT EXISTS tally' })
  await store.command({
    query: `CREATE TABLE IF NOT EXISTS tally.schema_migrations
      (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC'))
      ENGINE = MergeTree ORDER BY version`,
  })
  const applied = await (
    await store.query({
      query: 'SELECT version, name, checksum FROM tally.schema_migrations ORDER BY version',
      format: 'JSONEachRow',
    })
  ).json<{ version: number; name: string; checksum: string }>()
  const byVersion = new Map(applied.map((m) => [Number(m.version), m]))
  const done: number[] = []
  for (const migration of migrations) {
    const previous = byVersion.get(migration.version)
    if (previous !== undefined) {
      if (
        previous.checksum !== migration.checksum &&
        !COMMENT_ONLY_EDITS[migration.version]?.includes(previous.checksum)
      ) {
        throw new MigrationError(
          `migration ${migration.version}_${migration.name} was changed after it was applied; ` +
            'add a new migration instead of editing an applied one',
        )
      }
      continue
    }
    await applyStatements(store, migration)
    try {
      await store.insert({
        table: 'tally.schema_migrations',
        values: [
          {
            version: migration.version,
            name: migration.name,
            checksum: migration.checksum,
            applied_at: Date.now(),
          },
        ],
        format: 'JSONEachRow',
      })
    } catch (err) {
      throw new MigrationError(
        `migration ${migrationFile(migration)} ran but could not be recorded: ` +
          `${((err as Error).message ?? String(err)).split('\n')[0]?.trim()}. The next start runs it again`,
        { cause: err },
      )
    }
    done.push(migration.version)
  }
  return done
}
