/**
 * Drill-down: an investigator's reads of tier I records, inside the access grant's scope
 * (narrowing.ts checks the request). Records are sealed at rest (sealed.ts): the store selects by
 * case, agent and time (records-repository.ts), the collector opens those rows with the case key
 * and keeps the ones inside the subjects' addresses and the narrowing, reading at most
 * DRILL_SCAN_ROWS stored rows per call.
 */
import type { AccessClaims } from '../cases/grants.ts'
import { normalizeAddress } from './common.ts'
import type { CaseKeys } from './keys.ts'
import type { DrillCategory, Narrowing } from './narrowing.ts'
import type { StoredRecord, TierIRecordsRepository } from './records-repository.ts'
import {
  type DnsSecret,
  type EventClear,
  type FlowClear,
  type FlowSecret,
  openRow,
  type RowIdentity,
  type WebSecret,
} from './sealed.ts'

/** Stored rows one drill-down call reads at most, before decryption and filtering. */
export const DRILL_SCAN_ROWS = 100_000

export type DrillRow = Record<string, string | number>

/** A stored row that does not open: tampered with, moved, or its key is not the case's. */
export class UnreadableRow extends Error {
  override name = 'UnreadableRow'
}

/** One stored row opened: its clear part and its sealed part, as the answer lists them. */
function openRecord(
  key: Buffer,
  category: DrillCategory,
  id: RowIdentity,
  row: StoredRecord,
): DrillRow {
  const { agent_id } = row
  if (category === 'flows') {
    const clear = row.clear as FlowClear
    const s = openRow<FlowSecret>(key, category, id, clear, row.sealed)
    return {
      agent_id,
      start: clear.start,
      end: clear.end,
      ip_version: s.ip_version,
      protocol: s.protocol,
      src: s.src,
      dst: s.dst,
      src_port: s.src_port,
      dst_port: s.dst_port,
      bytes: s.bytes,
      packets: s.packets,
      tcp_flags: s.tcp_flags,
      community_id: s.community_id,
    }
  }
  const clear = row.clear as EventClear
  if (category === 'dns') {
    const s = openRow<DnsSecret>(key, category, id, clear, row.sealed)
    const { client, server, query, qtype, rcode } = s
    return { agent_id, ts: clear.ts, client, server, query, qtype, rcode }
  }
  const s = openRow<WebSecret>(key, category, id, clear, row.sealed)
  const { client, server, server_port, kind, name } = s
  return { agent_id, ts: clear.ts, client, server, server_port, kind, name }
}

/** Opens every row, with the case's keys (each version fetched once). */
async function openRows(
  keys: CaseKeys,
  category: DrillCategory,
  caseId: string,
  stored: StoredRecord[],
): Promise<DrillRow[]> {
  const byVersion = new Map<number, Buffer>()
  const out: DrillRow[] = []
  for (const row of stored) {
    let key = byVersion.get(row.key_version)
    if (key === undefined) {
      key = await keys.get(caseId, row.key_version)
      byVersion.set(row.key_version, key)
    }
    const id = { case_id: caseId, grant_id: row.grant_id, agent_id: row.agent_id }
    try {
      out.push(openRecord(key, category, id, row))
    } catch {
      // Never the row's content: only where it is.
      throw new UnreadableRow(
        `a stored ${category} row of case ${caseId} (agent ${row.agent_id}) does not open with its case key`,
      )
    }
  }
  return out
}

const ENDPOINTS: Record<DrillCategory, [string, string]> = {
  flows: ['src', 'dst'],
  dns: ['client', 'server'],
  web: ['client', 'server'],
}

/** The rows of the grant's subjects: their agents, and their addresses in gateway mode. */
function ofSubjects(category: DrillCategory, grant: AccessClaims, rows: DrillRow[]): DrillRow[] {
  const [a, b] = ENDPOINTS[category]
  const subjects = grant.subjects.map((s) => ({
    agent_id: s.agent_id,
    addresses: [...new Set(s.addresses.map((x) => normalizeAddress(x) ?? x))],
  }))
  return rows.filter((row) =>
    subjects.some(
      (s) =>
        s.agent_id === row.agent_id &&
        (s.addresses.length === 0 || s.addresses.some((x) => row[a] === x || row[b] === x)),
    ),
  )
}

/** The rows the narrowing's address, port and protocol keep. */
function narrowed(category: DrillCategory, narrowing: Narrowing, rows: DrillRow[]): DrillRow[] {
  const [a, b] = ENDPOINTS[category]
  const { address, port, protocol } = narrowing
  return rows.filter(
    (row) =>
      (address === undefined || row[a] === address || row[b] === address) &&
      (port === undefined ||
        (category === 'flows'
          ? row.src_port === port || row.dst_port === port
          : row.server_port === port)) &&
      (protocol === undefined || row.protocol === protocol),
  )
}

/**
 * Two collectors may each have made a key for a case, so one flow can be stored under two flow
 * keys: keep its latest version, as FINAL does for one key.
 */
function latestFlows(rows: DrillRow[]): DrillRow[] {
  const latest = new Map<string, DrillRow>()
  for (const row of rows) {
    const id = `${row.agent_id}\n${row.start}\n${row.community_id}`
    const seen = latest.get(id)
    if (seen === undefined || Number(row.end) > Number(seen.end)) latest.set(id, row)
  }
  const cmp = (x: string | number | undefined, y: string | number | undefined) =>
    x === y ? 0 : String(x) < String(y) ? -1 : 1
  return [...latest.values()].sort(
    (x, y) =>
      Number(x.start) - Number(y.start) ||
      cmp(x.community_id, y.community_id) ||
      cmp(x.agent_id, y.agent_id),
  )
}

/** The opened rows inside the grant's subjects (their addresses in gateway mode) and narrowing. */
export function selectInScope(
  category: DrillCategory,
  grant: AccessClaims,
  narrowing: Narrowing | undefined,
  rows: DrillRow[],
): DrillRow[] {
  let kept = ofSubjects(category, grant, rows)
  if (narrowing !== undefined) kept = narrowed(category, narrowing, kept)
  return category === 'flows' ? latestFlows(kept) : kept
}

/**
 * The rows of one category in scope. At most `scan` stored rows are read and decrypted per call
 * (DRILL_SCAN_ROWS), the earliest first: when more are stored in the range, the answer says
 * `truncated`, as it does when more than `limit` rows match; narrowing the time range reads on.
 */
export async function queryRecords(
  records: TierIRecordsRepository,
  keys: CaseKeys,
  category: DrillCategory,
  caseId: string,
  grant: AccessClaims,
  narrowing: Narrowing | undefined,
  limit: number,
  scan = DRILL_SCAN_ROWS,
): Promise<{ rows: DrillRow[]; truncated: boolean }> {
  const stored = await records.scan({
    category,
    case_id: caseId,
    agents: grant.subjects.map((s) => s.agent_id),
    window: grant.window,
    narrowing,
    limit: scan + 1,
  })
  const scanCut = stored.length > scan
  const opened = await openRows(keys, category, caseId, stored.slice(0, scan))
  const rows = selectInScope(category, grant, narrowing, opened)
  return { rows: rows.slice(0, limit), truncated: scanCut || rows.length > limit }
}
