/**
 * Writes one agent batch of tier T data, exactly once.
 *
 * Each insert carries a deduplication token made of the agent and sequence number, and the
 * batch's record in `ingest_batches` is written last. A batch seen there is acknowledged as a
 * duplicate without writing; a batch whose writes were cut short by a crash is written again on
 * its retry, and the engine drops the parts that had already landed (also in the rollups).
 */

import type { HostBatch } from '../../protocol/v1.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import type { Store } from './client.ts'
import { insertRows, selectRows } from './rows.ts'

export type BatchOutcome = 'stored' | 'duplicate'

export async function isBatchStored(store: Store, agentId: string, seq: number): Promise<boolean> {
  const rows = await selectRows<{ n: number }>(
    store,
    'SELECT count() AS n FROM tally.ingest_batches WHERE agent_id = {agent:String} AND seq = {seq:UInt64}',
    { agent: agentId, seq },
  )
  return Number(rows[0]?.n ?? 0) > 0
}

export async function writeHostBatch(
  store: Store,
  agent: AgentIdentity,
  batch: HostBatch,
  receivedAt = Date.now(),
): Promise<BatchOutcome> {
  if (await isBatchStored(store, agent.agent_id, batch.seq)) return 'duplicate'
  const token = (table: string) => `${agent.agent_id}:${batch.seq}:${table}`
  const intervalMs = batch.interval.end - batch.interval.start
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
  if (batch.usage !== undefined && batch.usage.length > 0) {
    // Per-host rows go to a Null table: only the site-level sums its views write are kept.
    const intervalStart = Math.floor(batch.interval.start / 1000)
    await insertRows(
      store,
      'tally.usage_contributions',
      batch.usage.map((u) => ({ ts: intervalStart, site: agent.site, host: agent.host, ...u })),
      token('usage'),
    )
  }
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
      },
    ],
    token('ingest_batches'),
  )
  return 'stored'
}
