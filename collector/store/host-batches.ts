/**
 * The rows of agent batches of tier T data, and how a group of them is checked and written.
 *
 * A batch is identified by (agent_id, seq); its content digest (SHA-256 of the batch without its
 * seq, keys sorted) tells a resent batch (the same digest: a duplicate, acknowledged without
 * writing) from a batch whose agent numbering went backwards (another digest: refused with the
 * agent's highest stored seq, nothing written). The record of a batch in `ingest_batches` is its
 * marker: written after every other row of the batch, so a marker seen means the batch is whole.
 *
 * Batches are written in groups (store/group-commit.ts): one insert per table for the whole
 * group, each carrying the group's deduplication token. How that stays exactly-once across a
 * crash is explained there.
 */

import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { HostBatch } from '../../protocol/v1.ts'
import { MAX_SPAN_MS } from '../../protocol/v1.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import type { Store } from './client.ts'
import { selectParsed } from './rows.ts'
import { type UsageIngest, usageContributionRows } from './usage.ts'

export type BatchOutcome =
  | { status: 'stored' }
  | { status: 'duplicate' }
  /** The seq is stored with other content; `lastSeq` is the agent's highest stored seq. */
  | { status: 'conflict'; lastSeq: number }

/** JSON with every object's keys sorted: the same content gives the same text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * The digest of a batch's content, seq left out. Computed on what the agent sent (as parsed
 * JSON), not on the collector's schema output, so that a collector upgrade that adds a default
 * does not turn a resent batch into a conflict.
 */
export function batchDigest(sent: unknown): string {
  const content =
    sent !== null && typeof sent === 'object' && !Array.isArray(sent)
      ? { ...(sent as Record<string, unknown>), seq: undefined }
      : sent
  return createHash('sha256').update(canonicalJson(content)).digest('hex')
}

/** The deduplication token of one table's insert for a group of batches. */
const groupToken = (groupId: string, table: GroupTable): string => `group:${groupId}:${table}`

/** The tables a group writes, in the order it writes them: the markers last. */
const GROUP_TABLES = [
  'host_metrics',
  'usage_contributions',
  'host_inventory',
  'ingest_batches',
] as const
export type GroupTable = (typeof GROUP_TABLES)[number]

const COLUMNS: Record<GroupTable, readonly string[]> = {
  host_metrics: [
    'ts',
    'interval_ms',
    'site',
    'host',
    'metric',
    'attributes',
    'value',
    'agent_id',
    'seq',
  ],
  usage_contributions: [
    'ts',
    'site',
    'host',
    'direction',
    'ip_version',
    'transport',
    'service',
    'peer_class',
    'bytes',
    'packets',
    'flows',
  ],
  host_inventory: ['agent_id', 'site', 'host', 'received_at', 'inventory'],
  ingest_batches: [
    'agent_id',
    'seq',
    'site',
    'host',
    'agent_version',
    'interval_start',
    'interval_end',
    'received_at',
    'samples',
    'digest',
  ],
}

/** One batch's rows per table, as arrays in COLUMNS order (compact to build and to parse). */
export type BatchRows = Record<GroupTable, unknown[][]>

/**
 * The rows `batch` (validated, its time checked by `implausibleTime`, which bounds the span)
 * adds to each table. `digest` is `batchDigest` of the body as sent. Its usage is stored only
 * when recent enough to count (store/usage.ts), under the host's keyed id.
 */
