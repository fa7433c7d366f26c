/**
 * The sealed tier I records (sealed.ts): `tally_restricted.flows`, `.dns`, `.web` and
 * `.pcap_segments`, with `tally.restricted_batches`, the record of every batch stored (so that a
 * retry is recognised). In clear only the case, grant and agent ids, the times and the row keys:
 * what the drill-down selects on. Addresses, ports and names are inside the ciphertext, so they
 * are never part of a query.
 */
import { z } from 'zod'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'
import type { Sealed } from './keys.ts'
import type { EventClear, FlowClear, SealedCategory } from './sealed.ts'

/** Whose rows they are, and when the collector received them. */
export interface RowPlace {
  case_id: string
  grant_id: string
  agent_id: string
  received_at: number
}

export interface SealedFlowRow {
  clear: FlowClear
  sealed: Sealed
}
export interface SealedEventRow {
  clear: EventClear
  sealed: Sealed
}
export interface SealedSegmentRow {
  index: number
  first: number
  last: number
  packets: number
  bytes: number
  sealed: Sealed
}

export interface BatchCounts {
  flows: number
  dns: number
  web: number
  pcap: number
}

/** One agent's batch, every record sealed with the key of version `key_version`. */
export interface SealedBatch {
  place: RowPlace
  seq: number
  key_version: number
  flows: SealedFlowRow[]
  dns: SealedEventRow[]
  web: SealedEventRow[]
  segments: SealedSegmentRow[]
  counts: BatchCounts
}

/** A stored flow, DNS or web row as read: where it is, what is in clear, the sealed rest. */
export interface StoredRecord {
  grant_id: string
  agent_id: string
  key_version: number
  clear: FlowClear | EventClear
  sealed: Sealed
}

/** A stored packet segment as read. */
export interface StoredSegment {
  grant_id: string
  agent_id: string
  segment_index: number
  key_version: number
  sealed: Sealed
}

/** Which stored rows a scan reads: a case, its agents and window, then an optional narrowing. */
export interface RecordScan {
  category: SealedCategory
  case_id: string
  agents: string[]
  window: { start: number; end: number }
  narrowing?: { from: number; to: number; agent_id?: string | undefined } | undefined
  /** At most this many rows, in time order. */
  limit: number
}

const sealedColumns = { nonce: z.string(), ciphertext: z.string(), tag: z.string() }
const sealedOf = (row: { nonce: string; ciphertext: string; tag: string }): Sealed => ({
  nonce: row.nonce,
  ciphertext: row.ciphertext,
  tag: row.tag,
})
const rowKeys = { grant_id: z.string(), agent_id: z.string(), key_version: z.number() }

const FlowRow = z
  .object({
    ...rowKeys,
    ...sealedColumns,
    start_ms: z.number(),
    end_ms: z.number(),
    flow_key: z.string(),
  })
  .transform(
    (row): StoredRecord => ({
      grant_id: row.grant_id,
      agent_id: row.agent_id,
      key_version: row.key_version,
      clear: { start: row.start_ms, end: row.end_ms, flow_key: row.flow_key },
      sealed: sealedOf(row),
    }),
  )

const EventRow = z
  .object({ ...rowKeys, ...sealedColumns, ts_ms: z.number(), row_id: z.string() })
  .transform(
    (row): StoredRecord => ({
      grant_id: row.grant_id,
      agent_id: row.agent_id,
      key_version: row.key_version,
      clear: { ts: row.ts_ms, row_id: row.row_id },
      sealed: sealedOf(row),
    }),
  )

const SegmentRow = z.object({ ...rowKeys, ...sealedColumns, segment_index: z.number() }).transform(
  (row): StoredSegment => ({
    grant_id: row.grant_id,
    agent_id: row.agent_id,
    segment_index: row.segment_index,
    key_version: row.key_version,
    sealed: sealedOf(row),
  }),
)

const SEALED = 'key_version, nonce, ciphertext, tag'

/** The WHERE clause and parameters of a scan; every value is a bound parameter. */
function scanFilter(scan: RecordScan): { where: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {
    case_id: scan.case_id,
    agents: [...new Set(scan.agents)],
    w_start: scan.window.start,
    w_end: scan.window.end,
    limit: scan.limit,
  }
  const where = ['case_id = {case_id:String}', 'has({agents:Array(String)}, agent_id)']
  const flows = scan.category === 'flows'
  where.push(
    flows
      ? 'start >= fromUnixTimestamp64Milli({w_start:Int64}) AND `end` <= fromUnixTimestamp64Milli({w_end:Int64})'
      : 'ts BETWEEN fromUnixTimestamp64Milli({w_start:Int64}) AND fromUnixTimestamp64Milli({w_end:Int64})',
  )
  const narrowing = scan.narrowing
  if (narrowing !== undefined) {
    params.from = narrowing.from
    params.to = narrowing.to
    // A flow is in [from, to] when it was running at some time inside it.
    where.push(
      flows
        ? '`end` >= fromUnixTimestamp64Milli({from:Int64}) AND start <= fromUnixTimestamp64Milli({to:Int64})'
        : 'ts BETWEEN fromUnixTimestamp64Milli({from:Int64}) AND fromUnixTimestamp64Milli({to:Int64})',
    )
    if (narrowing.agent_id !== undefined) {
      params.agent = narrowing.agent_id
      where.push('agent_id = {agent:String}')
    }
  }
  return { where: where.join(' AND '), params }
}

