/**
 * Tier I records sealed at rest (migration 009): every flow, DNS and web record is stored
 * encrypted with its case's key (keys.ts: AES-256-GCM, one nonce per row), the same key that
 * seals the case's packet segments and export bundles. Purging a case destroys that key first,
 * so a part the engine has not yet removed from disk, a backup or a copy of the data directory
 * holds nothing readable.
 *
 * In clear only what is not tier I and what the drill-down selects rows on: the case, grant and
 * agent ids, and the record's times. The rest (addresses, ports, protocol, counts, names, the
 * community id) is a JSON object in `ciphertext`, padded with spaces to a multiple of
 * PAD_BYTES, so a row's length does not tell a name's length. The authenticated data names the
 * category, case, grant, agent, times and row key: a row moved to another case, category, agent
 * or time, or given another row's key, fails to open instead of showing up where it does not
 * belong.
 *
 * Flows: the agent resends a running flow with its cumulative counts. `flow_key` (an HMAC of the
 * community id under the case key, so nobody without the key can test a guessed 5-tuple against
 * it) lets the newest version replace the older ones (ReplacingMergeTree on `end`).
 */
import { createHmac } from 'node:crypto'
import type { DnsRecord, FlowRecord, WebRecord } from '../../protocol/grants.ts'
import { type Sealed, seal, unseal } from './keys.ts'

export const SEALED_CATEGORIES = ['flows', 'dns', 'web'] as const
export type SealedCategory = (typeof SEALED_CATEGORIES)[number]

/** Plaintext is padded to a multiple of this many bytes (a DNS name is at most 255). */
export const PAD_BYTES = 128

/** What each category keeps in clear, besides case, grant and agent. */
export interface FlowClear {
  start: number
  end: number
  flow_key: string
}
export interface EventClear {
  ts: number
  row_id: string
}

/** The sealed part of each category: everything but the times. */
export type FlowSecret = Omit<FlowRecord, 'start' | 'end'>
export type DnsSecret = Omit<DnsRecord, 'ts'>
export type WebSecret = Omit<WebRecord, 'ts'>

export interface RowIdentity {
  case_id: string
  grant_id: string
  agent_id: string
}

/** The flow's name under the case key; 128 bits are plenty to keep flows apart. */
export const flowKey = (key: Buffer, communityId: string): string =>
  createHmac('sha256', key).update(`tally-flow-key:${communityId}`).digest('hex').slice(0, 32)

/** What a row's ciphertext is bound to. */
export function rowAad(
  category: SealedCategory,
  id: RowIdentity,
  clear: FlowClear | EventClear,
): string {
  const where =
    'flow_key' in clear
      ? `${clear.start}:${clear.end}:${clear.flow_key}`
      : `${clear.ts}:${clear.row_id}`
  return `tally-row:${category}:${id.case_id}:${id.grant_id}:${id.agent_id}:${where}`
}

function padded(value: object): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8')
  const size = Math.ceil((json.length + 1) / PAD_BYTES) * PAD_BYTES
  return Buffer.concat([json, Buffer.alloc(size - json.length, 0x20)])
}

export function sealRow(
  key: Buffer,
  category: SealedCategory,
  id: RowIdentity,
  clear: FlowClear | EventClear,
  secret: FlowSecret | DnsSecret | WebSecret,
): Sealed {
  return seal(key, padded(secret), rowAad(category, id, clear))
}

/** Opens a row; throws when the key, the bytes or anything the row is bound to do not match. */
export function openRow<T>(
  key: Buffer,
  category: SealedCategory,
  id: RowIdentity,
  clear: FlowClear | EventClear,
  sealed: Sealed,
): T {
  return JSON.parse(unseal(key, sealed, rowAad(category, id, clear)).toString('utf8')) as T
}
