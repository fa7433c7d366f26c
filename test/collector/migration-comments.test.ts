/**
 * A migration whose comments were edited (006: it cited a document outside the repository) is
 * still accepted where it was applied before the edit, because its statements are the same; any
 * other change to an applied migration is still refused.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openStore, type Store } from '../../collector/store/client.ts'
import {
  COMMENT_ONLY_EDITS,
  MigrationError,
  migrate,
  readMigrations,
  splitStatements,
} from '../../collector/store/migrations.ts'
import { tmp } from '../e2e/harness.ts'

const ROOT = new URL('../../', import.meta.url).pathname

/** The text of migration `version` at the commit before its comments were edited. */
function earlierText(version: number): string | undefined {
  const file = readMigrations().find((m) => m.version === version)
  if (file === undefined) return undefined
  const path = `collector/store/migrations/${String(version).padStart(3, '0')}_${file.name}.sql`
  try {
    const commits = execFileSync('git', ['log', '--format=%H', '--', path], {
      cwd: ROOT,
      encoding: 'utf8',
    }).split('\n')
    for (const commit of commits.filter((c) => c !== '')) {
      const text = execFileSync('git', ['show', `${commit}:${path}`], {
        cwd: ROOT,
        encoding: 'utf8',
      })
      const sha = createHash('sha256').update(text).digest('hex')
      if (COMMENT_ONLY_EDITS[version]?.includes(sha)) return text
    }
  } catch {
    return undefined
  }
  return undefined
}

const hasHistory = earlierText(6) !== undefined

describe.skipIf(!hasHistory)(
  `comment-only edits${hasHistory ? '' : ' (SKIPPED: no git history here to read the earlier text from)'}`,
  () => {
    it('the earlier text of every listed migration has the same statements', () => {
      for (const version of Object.keys(COMMENT_ONLY_EDITS).map(Number)) {
        const name = readMigrations().find((m) => m.version === version)?.name
        const now = readFileSync(
          `${ROOT}collector/store/migrations/${String(version).padStart(3, '0')}_${name}.sql`,
          'utf8',
        )
        expect(splitStatements(earlierText(version) as string)).toEqual(splitStatements(now))
      }
    })
  },
)

describe('an applied migration on the real engine', () => {
  let store: Store
  beforeAll(async () => {
    store = openStore({ dataDir: tmp('migration-comments') })
    await migrate(store)
  })
  afterAll(async () => {
    await store?.close()
  })

  const recordChecksum = (checksum: string) =>
    store.command({
      query: `ALTER TABLE tally.schema_migrations UPDATE checksum = {checksum:String} WHERE version = 6`,
      query_params: { checksum },
      clickhouse_settings: { mutations_sync: '2' },
    })

  it('recorded with the text before its comment edit: accepted', async () => {
    await recordChecksum(COMMENT_ONLY_EDITS[6]?.[0] as string)
    await expect(migrate(store)).resolves.toEqual([])
  })

  it('recorded with any other text: refused', async () => {
    await recordChecksum('0'.repeat(64))
    await expect(migrate(store)).rejects.toThrow(MigrationError)
  })
})
