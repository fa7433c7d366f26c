/**
 * Drill-down: an investigator's reads of tier I records, inside the access grant's scope.
 *
 * The scope comes from the grant alone (its case, its subjects' agents and addresses, its
 * window); the request may only narrow it (from, to, agent_id, address, port, protocol, limit),
 * every value is checked and then bound as a typed parameter ({name:Type}); no request text is
 * ever part of the SQL. Records are sealed at rest (sealed.ts): the store selects by case, agent
 * and time, the collector opens those rows with the case key and keeps the ones inside the
 * subjects' addresses and the narrowing, reading at most DRILL_SCAN_ROWS stored rows per call. A narrowing that would widen the scope is refused (403 outside_scope),
 * an unknown or malformed parameter is a 400.
 */
import { z } from 'zod'
import type { Category } from '../../protocol/grants.ts'
import type { AccessClaims } from '../cases/grants.ts'
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import { selectRows } from '../store/rows.ts'
import { normalizeAddress } from './common.ts'
import type { CaseKeys, Sealed } from './keys.ts'
import { type DnsSecret, type FlowSecret, openRow, type WebSecret } from './sealed.ts'

export const DRILL_CATEGORIES = ['flows', 'dns', 'web'] as const
export type DrillCategory = (typeof DRILL_CATEGORIES)[number]

import { MAX_DRILL_LIMIT as MAX_LIMIT } from '../../protocol/api/names.ts'

export { MAX_LIMIT }
export const DEFAULT_LIMIT = 1_000

const PARAMS: Record<DrillCategory, readonly string[]> = {
  flows: ['from', 'to', 'agent_id', 'address', 'port', 'protocol', 'limit'],
  dns: ['from', 'to', 'agent_id', 'address', 'limit'],
  web: ['from', 'to', 'agent_id', 'address', 'port', 'limit'],
}

const PROTOCOL_NAMES = new Map<string, number>([
  ['icmp', 1],
  ['tcp', 6],
  ['udp', 17],
  ['ipv6-icmp', 58],
  ['icmpv6', 58],
])

/**
 * A narrowing that would read beyond the grant. Its own class because the service registers
 * such an attempt (a malformed parameter is only refused).
 */
export class OutsideScope extends DomainError {
  override name = 'OutsideScope'
  constructor(message: string) {
    super('forbidden', 'outside_scope', message)
  }
}

const bad = (message: string) => new DomainError('invalid', 'invalid_param', message)
const wider = (message: string) => new OutsideScope(message)

/** What a request narrows the grant's scope to. */
export interface Narrowing {
  from: number
  to: number
  agent_id?: string
  address?: string
  port?: number
  protocol?: number
  limit: number
}

const isoInstant = z.iso.datetime({ offset: true })

function parseInstant(name: string, value: string): number {
  if (/^\d{1,15}$/.test(value)) return Number(value)
  if (isoInstant.safeParse(value).success) {
    const ms = Date.parse(value)
    if (Number.isFinite(ms)) return ms
  }
  throw bad(`${name} must be an ISO 8601 instant with an offset or epoch milliseconds`)
}

function parseInteger(name: string, value: string, min: number, max: number): number {
  if (!/^\d{1,6}$/.test(value)) throw bad(`${name} must be an integer from ${min} to ${max}`)
  const n = Number(value)
  if (n < min || n > max) throw bad(`${name} must be an integer from ${min} to ${max}`)
  return n
}

const grantAddresses = (grant: AccessClaims, agentId?: string): Set<string> =>
  new Set(
    grant.subjects
      .filter((s) => agentId === undefined || s.agent_id === agentId)
      .flatMap((s) => s.addresses.map((a) => normalizeAddress(a) ?? a)),
  )

/**
 * Checks a request's query parameters against the grant. `query` holds every value of every
 * parameter as the request gave them.
 */
