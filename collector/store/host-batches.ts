/**
 * Writes one agent batch of tier T data, exactly once.
 *
 * A batch's content digest (SHA-256 of the batch without its seq, keys sorted) names its inserts:
 * each insert carries a deduplication token made of the agent, the digest and the table, and the
 * batch's record in `ingest_batches` (with the digest) is written last. A batch seen there is
 * acknowledged as a duplicate without writing; a batch whose writes were cut short by a crash is
 * written again on its retry, and the engine drops the parts that had already landed (also in the
 * rollups). The tokens leave the seq out so that a batch the agent had to renumber (its counter
 * went backwards) cannot land twice, and a different batch reusing a seq is never taken for the
 * parts of another.
 *
 * A stored `(agent_id, seq)` with another digest means the agent's numbering went backwards: the
 * batch is refused with the agent's highest stored seq, and nothing is written.
 */

import { createHash } from 'node:crypto'
import type { HostBatch } from '../../protocol/v1.ts'
import { MAX_SPAN_MS } from '../../protocol/v1.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import type { Store } from './client.ts'
import { insertRows, selectRows } from './rows.ts'
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

/** The deduplication token of one table's insert for a batch. */
export const dedupToken = (agentId: string, digest: string, table: string): string =>
  `${agentId}:${digest}:${table}`

interface StoredBatch {
  digest: string
}

async function storedBatch(
  store: Store,
  agentId: string,
  seq: number,
): Promise<StoredBatch | undefined> {
  const [row] = await selectRows<StoredBatch>(
    store,
    `SELECT digest FROM tally.ingest_batches
     WHERE agent_id = {agent:String} AND seq = {seq:UInt64} LIMIT 1`,
    { agent: agentId, seq },
  )
  return row
}

export async function isBatchStored(store: Store, agentId: string, seq: number): Promise<boolean> {
  return (await storedBatch(store, agentId, seq)) !== undefined
}

/** The highest seq stored for the agent; 0 when none is. */
export async function lastStoredSeq(store: Store, agentId: string): Promise<number> {
  const [row] = await selectRows<{ last: string | number }>(
    store,
    'SELECT max(seq) AS last FROM tally.ingest_batches WHERE agent_id = {agent:String}',
    { agent: agentId },
  )
  return Number(row?.last ?? 0)
}

/**
 * Stores `batch` (validated) once. `digest` is `batchDigest` of the body as sent; the caller has
 * checked its time (`implausibleTime`), which bounds the interval's span. Its usage is stored
 * only when recent enough to count (store/usage.ts), under the host's keyed id.
 */
export async function writeHostBatch(
  store: Store,
  agent: AgentIdentity,
  batch: HostBatch,
  digest: string,
  usage: UsageIngest,
  receivedAt = Date.now(),
): Promise<BatchOutcome> {
  const stored = await storedBatch(store, agent.agent_id, batch.seq)
  if (stored !== undefined) {
    // '' : stored before digests were kept; taken as a duplicate, as it was then.
    if (stored.digest === digest || stored.digest === '') return { status: 'duplicate' }
    return { status: 'conflict', lastSeq: await lastStoredSeq(store, agent.agent_id) }
  }
  const intervalMs = batch.interval.end - batch.interval.start
  if (!(intervalMs > 0 && intervalMs <= MAX_SPAN_MS)) {
    // interval_ms is UInt32: refuse rather than let the engine wrap it.
    throw new RangeError(`batch interval of ${intervalMs} ms does not fit interval_ms`)
  }
  const token = (table: string) => dedupToken(agent.agent_id, digest, table)
  await insertRows(
    store,
    'tally.host_metrics',
    batch.samples.map((s) => ({
      ts: batch.interval.end,
      interval_ms: intervalMs,
      site: agent.site,
      host: agent.host,
      metric: s.metric,
      attributes: s.attributes,
      value: s.value,
      agent_id: agent.agent_id,
      seq: batch.seq,
    })),
    token('host_metrics'),
  )
  // Per-host rows go to a Null table: only the site-level cells its view writes are kept.
  await insertRows(
    store,
    'tally.usage_contributions',
    usageContributionRows(agent, batch, usage, receivedAt),
    token('usage'),
  )
  if (batch.inventory !== undefined) {
    await insertRows(
      store,
      'tally.host_inventory',
      [
        {
          agent_id: agent.agent_id,
          site: agent.site,
          host: agent.host,
          received_at: receivedAt,
          inventory: JSON.stringify(batch.inventory),
        },
      ],
      token('host_inventory'),
    )
  }
  await insertRows(
    store,
    'tally.ingest_batches',
    [
      {
        agent_id: agent.agent_id,
        seq: batch.seq,
        site: agent.site,
        host: agent.host,
        agent_version: batch.agent_version,
        interval_start: batch.interval.start,
        interval_end: batch.interval.end,
        received_at: receivedAt,
        samples: batch.samples.length,
        digest,
      },
    ],
    // The record is per seq: a renumbered batch gets the record of its new seq.
    `${agent.agent_id}:${batch.seq}:${digest}:ingest_batches`,
  )
  return { status: 'stored' }
}
