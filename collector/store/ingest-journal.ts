/**
 * The ingest journal: each group of batches, as received, on disk before its first insert and
 * removed after its last (store/group-commit.ts says why). One file per group in
 * `<data_dir>/ingest-journal/`, written atomically (temp file, fsync, rename, directory fsync),
 * so a file there is always whole; a temp file left by a crash is a group that was never
 * inserted, and is removed.
 *
 * A file holds the group's id (its deduplication token), and per batch the agent identity it was
 * authenticated as, when it was received, its digest, and the body as the agent sent it (gzip as
 * a rule: about 1.7 KB a batch). Only the groups in flight are there, for the milliseconds of
 * their inserts, or the groups a crash or a failing store left unfinished until they are
 * completed. These are tier T and A data of the kind the store holds; no tier I.
 */
import { mkdirSync } from 'node:fs'
import { readdir, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { z } from 'zod'
import { writeFileAtomicAsync } from '../../common/atomic-file.ts'
import { HostBatch } from '../../protocol/v1.ts'
import type { AgentIdentity } from '../auth/agents.ts'

const inflate = promisify(gunzip)

const JOURNAL_DIR = 'ingest-journal'
const SUFFIX = '.group.json'

export const journalDir = (dataDir: string): string => join(dataDir, JOURNAL_DIR)

/** One batch of a group as received: enough to build its rows again. */
export interface JournalBatch {
  agent: AgentIdentity
  receivedAt: number
  digest: string
  encoding: 'gzip' | 'identity'
  body: Buffer
}

const JournalFile = z.strictObject({
  version: z.literal(1),
  group: z.string().regex(/^[A-Za-z0-9-]{1,80}$/),
  batches: z.array(
    z.strictObject({
      agent: z.strictObject({ agent_id: z.string(), host: z.string(), site: z.string() }),
      received_at: z.number().int(),
      digest: z.string(),
      encoding: z.enum(['gzip', 'identity']),
      body: z.base64(),
    }),
  ),
})

export class IngestJournal {
  readonly dir: string

  constructor(dir: string) {
    this.dir = dir
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  }

  #file = (groupId: string) => join(this.dir, `${groupId}${SUFFIX}`)

  /** Durable once it resolves: the group can be completed after a crash from here on. */
  async write(groupId: string, batches: readonly JournalBatch[]): Promise<void> {
    const text = JSON.stringify({
      version: 1,
      group: groupId,
      batches: batches.map((b) => ({
        agent: { agent_id: b.agent.agent_id, host: b.agent.host, site: b.agent.site },
        received_at: b.receivedAt,
        digest: b.digest,
        encoding: b.encoding,
        body: b.body.toString('base64'),
      })),
    })
    await writeFileAtomicAsync(this.#file(groupId), text, 0o600)
  }

  async remove(groupId: string): Promise<void> {
    await unlink(this.#file(groupId))
  }

  /** The groups left in the journal, oldest first (ids start with their time); temp files go. */
  async pending(): Promise<{ group: string; batches: JournalBatch[] }[]> {
    const names = (await readdir(this.dir)).sort()
    const groups: { group: string; batches: JournalBatch[] }[] = []
    for (const name of names) {
      const path = join(this.dir, name)
      if (name.endsWith('.tmp')) {
        // Its rename never happened, so no insert of that group was made.
        await unlink(path)
        continue
      }
      if (!name.endsWith(SUFFIX)) continue
      const parsed = JournalFile.safeParse(JSON.parse(await readFile(path, 'utf8')))
      if (!parsed.success) {
        throw new Error(
          `${path}: not an ingest journal group this collector can read (${parsed.error.issues[0]?.message}); ` +
            'its batches may be partly stored: keep the file and report it',
        )
      }
      groups.push({
        group: parsed.data.group,
        batches: parsed.data.batches.map((b) => ({
          agent: b.agent,
          receivedAt: b.received_at,
          digest: b.digest,
          encoding: b.encoding,
          body: Buffer.from(b.body, 'base64'),
        })),
      })
    }
    return groups
  }
}

/** A journal batch's content, validated as the route validated it. */
export async function decodeJournalBatch(b: JournalBatch): Promise<HostBatch> {
  const raw = b.encoding === 'gzip' ? await inflate(b.body) : b.body
  return HostBatch.parse(JSON.parse(raw.toString('utf8')))
}