export class TierIRecordsRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  /** Whether the batch (agent, grant, seq) was stored before. */
  async isBatchStored(agentId: string, grantId: string, seq: number): Promise<boolean> {
    const [row] = await selectParsed(
      this.#store,
      z.object({ n: z.number() }),
      `SELECT count() AS n FROM tally.restricted_batches
       WHERE agent_id = {agent:String} AND grant_id = {grant:String} AND seq = {seq:UInt64}`,
      { agent: agentId, grant: grantId, seq },
    )
    return (row?.n ?? 0) > 0
  }

  /**
   * Writes a batch, one insert per table, each with a deduplication token made of (agent, grant,
   * seq), and its record in `tally.restricted_batches` last: a retry after a crash is written
   * once, a retry after the acknowledgement is recognised by isBatchStored.
   */
  async insertBatch(batch: SealedBatch): Promise<void> {
    const { place, seq, key_version } = batch
    const token = (table: string) => `${place.agent_id}:${place.grant_id}:${seq}:${table}`
    const row = (clear: FlowClear | EventClear, sealed: Sealed) => ({
      ...place,
      ...clear,
      key_version,
      ...sealed,
    })
    await insertRows(
      this.#store,
      'tally_restricted.flows',
      batch.flows.map((f) => row(f.clear, f.sealed)),
      token('flows'),
    )
    for (const category of ['dns', 'web'] as const) {
      await insertRows(
        this.#store,
        `tally_restricted.${category}`,
        batch[category].map((e) => row(e.clear, e.sealed)),
        token(category),
      )
    }
    await insertRows(
      this.#store,
      'tally_restricted.pcap_segments',
      batch.segments.map(({ index, sealed, ...segment }) => ({
        ...place,
        segment_index: index,
        ...segment,
        key_version,
        ...sealed,
      })),
      token('pcap_segments'),
    )
    await insertRows(
      this.#store,
      'tally.restricted_batches',
      [
        {
          agent_id: place.agent_id,
          grant_id: place.grant_id,
          seq,
          case_id: place.case_id,
          received_at: place.received_at,
          ...batch.counts,
        },
      ],
      token('batches'),
    )
  }

  /** Stored flow, DNS or web rows that may be in scope, in time order (at most `scan.limit`). */
  async scan(scan: RecordScan): Promise<StoredRecord[]> {
    const { where, params } = scanFilter(scan)
    if (scan.category === 'flows') {
      return selectParsed(
        this.#store,
        FlowRow,
        `SELECT grant_id, agent_id, toUnixTimestamp64Milli(start) AS start_ms,
           toUnixTimestamp64Milli(\`end\`) AS end_ms, flow_key, ${SEALED}
         FROM tally_restricted.flows FINAL WHERE ${where}
         ORDER BY start, flow_key, agent_id LIMIT {limit:UInt32}`,
        params,
      )
    }
    return selectParsed(
      this.#store,
      EventRow,
      `SELECT grant_id, agent_id, toUnixTimestamp64Milli(ts) AS ts_ms, row_id, ${SEALED}
       FROM tally_restricted.${scan.category} WHERE ${where}
       ORDER BY ts, agent_id, row_id LIMIT {limit:UInt32}`,
      params,
    )
  }

  /** The case's packet segments of these agents inside the window, in time order. */
  async segments(
    caseId: string,
    agents: string[],
    window: { start: number; end: number },
  ): Promise<StoredSegment[]> {
    return selectParsed(
      this.#store,
      SegmentRow,
      `SELECT grant_id, agent_id, segment_index, ${SEALED}
       FROM tally_restricted.pcap_segments FINAL
       WHERE case_id = {case_id:String} AND has({agents:Array(String)}, agent_id)
         AND first >= fromUnixTimestamp64Milli({w_start:Int64})
         AND last <= fromUnixTimestamp64Milli({w_end:Int64})
       ORDER BY first, agent_id, grant_id, segment_index`,
      { case_id: caseId, agents, w_start: window.start, w_end: window.end },
    )
  }
}
