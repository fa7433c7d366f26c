/**
 * What an investigator's drill-down request may narrow: the scope comes from the access grant
 * alone (its case, its subjects' agents and addresses, its window); the request's query
 * parameters (from, to, agent_id, address, port, protocol, limit) may only narrow it. Every value
 * is checked here and later bound as a typed parameter or compared after decryption; no request
 * text is ever part of the SQL. A narrowing that would widen the scope is refused (403
 * outside_scope, and registered by the service), an unknown or malformed parameter is a 400.
 */
import { z } from 'zod'
import { MAX_DRILL_LIMIT } from '../../protocol/api/names.ts'
import type { Category } from '../../protocol/grants.ts'
import type { AccessClaims } from '../cases/grants.ts'
import { DomainError } from '../errors.ts'
import { normalizeAddress } from './common.ts'

export const DRILL_CATEGORIES = ['flows', 'dns', 'web'] as const
export type DrillCategory = (typeof DRILL_CATEGORIES)[number]

/** Rows per answer when the request does not say; at most MAX_DRILL_LIMIT (the contract's). */
const DEFAULT_LIMIT = 1_000

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

/** Each parameter's one value; refuses a parameter the category does not take or given twice. */
function singleValues(category: Category, query: Record<string, string[]>): Record<string, string> {
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
  return one
}

/** from and to, inside the grant's window (its whole window when not given). */
function timeRange(grant: AccessClaims, one: Record<string, string>): { from: number; to: number } {
  const from = one.from === undefined ? grant.window.start : parseInstant('from', one.from)
  const to = one.to === undefined ? grant.window.end : parseInstant('to', one.to)
  if (from > to) throw bad('from is after to')
  if (from < grant.window.start || to > grant.window.end) {
    throw wider(
      `the grant's window is ${new Date(grant.window.start).toISOString()} .. ${new Date(grant.window.end).toISOString()}`,
    )
  }
  return { from, to }
}

function subjectAgent(grant: AccessClaims, agentId: string): string {
  if (!/^a-[a-z0-9]{16}$/.test(agentId)) throw bad('agent_id must be an agent id')
  if (!grant.subjects.some((s) => s.agent_id === agentId)) {
    throw wider(`agent ${agentId} is not a subject of the grant`)
  }
  return agentId
}

function subjectAddress(grant: AccessClaims, given: string, agentId: string | undefined): string {
  const address = normalizeAddress(given)
  if (address === undefined) throw bad('address must be an IPv4 or IPv6 address')
  if (!grantAddresses(grant, agentId).has(address)) {
    throw wider(`${address} is not one of the subject's addresses in the grant`)
  }
  return address
}

const parseProtocol = (value: string): number =>
  PROTOCOL_NAMES.get(value.toLowerCase()) ?? parseInteger('protocol', value, 0, 255)

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
  const one = singleValues(category, query)
  const n: Narrowing = { ...timeRange(grant, one), limit: DEFAULT_LIMIT }
  if (one.agent_id !== undefined) n.agent_id = subjectAgent(grant, one.agent_id)
  if (one.address !== undefined) n.address = subjectAddress(grant, one.address, n.agent_id)
  if (one.port !== undefined) n.port = parseInteger('port', one.port, 0, 65535)
  if (one.protocol !== undefined) n.protocol = parseProtocol(one.protocol)
  if (one.limit !== undefined) n.limit = parseInteger('limit', one.limit, 1, MAX_DRILL_LIMIT)
  return n
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