export function batchRows(
  agent: AgentIdentity,
  batch: HostBatch,
  digest: string,
  usage: UsageIngest,
  receivedAt: number,
): BatchRows {
  const intervalMs = batch.interval.end - batch.interval.start
  if (!(intervalMs > 0 && intervalMs <= MAX_SPAN_MS)) {
    // interval_ms is UInt32: refuse rather than let the engine wrap it.
    throw new RangeError(`batch interval of ${intervalMs} ms does not fit interval_ms`)
  }
  const { agent_id, site, host } = agent
  const end = batch.interval.end
  return {
    host_metrics: batch.samples.map((s) => [
      end,
      intervalMs,
      site,
      host,
      s.metric,
      s.attributes,
      s.value,
      agent_id,
      batch.seq,
    ]),
    // Per-host rows go to a Null table: only the site-level cells its view writes are kept.
    usage_contributions: usageContributionRows(agent, batch, usage, receivedAt).map((u) =>
      COLUMNS.usage_contributions.map((c) => u[c]),
    ),
    host_inventory:
      batch.inventory === undefined
        ? []
        : [[agent_id, site, host, receivedAt, JSON.stringify(batch.inventory)]],
    ingest_batches: [
      [
        agent_id,
        batch.seq,
        site,
        host,
        batch.agent_version,
        batch.interval.start,
        end,
        receivedAt,
        batch.samples.length,
        digest,
      ],
    ],
  }
}

/**
 * Writes the rows of a group, one insert per table, markers last, each insert with the group's
 * token: written again with the same id and the same rows, every table's insert that had landed
 * is dropped by the engine (also in the rollups its views feed), and the others are written.
 */
export async function insertGroup(
  store: Store,
  groupId: string,
  batches: readonly BatchRows[],
  tables: readonly GroupTable[] = GROUP_TABLES,
): Promise<void> {
  for (const table of tables) {
    const values = batches.flatMap((b) => b[table])
    if (values.length === 0) continue
    await store.insert({
      table: `tally.${table}`,
      values,
      format: 'JSONCompactEachRow',
      columns: [...COLUMNS[table]] as [string, ...string[]],
      // Always set: chDB applies a query's settings to its session, so a token left over from
      // the previous insert would make the engine drop the next one.
      clickhouse_settings: {
        insert_deduplication_token: groupToken(groupId, table),
        deduplicate_blocks_in_dependent_materialized_views: 1,
      },
    })
  }
}

export interface BatchKey {
  agent_id: string
  seq: number
}

export const batchKey = (k: BatchKey): string => `${k.agent_id}:${k.seq}`

const StoredDigestRow = z.object({ agent_id: z.string(), seq: z.number(), digest: z.string() })
const LastSeqRow = z.object({ agent_id: z.string(), last: z.number() })

/** The stored digests of those batches that have a marker, by batchKey; one query. */
export async function storedDigests(
  store: Store,
  keys: readonly BatchKey[],
): Promise<Map<string, string>> {
  if (keys.length === 0) return new Map()
  const rows = await selectParsed(
    store,
    StoredDigestRow,
    // The primary key (agent_id, seq) narrows both lists; pairs not asked for are dropped below.
    `SELECT agent_id, seq, digest FROM tally.ingest_batches
     WHERE agent_id IN {agents:Array(String)} AND seq IN {seqs:Array(UInt64)}`,
    {
      agents: [...new Set(keys.map((k) => k.agent_id))],
      seqs: [...new Set(keys.map((k) => k.seq))],
    },
  )
  const asked = new Set(keys.map(batchKey))
  const stored = new Map<string, string>()
  for (const r of rows) {
    const key = batchKey(r)
    if (asked.has(key)) stored.set(key, r.digest)
  }
  return stored
}

/** The highest seq stored for each agent (0 when none is); one query. */
export async function lastStoredSeqs(
  store: Store,
  agentIds: readonly string[],
): Promise<Map<string, number>> {
  const last = new Map(agentIds.map((id) => [id, 0]))
  if (agentIds.length === 0) return last
  const rows = await selectParsed(
    store,
    LastSeqRow,
    `SELECT agent_id, max(seq) AS last FROM tally.ingest_batches
     WHERE agent_id IN {agents:Array(String)} GROUP BY agent_id`,
    { agents: [...new Set(agentIds)] },
  )
  for (const r of rows) last.set(r.agent_id, r.last)
  return last
}
