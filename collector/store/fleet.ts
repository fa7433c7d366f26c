/**
 * The fleet: every enrolled agent with what it last sent, from one summary row per agent
 * (`tally.agent_last_batch`, fed by every stored batch record) rather than the batch records
 * themselves, and its spool depth (the highest of its last reported hour in the last day) from
 * the hourly rollup. `batches` counts the batches stored since the summary exists
 * (migration 012).
 */
import { z } from 'zod'
import type { Store } from './client.ts'
import { selectParsed } from './rows.ts'

export interface FleetAgent {
  agent_id: string
  host: string
  site: string
  version: string | null
  enrolled_at: string
  revoked: boolean
  last_seen: string | null
  last_seq: number | null
  batches: number
  spool_depth: number | null
}

/** A row of the query below; the joined columns are null for an agent that sent nothing. */
const FleetRow = z.object({
  agent_id: z.string(),
  host: z.string(),
  site: z.string(),
  enrolled_at: z.number(),
  revoked: z.number(),
  version: z.string().nullable(),
  last_seen: z.number().nullable(),
  last_seq: z.number().nullable(),
  batches: z.number().nullable(),
  spool_depth: z.number().nullable(),
})

export async function listFleet(store: Store, site?: string): Promise<FleetAgent[]> {
  const rows = await selectParsed(
    store,
    FleetRow,
    `SELECT a.agent_id AS agent_id, a.host AS host, a.site AS site,
            toUnixTimestamp64Milli(a.enrolled_at) AS enrolled_at,
            a.revoked_at IS NOT NULL AS revoked,
            b.version AS version, b.last_seen AS last_seen, b.last_seq AS last_seq,
            b.batches AS batches, h.spool_depth AS spool_depth
     FROM (SELECT * FROM tally.agents FINAL) AS a
     LEFT JOIN
     (
         SELECT agent_id,
                argMaxMerge(agent_version) AS version,
                toUnixTimestamp64Milli(max(last_received)) AS last_seen,
                max(last_seq) AS last_seq,
                sum(batches) AS batches
         FROM tally.agent_last_batch
         WHERE {site:String} = '' OR site = {site:String}
         GROUP BY agent_id
     ) AS b ON a.agent_id = b.agent_id
     LEFT JOIN
     (
         SELECT site, host, argMax(highest, ts) AS spool_depth
         FROM
         (
             SELECT site, toString(host) AS host, ts, max(max) AS highest
             FROM tally.host_metrics_1h
             WHERE metric = 'tally.agent.spool.depth' AND ts > now() - INTERVAL 1 DAY
               AND ({site:String} = '' OR site = {site:String})
             GROUP BY site, host, ts
         )
         GROUP BY site, host
     ) AS h ON a.site = h.site AND a.host = h.host
     WHERE {site:String} = '' OR a.site = {site:String}
     ORDER BY a.site, a.host, a.agent_id
     SETTINGS join_use_nulls = 1`,
    { site: site ?? '' },
  )
  return rows.map((r) => ({
    agent_id: r.agent_id,
    host: r.host,
    site: r.site,
    version: r.version,
    enrolled_at: new Date(r.enrolled_at).toISOString(),
    revoked: r.revoked !== 0,
    last_seen: r.last_seen === null ? null : new Date(r.last_seen).toISOString(),
    last_seq: r.last_seq,
    batches: r.batches ?? 0,
    spool_depth: r.spool_depth,
  }))
}
