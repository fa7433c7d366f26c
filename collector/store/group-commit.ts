/**
 * Group commit of agent batches: the batches that arrive together are written together, one
 * insert per table for the whole group, and each request is answered once its group is stored.
 *
 * DESIGN: exactly-once by (agent_id, seq) across a kill at any point.
 *
 * The engine deduplicates a whole insert block by its `insert_deduplication_token`. A group's
 * token cannot be a batch's: after a crash the agents retry their batches one by one, and they
 * arrive grouped otherwise, under other tokens, so the rows of a group that had partly landed
 * would be written a second time. So a group is never left partly written for a retry to find:
 *
 * 1. The duplicate check is one query for the whole group (the markers in ingest_batches), run
 *    after the previous group of this writer is complete; batches repeated inside the group are
 *    settled in memory (the first is written, the others answered after it).
 * 2. The group (id, and per batch its identity, time, digest and body as received) is written to
 *    the journal and fsync'd (store/ingest-journal.ts) BEFORE its first insert.
 * 3. One insert per table, markers last, each with the token `group:<id>:<table>`.
 * 4. The journal file is removed; then the requests are answered.
 *
 * A group left in the journal is completed before anything else is written: at start-up before
 * the collector listens (`replayJournal`), and, after a store failure, before this writer's next
 * group. Completing it means inserting its rows again, rebuilt from the journal, under the same
 * id: each table whose insert had landed drops it as a duplicate (also in the rollups its views
 * feed), the others get it, and the markers go last. The crash windows:
 *
 * - before the journal file is whole (renamed): nothing was inserted, nothing answered; the temp
 *   file is removed at start, and the agents' retries are new batches.
 * - between the journal and the first insert, between two inserts, or during one: the group is
 *   completed at start-up before any retry can be read, and the retries find the markers.
 * - after the markers, before the journal file is removed: completing it inserts nothing.
 * - after the removal, before the answer: the batches are stored; the retries are duplicates.
 *
 * Completion relies on the engine still knowing the group's tokens: each table keeps the last
 * 100,000 (non_replicated_deduplication_window), and a group is completed before this writer
 * inserts anything else. The journal is on the collector's disk, beside the embedded engine;
 * the same holds with a ClickHouse server, whose dedup windows are per table on the server.
 */
import { randomBytes } from 'node:crypto'
import type { HostBatch } from '../../protocol/v1.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import { DomainError } from '../errors.ts'
import type { Store } from './client.ts'
import {
  type BatchOutcome,
  type BatchRows,
  batchKey,
  batchRows,
  insertGroup,
  lastStoredSeqs,
  storedDigests,
} from './host-batches.ts'
import { decodeJournalBatch, type IngestJournal, type JournalBatch } from './ingest-journal.ts'
import type { UsageIngest } from './usage.ts'

export interface GroupSettings {
  /** How long the first batch of a group waits for others (ms). */
  windowMs: number
  /** The most batches in one group. */
  maxBatches: number
  /** The most batches waiting for a group; beyond it a batch is refused at once. */
  queueMaxBatches: number
}

/** One received batch, validated and time-checked by the route. */
export interface ReceivedBatch {
  agent: AgentIdentity
  batch: HostBatch
  digest: string
  receivedAt: number
  /** The body as the agent sent it, for the journal. */
  encoding: 'gzip' | 'identity'
  body: Buffer
}

/** The queue is full: answered 503 with Retry-After, before the batch's body is read. */
export class IngestQueueFull extends DomainError {
  override name = 'IngestQueueFull'

  constructor(queueMaxBatches: number) {
    super(
      'unavailable',
      'ingest_queue_full',
      `more than ${queueMaxBatches} batches are waiting to be stored; retry later`,
    )
  }
}

interface Pending {
  received: ReceivedBatch
  /** performance.now() when it was queued. */
  arrived: number
  rows: BatchRows
  answer: (outcome: BatchOutcome) => void
  fail: (err: unknown) => void
}

/** A group whose journal file is still there: it must be completed before the next one. */
interface Unfinished {
  id: string
  rows: BatchRows[]
  inserted: boolean
}

let groupCounter = 0
/** Sortable by time (the journal replays oldest first), unique across processes. */
const newGroupId = (): string =>
  `${Date.now().toString().padStart(15, '0')}-${process.pid}-${(groupCounter++).toString(36)}-${randomBytes(4).toString('hex')}`

export class GroupWriter {
  readonly #store: Store
  readonly #journal: IngestJournal
  readonly #usage: UsageIngest
  readonly #settings: GroupSettings
  #queue: Pending[] = []
  #pumping = false
  #unfinished: Unfinished | undefined
  /** Ends the current window early (the group is full). */
  #wake: (() => void) | undefined

  constructor(store: Store, journal: IngestJournal, usage: UsageIngest, settings: GroupSettings) {
    this.#store = store
    this.#journal = journal
    this.#usage = usage
    this.#settings = settings
  }

