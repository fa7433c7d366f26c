/**
 * The register's tables, tally.register_entries and tally.register_checkpoints: their SQL,
 * columns and row schemas. Rows come back checked and as the domain's entries and checkpoints;
 * nothing here judges whether they verify (that is the chain's and the verifier's work).
 */
import { z } from 'zod'
import { canonicalJson } from '../../common/register-head.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'
import {
  type Countersignature,
  entryBody,
  looksLikeEntry,
  type RegisterEntry,
  type RegisterName,
  type SignedCheckpoint,
} from './model.ts'

const ENTRIES = 'tally.register_entries'
const CHECKPOINTS = 'tally.register_checkpoints'

const ENTRY_COLUMNS = `register, seq, toUnixTimestamp64Milli(ts) AS ts_ms, kind, actor, case_id,
  entry, prev_hash, hash, signature`
const CHECKPOINT_COLUMNS = `register, size, root, toUnixTimestamp64Milli(ts) AS ts_ms, key_id,
  signature, countersignatures, version`

// 64-bit integers come back as JSON strings.
const EntryRow = z.object({
  register: z.string(),
  seq: z.coerce.number(),
  ts_ms: z.coerce.number(),
  kind: z.string(),
  actor: z.string(),
  case_id: z.string(),
  entry: z.string(),
  prev_hash: z.string(),
  hash: z.string(),
  signature: z.string(),
})
type EntryRow = z.output<typeof EntryRow>

const CheckpointRow = z.object({
  register: z.string(),
  size: z.coerce.number(),
  root: z.string(),
  ts_ms: z.coerce.number(),
  key_id: z.string(),
  signature: z.string(),
  countersignatures: z.string(),
  version: z.coerce.number(),
})
type CheckpointRow = z.output<typeof CheckpointRow>

const HeadRow = z.object({ seq: z.coerce.number(), hash: z.string() })
const CountRow = z.object({ n: z.coerce.number() })

/**
 * An entry as stored: its row's own columns (which verification checks against the entry), the
 * canonical text of the `entry` column, and the entry that text holds.
 */
export interface StoredEntry extends Omit<EntryRow, 'entry'> {
  /** The `entry` column: the canonical JSON that was hashed. */
  text: string
  entry: RegisterEntry
}

/** A checkpoint with the row version it is stored under (ReplacingMergeTree). */
export interface StoredCheckpoint {
  checkpoint: SignedCheckpoint
  version: number
}

/** Which entries to read: from a seq, up to one, at most `limit` seqs, of one case. */
export interface EntryRange {
  from: number
  to?: number
  limit?: number
  caseId?: string
}