export function parseNarrowing(
  category: Category,
  grant: AccessClaims,
  query: Record<string, string[]>,
): Narrowing {
  if (!grant.categories.includes(category)) {
    throw wider(`the grant does not allow ${category}`)
  }
  const allowed: readonly string[] = Object.hasOwn(PARAMS, category)
    ? PARAMS[category as DrillCategory]
    : []
  const one: Record<string, string> = {}
  for (const [name, values] of Object.entries(query)) {
    if (!allowed.includes(name)) {
      throw bad(
        `unknown parameter ${JSON.stringify(name.slice(0, 40))}; ${category} takes ${allowed.join(', ')}`,
      )
    }
    if (values.length !== 1 || values[0] === undefined) throw bad(`${name} may be given once`)
    one[name] = values[0]
  }
  const n: Narrowing = { from: grant.window.start, to: grant.window.end, limit: DEFAULT_LIMIT }
  if (one.from !== undefined) n.from = parseInstant('from', one.from)
  if (one.to !== undefined) n.to = parseInstant('to', one.to)
  if (n.from > n.to) throw bad('from is after to')
  if (n.from < grant.window.start || n.to > grant.window.end) {
    throw wider(
      `the grant's window is ${new Date(grant.window.start).toISOString()} .. ${new Date(grant.window.end).toISOString()}`,
    )
  }
  if (one.agent_id !== undefined) {
    if (!/^a-[a-z0-9]{16}$/.test(one.agent_id)) throw bad('agent_id must be an agent id')
    if (!grant.subjects.some((s) => s.agent_id === one.agent_id)) {
      throw wider(`agent ${one.agent_id} is not a subject of the grant`)
    }
    n.agent_id = one.agent_id
  }
  if (one.address !== undefined) {
    const address = normalizeAddress(one.address)
    if (address === undefined) throw bad('address must be an IPv4 or IPv6 address')
    if (!grantAddresses(grant, n.agent_id).has(address)) {
      throw wider(`${address} is not one of the subject's addresses in the grant`)
    }
    n.address = address
  }
  if (one.port !== undefined) n.port = parseInteger('port', one.port, 0, 65535)
  if (one.protocol !== undefined) {
    const named = PROTOCOL_NAMES.get(one.protocol.toLowerCase())
    n.protocol = named ?? parseInteger('protocol', one.protocol, 0, 255)
  }
  if (one.limit !== undefined) n.limit = parseInteger('limit', one.limit, 1, MAX_LIMIT)
  return n
}

/** Stored rows one drill-down call reads at most, before decryption and filtering. */
export const DRILL_SCAN_ROWS = 100_000

/** A stored row as read: what is in clear, and the sealed rest. */
interface StoredRow extends Sealed {
  grant_id: string
  agent_id: string
  key_version: number
  start_ms?: number
  end_ms?: number
  ts_ms?: number
  flow_key?: string
  row_id?: string
}

export interface BuiltQuery {
  sql: string
  params: Record<string, unknown>
}

/**
 * The stored rows that may be in scope, as SQL with bound parameters: the grant's case, its
 * subjects' agents and window, then the narrowing's time and agent. Addresses, ports and
 * protocol are sealed, so they are checked after decryption (selectInScope). `scan` bounds the
 * rows read, in time order.
 */
export function buildScan(
  category: DrillCategory,
  caseId: string,
  grant: AccessClaims,
  narrowing: Narrowing | undefined,
  scan: number,
): BuiltQuery {
  const params: Record<string, unknown> = {
    case_id: caseId,
    agents: [...new Set(grant.subjects.map((s) => s.agent_id))],
    w_start: grant.window.start,
    w_end: grant.window.end,
    scan,
  }
  const where = ['case_id = {case_id:String}', 'has({agents:Array(String)}, agent_id)']
  const flows = category === 'flows'
  if (flows) {
    where.push(
      'start >= fromUnixTimestamp64Milli({w_start:Int64})',
      '`end` <= fromUnixTimestamp64Milli({w_end:Int64})',
    )
  } else {
    where.push(
      'ts BETWEEN fromUnixTimestamp64Milli({w_start:Int64}) AND fromUnixTimestamp64Milli({w_end:Int64})',
    )
  }
  if (narrowing !== undefined) {
    params.from = narrowing.from
    params.to = narrowing.to
    if (flows) {
      // A flow is in [from, to] when it was running at some time inside it.
      where.push(
        '`end` >= fromUnixTimestamp64Milli({from:Int64})',
        'start <= fromUnixTimestamp64Milli({to:Int64})',
      )
    } else {
      where.push(
        'ts BETWEEN fromUnixTimestamp64Milli({from:Int64}) AND fromUnixTimestamp64Milli({to:Int64})',
      )
    }
    if (narrowing.agent_id !== undefined) {
      params.agent = narrowing.agent_id
      where.push('agent_id = {agent:String}')
    }
  }
  const sealed = 'key_version, nonce, ciphertext, tag'
  const sql = flows
    ? `SELECT grant_id, agent_id, toUnixTimestamp64Milli(start) AS start_ms,
         toUnixTimestamp64Milli(\`end\`) AS end_ms, flow_key, ${sealed}
       FROM tally_restricted.flows FINAL WHERE ${where.join(' AND ')}
       ORDER BY start, flow_key, agent_id LIMIT {scan:UInt32}`
    : `SELECT grant_id, agent_id, toUnixTimestamp64Milli(ts) AS ts_ms, row_id, ${sealed}
       FROM tally_restricted.${category} WHERE ${where.join(' AND ')}
       ORDER BY ts, agent_id, row_id LIMIT {scan:UInt32}`
  return { sql, params }
}

export type DrillRow = Record<string, string | number>

/** A stored row that does not open: tampered with, moved, or its key is not the case's. */
export class UnreadableRow extends Error {
  override name = 'UnreadableRow'
}