  /**
   * Throws IngestQueueFull when a batch would be refused now; the route asks before it reads the
   * body, so refusing costs next to nothing.
   */
  checkRoom(): void {
    if (this.#queue.length >= this.#settings.queueMaxBatches) {
      throw new IngestQueueFull(this.#settings.queueMaxBatches)
    }
  }

  /**
   * Stores the batch with the next group and resolves when that group is stored. Throws
   * IngestQueueFull when the queue is full, and RangeError for a span the store cannot hold.
   */
  submit(received: ReceivedBatch): Promise<BatchOutcome> {
    this.checkRoom()
    const { agent, batch, digest, receivedAt } = received
    const rows = batchRows(agent, batch, digest, this.#usage, receivedAt)
    return new Promise<BatchOutcome>((answer, fail) => {
      this.#queue.push({ received, arrived: performance.now(), rows, answer, fail })
      if (this.#queue.length >= this.#settings.maxBatches) this.#wake?.()
      if (!this.#pumping) void this.#pump()
    })
  }

  async #pump(): Promise<void> {
    this.#pumping = true
    try {
      while (this.#queue.length > 0) {
        // The group's first batch waits out the window (others join it), unless the group
        // fills first. Under load the previous group's insert already took longer than that.
        await this.#window(this.#queue[0]?.arrived ?? performance.now())
        const group = this.#queue.splice(0, this.#settings.maxBatches)
        await this.#commit(group)
      }
    } finally {
      this.#pumping = false
    }
  }

  #window(opened: number): Promise<void> {
    const left = this.#settings.windowMs - (performance.now() - opened)
    if (left <= 0 || this.#queue.length >= this.#settings.maxBatches) return Promise.resolve()
    return new Promise((done) => {
      const timer = setTimeout(() => {
        this.#wake = undefined
        done()
      }, left)
      this.#wake = () => {
        clearTimeout(timer)
        this.#wake = undefined
        done()
      }
    })
  }

  async #commit(group: Pending[]): Promise<void> {
    try {
      await this.#finishUnfinished()
      const stored = await storedDigests(
        this.#store,
        group.map((p) => ({ agent_id: p.received.agent.agent_id, seq: p.received.batch.seq })),
      )
      const write: Pending[] = []
      const first = new Map<string, Pending>()
      const later: { pending: Pending; conflict: boolean }[] = []
      for (const p of group) {
        const key = batchKey({ agent_id: p.received.agent.agent_id, seq: p.received.batch.seq })
        const digest = stored.get(key)
        if (digest !== undefined) {
          // '' : stored before digests were kept; taken as a duplicate, as it was then.
          later.push({ pending: p, conflict: digest !== p.received.digest && digest !== '' })
          continue
        }
        const earlier = first.get(key)
        if (earlier !== undefined) {
          later.push({ pending: p, conflict: earlier.received.digest !== p.received.digest })
          continue
        }
        first.set(key, p)
        write.push(p)
      }
      if (write.length > 0) await this.#write(write)
      const conflicted = later.filter((l) => l.conflict)
      // After the write, so that last_seq counts this group's batches too.
      const lastSeqs = await lastStoredSeqs(
        this.#store,
        conflicted.map((l) => l.pending.received.agent.agent_id),
      )
      for (const p of write) p.answer({ status: 'stored' })
      for (const { pending, conflict } of later) {
        pending.answer(
          conflict
            ? {
                status: 'conflict',
                lastSeq: lastSeqs.get(pending.received.agent.agent_id) ?? 0,
              }
            : { status: 'duplicate' },
        )
      }
    } catch (err) {
      // Nothing of the group is acknowledged; what it wrote is completed before the next group.
      for (const p of group) p.fail(err)
    }
  }

  async #write(write: Pending[]): Promise<void> {
    const id = newGroupId()
    await this.#journal.write(id, write.map(journalBatch))
    const unfinished: Unfinished = { id, rows: write.map((p) => p.rows), inserted: false }
    this.#unfinished = unfinished
    await insertGroup(this.#store, id, unfinished.rows)
    unfinished.inserted = true
    await this.#journal.remove(id)
    this.#unfinished = undefined
  }

  /** Completes a group a store or disk failure left half done, with the same token. */
  async #finishUnfinished(): Promise<void> {
    const unfinished = this.#unfinished
    if (unfinished === undefined) return
    if (!unfinished.inserted) {
      await insertGroup(this.#store, unfinished.id, unfinished.rows)
      unfinished.inserted = true
    }
    await this.#journal.remove(unfinished.id)
    this.#unfinished = undefined
  }
}

const journalBatch = (p: Pending): JournalBatch => ({
  agent: p.received.agent,
  receivedAt: p.received.receivedAt,
  digest: p.received.digest,
  encoding: p.received.encoding,
  body: p.received.body,
})

/**
 * Completes every group left in the journal (a crash, or a stop while the store failed), oldest
 * first; run at start-up before the collector takes requests. Returns how many it completed.
 */
export async function replayJournal(
  store: Store,
  journal: IngestJournal,
  usage: UsageIngest,
): Promise<number> {
  const groups = await journal.pending()
  for (const { group, batches } of groups) {
    const rows: BatchRows[] = []
    for (const b of batches) {
      rows.push(batchRows(b.agent, await decodeJournalBatch(b), b.digest, usage, b.receivedAt))
    }
    await insertGroup(store, group, rows)
    await journal.remove(group)
  }
  return groups.length
}
