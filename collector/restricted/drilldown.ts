/**
 * Drill-down: an investigator's reads of tier I records, inside the access grant's scope.
 *
 * The query is built from the grant alone (its case, its subjects' agents and addresses, its
 * window); the request may only narrow it (from, to, agent_id, address, port, protocol, limit),
 * every value is checked and then bound as a typed parameter ({name:Type}); no request text is
 * ever part of the SQL. A narrowing that would widen the scope is refused (403 outside_scope),
 * an unknown or malformed parameter is a 400.
 */
import { z } from 'zod'
import type { Category } from '../../protocol/grants.ts'
import type { AccessClaims } from '../cases/grants.ts'
import type { Store } from '../store/client.ts'
import { selectRows } from '../store/rows.ts'
import { normalizeAddress } from './common.ts'

export const DRILL_CATEGORIES = ['flows', 'dns', 'web'] as const
export type DrillCategory = (typeof DRILL_CATEGORIES)[number]

export const MAX_LIMIT = 10_000
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

export class ScopeError extends Error {
  override name = 'ScopeError'
  readonly status: 400 | 403
  readonly code: string
  constructor(status: 400 | 403, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

const bad = (message: string) => new ScopeError(400, 'invalid_param', message)
const wider = (message: string) => new ScopeError(403, 'outside_scope', message)

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

export interface BuiltQuery {
  sql: string
  params: Record<string, unknown>
}

const COLUMNS: Record<DrillCategory, string> = {
  flows: `agent_id, toUnixTimestamp64Milli(start) AS start, toUnixTimestamp64Milli(\`end\`) AS end,
    ip_version, protocol, src, dst, src_port, dst_port, bytes, packets, tcp_flags, community_id`,
  dns: 'agent_id, toUnixTimestamp64Milli(ts) AS ts, client, server, query, qtype, rcode',
  web: 'agent_id, toUnixTimestamp64Milli(ts) AS ts, client, server, server_port, kind, name',
}
const ENDPOINTS: Record<DrillCategory, [string, string]> = {
  flows: ['src', 'dst'],
  dns: ['client', 'server'],
  web: ['client', 'server'],
}

/**
 * The grant's scope as SQL with bound parameters: its case, each subject's agent (and, in
 * gateway mode, the subject's addresses), its window; then the narrowing, if any.
 */
export function buildQuery(
  category: DrillCategory,
  caseId: string,
  grant: AccessClaims,
  narrowing: Narrowing | undefined,
  limit: number,
): BuiltQuery {
  const [a, b] = ENDPOINTS[category]
  const params: Record<string, unknown> = {
    case_id: caseId,
    w_start: grant.window.start,
    w_end: grant.window.end,
    limit,
  }
  const subjects = grant.subjects.map((s, i) => {
    params[`agent_${i}`] = s.agent_id
    if (s.addresses.length === 0) return `agent_id = {agent_${i}:String}`
    params[`addrs_${i}`] = s.addresses.map((x) => normalizeAddress(x) ?? x)
    return `(agent_id = {agent_${i}:String} AND (has({addrs_${i}:Array(String)}, ${a}) OR has({addrs_${i}:Array(String)}, ${b})))`
  })
  const where = ['case_id = {case_id:String}', `(${subjects.join(' OR ')})`]
  if (category === 'flows') {
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
    if (category === 'flows') {
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
    if (narrowing.address !== undefined) {
      params.address = narrowing.address
      where.push(`(${a} = {address:String} OR ${b} = {address:String})`)
    }
    if (narrowing.port !== undefined) {
      params.port = narrowing.port
      where.push(
        category === 'flows'
          ? '(src_port = {port:UInt16} OR dst_port = {port:UInt16})'
          : 'server_port = {port:UInt16}',
      )
    }
    if (narrowing.protocol !== undefined) {
      params.protocol = narrowing.protocol
      where.push('protocol = {protocol:UInt8}')
    }
  }
  const table =
    category === 'flows' ? 'tally_restricted.flows FINAL' : `tally_restricted.${category}`
  const order = category === 'flows' ? 'start, community_id, agent_id' : 'ts, agent_id'
  // The filter runs in a subquery: the output's aliases (start, end, ts as epoch ms) would
  // otherwise shadow the columns of the same name in WHERE.
  return {
    sql: `SELECT ${COLUMNS[category]}
      FROM (SELECT * FROM ${table} WHERE ${where.join(' AND ')})
      ORDER BY ${order} LIMIT {limit:UInt32}`,
    params,
  }
}

export type DrillRow = Record<string, string | number>

/** The rows of one category in scope; `limit + 1` are fetched to tell whether more exist. */
export async function queryRecords(
  store: Store,
  category: DrillCategory,
  caseId: string,
  grant: AccessClaims,
  narrowing: Narrowing | undefined,
  limit: number,
): Promise<{ rows: DrillRow[]; truncated: boolean }> {
  const q = buildQuery(category, caseId, grant, narrowing, limit + 1)
  const rows = await selectRows<DrillRow>(store, q.sql, q.params)
  return { rows: rows.slice(0, limit), truncated: rows.length > limit }
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