export class RegisterRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  /** The stored entry with the highest seq: where the chain goes on. */
  async lastEntry(register: RegisterName): Promise<{ seq: number; hash: string } | undefined> {
    const [row] = await selectParsed(
      this.#store,
      HeadRow,
      `SELECT seq, hash FROM ${ENTRIES} WHERE register = {register:String}
       ORDER BY seq DESC LIMIT 1`,
      { register },
    )
    return row
  }

  /**
   * Entries in seq order from `range.from`. With a limit, every row sharing the last seq comes
   * too (WITH TIES), so a second row for one seq cannot hide between two reads.
   */
  async entries(register: RegisterName, range: EntryRange): Promise<StoredEntry[]> {
    const rows = await selectParsed(
      this.#store,
      EntryRow,
      `SELECT ${ENTRY_COLUMNS} FROM ${ENTRIES}
       WHERE register = {register:String} AND seq >= {from:UInt64}
         ${range.to === undefined ? '' : 'AND seq <= {to:UInt64}'}
         ${range.caseId === undefined ? '' : 'AND case_id = {case_id:String}'}
       ORDER BY seq ${range.limit === undefined ? '' : 'LIMIT {limit:UInt32} WITH TIES'}`,
      {
        register,
        from: range.from,
        to: range.to ?? 0,
        limit: range.limit ?? 0,
        case_id: range.caseId ?? '',
      },
    )
    return rows.map(storedEntry)
  }

  /** How many entries carry no signature (stored before migration 013). */
  async unsignedCount(register: RegisterName): Promise<number> {
    const [row] = await selectParsed(
      this.#store,
      CountRow,
      `SELECT count() AS n FROM ${ENTRIES} WHERE register = {register:String} AND signature = ''`,
      { register },
    )
    return row?.n ?? 0
  }

  /**
   * The seqs holding an entry of `kind`, ascending: where to read such entries (through the
   * trust rules) without reading the whole register.
   */
  async seqsOfKind(register: RegisterName, kind: string): Promise<number[]> {
    const rows = await selectParsed(
      this.#store,
      z.object({ seq: z.coerce.number() }),
      `SELECT DISTINCT seq FROM ${ENTRIES}
       WHERE register = {register:String} AND kind = {kind:String} ORDER BY seq`,
      { register, kind },
    )
    return rows.map((r) => r.seq)
  }

  /** How many stored entries are of one of `kinds` or carry a signature, trusted or not. */
  async countOfKindsOrSigned(register: RegisterName, kinds: readonly string[]): Promise<number> {
    const [row] = await selectParsed(
      this.#store,
      CountRow,
      `SELECT count() AS n FROM ${ENTRIES}
       WHERE register = {register:String} AND (kind IN {kinds:Array(String)} OR signature != '')`,
      { register, kinds },
    )
    return row?.n ?? 0
  }

  /** Writes entries in one insert, each with its canonical text and its signature column. */
  async insertEntries(register: RegisterName, tsMs: number, entries: RegisterEntry[]) {
    await insertRows(
      this.#store,
      ENTRIES,
      entries.map((entry) => ({
        register,
        seq: entry.seq,
        ts: tsMs,
        kind: entry.kind,
        actor: entry.actor,
        case_id: entry.case_id ?? '',
        entry: canonicalJson(entryBody(entry)),
        prev_hash: entry.prev_hash,
        hash: entry.hash,
        signature: entry.signature ?? '',
      })),
    )
  }

  async checkpoints(register: RegisterName): Promise<SignedCheckpoint[]> {
    const rows = await selectParsed(
      this.#store,
      CheckpointRow,
      `SELECT ${CHECKPOINT_COLUMNS} FROM ${CHECKPOINTS} FINAL
       WHERE register = {register:String} ORDER BY size`,
      { register },
    )
    return rows.map(checkpointOfRow)
  }

  async checkpointAt(register: RegisterName, size: number): Promise<StoredCheckpoint | undefined> {
    const [row] = await selectParsed(
      this.#store,
      CheckpointRow,
      `SELECT ${CHECKPOINT_COLUMNS} FROM ${CHECKPOINTS} FINAL
       WHERE register = {register:String} AND size = {size:UInt64}`,
      { register, size },
    )
    return row === undefined
      ? undefined
      : { checkpoint: checkpointOfRow(row), version: row.version }
  }

  /** The checkpoint of the largest size signed with the key `keyId`. */
  async latestCheckpointOf(
    register: RegisterName,
    keyId: string,
  ): Promise<SignedCheckpoint | undefined> {
    const [row] = await selectParsed(
      this.#store,
      CheckpointRow,
      `SELECT ${CHECKPOINT_COLUMNS} FROM ${CHECKPOINTS} FINAL
       WHERE register = {register:String} AND key_id = {key_id:String}
       ORDER BY size DESC LIMIT 1`,
      { register, key_id: keyId },
    )
    return row === undefined ? undefined : checkpointOfRow(row)
  }

  /**
   * Stores a checkpoint; one already stored at its size is replaced by the higher `version`
   * (a countersignature added).
   */
  async saveCheckpoint(checkpoint: SignedCheckpoint, tsMs: number, version: number) {
    await insertRows(this.#store, CHECKPOINTS, [
      {
        register: checkpoint.register,
        size: checkpoint.size,
        root: checkpoint.root,
        ts: tsMs,
        key_id: checkpoint.key_id,
        signature: checkpoint.signature,
        countersignatures: JSON.stringify(checkpoint.countersignatures),
        version,
      },
    ])
  }
}

function storedEntry(row: EntryRow): StoredEntry {
  const { entry: text, ...columns } = row
  return { ...columns, text, entry: entryOfRow(row) }
}

/**
 * The entry a stored row holds. A row whose `entry` is not an entry is shown as one built from
 * its other columns, marked unreadable, so that verification reports it as changed instead of
 * the read failing (its hash cannot match).
 */
function entryOfRow(row: EntryRow): RegisterEntry {
  // The signature is its own column: one written into the entry's JSON is not the entry's.
  const signature = row.signature ? { signature: row.signature } : {}
  try {
    const parsed: unknown = JSON.parse(row.entry)
    if (looksLikeEntry(parsed)) return { ...entryBody(parsed), ...signature }
  } catch {
    // fall through
  }
  return {
    register: row.register as RegisterName,
    seq: row.seq,
    ts: new Date(row.ts_ms).toISOString(),
    kind: row.kind,
    actor: row.actor,
    ...(row.case_id === '' ? {} : { case_id: row.case_id }),
    details: { unreadable_entry: row.entry.slice(0, 200) },
    prev_hash: row.prev_hash,
    hash: row.hash,
    ...signature,
  }
}

function checkpointOfRow(row: CheckpointRow): SignedCheckpoint {
  let countersignatures: Countersignature[] = []
  try {
    const parsed: unknown = JSON.parse(row.countersignatures || '[]')
    if (Array.isArray(parsed)) countersignatures = parsed as Countersignature[]
  } catch {
    // An unreadable list verifies as no countersignatures; the signed head still stands.
  }
  return {
    register: row.register as RegisterName,
    size: row.size,
    root: row.root,
    ts: new Date(row.ts_ms).toISOString(),
    key_id: row.key_id,
    signature: row.signature,
    countersignatures,
  }
}