/** Opens every row, with the case's keys (each version fetched once). */
async function openRows(
  keys: CaseKeys,
  category: DrillCategory,
  caseId: string,
  stored: StoredRow[],
): Promise<DrillRow[]> {
  const byVersion = new Map<number, Buffer>()
  const out: DrillRow[] = []
  for (const row of stored) {
    const version = Number(row.key_version)
    let key = byVersion.get(version)
    if (key === undefined) {
      key = await keys.get(caseId, version)
      byVersion.set(version, key)
    }
    const id = { case_id: caseId, grant_id: row.grant_id, agent_id: row.agent_id }
    try {
      if (category === 'flows') {
        const clear = {
          start: Number(row.start_ms),
          end: Number(row.end_ms),
          flow_key: row.flow_key ?? '',
        }
        const secret = openRow<FlowSecret>(key, category, id, clear, row)
        out.push({
          agent_id: row.agent_id,
          start: clear.start,
          end: clear.end,
          ip_version: secret.ip_version,
          protocol: secret.protocol,
          src: secret.src,
          dst: secret.dst,
          src_port: secret.src_port,
          dst_port: secret.dst_port,
          bytes: secret.bytes,
          packets: secret.packets,
          tcp_flags: secret.tcp_flags,
          community_id: secret.community_id,
        })
      } else {
        const clear = { ts: Number(row.ts_ms), row_id: row.row_id ?? '' }
        if (category === 'dns') {
          const secret = openRow<DnsSecret>(key, category, id, clear, row)
          out.push({
            agent_id: row.agent_id,
            ts: clear.ts,
            client: secret.client,
            server: secret.server,
            query: secret.query,
            qtype: secret.qtype,
            rcode: secret.rcode,
          })
        } else {
          const secret = openRow<WebSecret>(key, category, id, clear, row)
          out.push({
            agent_id: row.agent_id,
            ts: clear.ts,
            client: secret.client,
            server: secret.server,
            server_port: secret.server_port,
            kind: secret.kind,
            name: secret.name,
          })
        }
      }
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

/** The opened rows inside the grant's subjects (their addresses in gateway mode) and narrowing. */
export function selectInScope(
  category: DrillCategory,
  grant: AccessClaims,
  narrowing: Narrowing | undefined,
  rows: DrillRow[],
): DrillRow[] {
  const [a, b] = ENDPOINTS[category]
  const subjects = grant.subjects.map((s) => ({
    agent_id: s.agent_id,
    addresses: new Set(s.addresses.map((x) => normalizeAddress(x) ?? x)),
  }))
  const touches = (row: DrillRow, address: string) => row[a] === address || row[b] === address
  let kept = rows.filter((row) =>
    subjects.some(
      (s) =>
        s.agent_id === row.agent_id &&
        (s.addresses.size === 0 || [...s.addresses].some((x) => touches(row, x))),
    ),
  )
  if (narrowing?.address !== undefined) {
    const address = narrowing.address
    kept = kept.filter((row) => touches(row, address))
  }
  if (narrowing?.port !== undefined) {
    const port = narrowing.port
    kept = kept.filter((row) =>
      category === 'flows'
        ? row.src_port === port || row.dst_port === port
        : row.server_port === port,
    )
  }
  if (narrowing?.protocol !== undefined) {
    const protocol = narrowing.protocol
    kept = kept.filter((row) => row.protocol === protocol)
  }
  if (category !== 'flows') return kept
  // Two collectors may each have made a key for a case, so one flow can be stored under two
  // flow keys: keep its latest version, as FINAL does for one key.
  const latest = new Map<string, DrillRow>()
  for (const row of kept) {
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

/**
 * The rows of one category in scope. At most `scan` stored rows are read and decrypted per call
 * (DRILL_SCAN_ROWS), the earliest first: when more are stored in the range, the answer says
 * `truncated`, as it does when more than `limit` rows match; narrowing the time range reads on.
 */
export async function queryRecords(
  store: Store,
  keys: CaseKeys,
  category: DrillCategory,
  caseId: string,
  grant: AccessClaims,
  narrowing: Narrowing | undefined,
  limit: number,
  scan = DRILL_SCAN_ROWS,
): Promise<{ rows: DrillRow[]; truncated: boolean }> {
  const q = buildScan(category, caseId, grant, narrowing, scan + 1)
  const stored = await selectRows<StoredRow>(store, q.sql, q.params)
  const scanCut = stored.length > scan
  const opened = await openRows(keys, category, caseId, stored.slice(0, scan))
  const rows = selectInScope(category, grant, narrowing, opened)
  return { rows: rows.slice(0, limit), truncated: scanCut || rows.length > limit }
}

/** The parameters as they were checked, for the register (never the rows). */
export function describeNarrowing(n: Narrowing): Record<string, unknown> {
  return {
    from: new Date(n.from).toISOString(),
    to: new Date(n.to).toISOString(),
    limit: n.limit,
    ...(n.agent_id !== undefined ? { agent_id: n.agent_id } : {}),
    ...(n.address !== undefined ? { address: n.address } : {}),
    ...(n.port !== undefined ? { port: n.port } : {}),
    ...(n.protocol !== undefined ? { protocol: n.protocol } : {}),
  }
}
