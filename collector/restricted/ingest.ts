/**
 * Tier I ingest: one agent's records of one interval under one grant (POST /v1/restricted/ingest).
 *
 * A batch is taken only when the grant is on record and not revoked, was issued to this agent
 * for capture, its case is active right now (re-read and refreshed), the batch holds only
 * categories the grant names, and every record's time lies inside the grant's window. Anything
 * else is refused as a whole and the refusal is registered (counts only, never the records).
 *
 * An accepted batch is registered first (fail closed: no entry, no write), then written sealed
 * with the case's key (sealed.ts: no tier I value reaches the store in clear) with a
 * deduplication token per table made of (agent_id, grant_id, seq), and recorded last in
 * `tally.restricted_batches`, so a retry after a crash is written once and a retry after the
 * acknowledgement is recognised without a write.
 */
import { decodeJwt } from 'jose'
import { z } from 'zod'
import {
  type Category,
  type DnsRecord,
  GRANT_AUDIENCE,
  type RestrictedBatch,
  type WebRecord,
} from '../../protocol/grants.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import type { Case } from '../cases/model.ts'
import type { CaseService, RegisterWriter } from '../cases/workflow.ts'
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import { type GrantRecord, lookupGrant, normalizeAddress, record, registerOf } from './common.ts'
import { type CaseKeys, seal } from './keys.ts'
import { PcapSegmentError, parseSegment } from './pcap.ts'
import { flowKey, sealRow } from './sealed.ts'

export interface RestrictedIngestDeps {
  store: Store
  cases: CaseService
  register: RegisterWriter
  keys: CaseKeys
  now?: () => number
}

export type RejectCode =
  | 'wrong_agent'
  | 'grant_unknown'
  | 'grant_revoked'
  | 'not_your_grant'
  | 'case_not_active'
  /** The case document does not match the register's signed record (TierIService). */
  | 'case_not_on_record'
  | 'category_not_granted'
  | 'outside_window'

export interface BatchCounts {
  flows: number
  dns: number
  web: number
  pcap: number
}

/** A batch taken: stored now, or recognised as stored before. Any refusal is thrown. */
export interface IngestAccepted {
  kind: 'stored' | 'duplicate'
  counts: BatchCounts
}

/** A batch refused by the grant's terms (403); registered as such by ingestRestricted. */
export const ingestRefused = (code: RejectCode, message: string): DomainError =>
  new DomainError('forbidden', code, message)

const invalidBatch = (code: 'invalid_batch' | 'invalid_pcap', message: string): DomainError =>
  new DomainError('invalid', code, message)

const countsOf = (b: RestrictedBatch): BatchCounts => ({
  flows: b.flows.length,
  dns: b.dns.length,
  web: b.web.length,
  pcap: b.pcap.length,
})

/** The categories a capture grant names, from its token (our own, read from our own table). */
const TokenCategories = z.object({ categories: z.array(z.string()) })
function grantCategories(grant: GrantRecord): Set<string> {
  const parsed = TokenCategories.safeParse(decodeJwt(grant.token))
  return new Set(parsed.success ? parsed.data.categories : [])
}

const BATCH_CATEGORY: Record<keyof BatchCounts, Category> = {
  flows: 'flows',
  dns: 'dns',
  web: 'web',
  pcap: 'packets',
}

/** A grant id as the register may quote it: never more than a short printable string. */
const quoteId = (id: string) =>
  /^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : `${JSON.stringify(id.slice(0, 64))}…`

export async function isRestrictedBatchStored(
  store: Store,
  agentId: string,
  grantId: string,
  seq: number,
): Promise<boolean> {
  const [row] = await selectRows<{ n: number }>(
    store,
    `SELECT count() AS n FROM tally.restricted_batches
     WHERE agent_id = {agent:String} AND grant_id = {grant:String} AND seq = {seq:UInt64}`,
    { agent: agentId, grant: grantId, seq },
  )
  return Number(row?.n ?? 0) > 0
}

/** Checks that each record's time lies in [start, end]; the first offender, or undefined. */
function firstOutside(batch: RestrictedBatch, start: number, end: number): string | undefined {
  const inside = (t: number) => t >= start && t <= end
  for (const [i, f] of batch.flows.entries())
    if (!inside(f.start) || !inside(f.end)) return `flows[${i}] (${f.start}..${f.end})`
  for (const [i, d] of batch.dns.entries()) if (!inside(d.ts)) return `dns[${i}] (${d.ts})`
  for (const [i, w] of batch.web.entries()) if (!inside(w.ts)) return `web[${i}] (${w.ts})`
  for (const [i, p] of batch.pcap.entries())
    if (!inside(p.first) || !inside(p.last)) return `pcap[${i}] (${p.first}..${p.last})`
  return undefined
}

/** Record-level sanity beyond the schema: intervals the right way round. */
function invalidRecord(batch: RestrictedBatch): string | undefined {
  for (const [i, f] of batch.flows.entries()) {
    if (f.end < f.start) return `flows[${i}]: end is before start`
  }
  for (const [i, p] of batch.pcap.entries()) {
    if (p.last < p.first) return `pcap[${i}]: last is before first`
  }
  return undefined
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

export async function ingestRestricted(
  deps: RestrictedIngestDeps,
  agent: AgentIdentity,
  batch: RestrictedBatch,
): Promise<IngestAccepted> {
  const { store } = deps
  const now = (deps.now ?? Date.now)()
  const counts = countsOf(batch)
  const grant = /^[A-Za-z0-9_-]{1,64}$/.test(batch.grant_id)
    ? await lookupGrant(store, batch.grant_id)
    : undefined
  let doc: Case | undefined

  const reject = async (code: RejectCode, message: string): Promise<never> => {
    // A refusal touches no data: it is registered, and answered even if the register is down.
    await record(deps.register, {
      register: registerOf(doc),
      kind: 'restricted_ingest_rejected',
      actor: agent.agent_id,
      ...(doc !== undefined ? { case_id: doc.case_id } : {}),
      details: { reason: code, grant_id: quoteId(batch.grant_id), seq: batch.seq, counts },
    }).catch(() => undefined)
    throw ingestRefused(code, message)
  }

  if (grant !== undefined) doc = await deps.cases.current(grant.case_id)
  if (batch.agent_id !== agent.agent_id) {
    return reject(
      'wrong_agent',
      `the batch names agent ${batch.agent_id} but the credential belongs to another agent`,
    )
  }
  if (grant === undefined)
    return reject('grant_unknown', `no grant ${quoteId(batch.grant_id)} is on record`)
  if (grant.audience !== GRANT_AUDIENCE || grant.subject !== agent.agent_id) {
    return reject(
      'not_your_grant',
      `grant ${grant.grant_id} was not issued to this agent for capture`,
    )
  }
  if (await isRestrictedBatchStored(store, agent.agent_id, grant.grant_id, batch.seq)) {
    return { kind: 'duplicate', counts }
  }
  if (grant.revoked)
    return reject('grant_revoked', `grant ${grant.grant_id} was revoked; stop capturing under it`)
  if (doc?.state !== 'active') {
    return reject(
      'case_not_active',
      `the case of grant ${grant.grant_id} is ${doc?.state ?? 'unknown'}, not active`,
    )
  }
  const granted = grantCategories(grant)
  for (const [field, category] of Object.entries(BATCH_CATEGORY) as [
    keyof BatchCounts,
    Category,
  ][]) {
    if (counts[field] > 0 && !granted.has(category)) {
      return reject('category_not_granted', `grant ${grant.grant_id} does not allow ${category}`)
    }
  }
  const outside = firstOutside(batch, grant.window_start, grant.window_end)
  if (outside !== undefined) {
    return reject(
      'outside_window',
      `${outside} lies outside the grant's window ${new Date(grant.window_start).toISOString()} .. ${new Date(grant.window_end).toISOString()}`,
    )
  }
  const invalid = invalidRecord(batch)
  if (invalid !== undefined) throw invalidBatch('invalid_batch', invalid)
  const segments: Buffer[] = []
  for (const [i, p] of batch.pcap.entries()) {
    if (!BASE64.test(p.data) || p.data.length % 4 !== 0) {
      throw invalidBatch('invalid_pcap', `pcap[${i}].data is not base64`)
    }
    const bytes = Buffer.from(p.data, 'base64')
    try {
      const parsed = parseSegment(bytes)
      if (parsed.records.length !== p.packets) {
        throw invalidBatch(
          'invalid_pcap',
          `pcap[${i}] says ${p.packets} packets but holds ${parsed.records.length}`,
        )
      }
    } catch (err) {
      if (err instanceof PcapSegmentError) {
        throw invalidBatch('invalid_pcap', `pcap[${i}]: ${err.message}`)
      }
      throw err
    }
    segments.push(bytes)
  }

  // Fail closed: the entry first; if it cannot be written, nothing is stored (the caller answers 503).
  await record(deps.register, {
    register: registerOf(doc),
    kind: 'restricted_ingest',
    actor: agent.agent_id,
    case_id: doc.case_id,
    details: {
      grant_id: grant.grant_id,
      seq: batch.seq,
      counts,
      packets: batch.pcap.reduce((n, p) => n + p.packets, 0),
    },
  })
  await writeBatch(deps, agent, grant, batch, segments, now)
  return { kind: 'stored', counts }
}

async function writeBatch(
  deps: RestrictedIngestDeps,
  agent: AgentIdentity,
  grant: GrantRecord,
  batch: RestrictedBatch,
  segments: Buffer[],
  receivedAt: number,
): Promise<void> {
  const { store } = deps
  const token = (table: string) => `${agent.agent_id}:${grant.grant_id}:${batch.seq}:${table}`
  const base = {
    case_id: grant.case_id,
    grant_id: grant.grant_id,
    agent_id: agent.agent_id,
    received_at: receivedAt,
  }
  const addr = (a: string) => normalizeAddress(a) ?? a
  const sealing = batch.flows.length + batch.dns.length + batch.web.length + segments.length > 0
  // One key for the whole batch, and only when there is something to seal.
  const { version, key } = sealing
    ? await deps.keys.current(grant.case_id)
    : { version: 0, key: Buffer.alloc(0) }
  const id = { case_id: grant.case_id, grant_id: grant.grant_id, agent_id: agent.agent_id }
  await insertRows(
    store,
    'tally_restricted.flows',
    batch.flows.map(({ start, end, ...secret }) => {
      const clear = { start, end, flow_key: flowKey(key, secret.community_id) }
      const normalized = { ...secret, src: addr(secret.src), dst: addr(secret.dst) }
      return {
        ...base,
        ...clear,
        key_version: version,
        ...sealRow(key, 'flows', id, clear, normalized),
      }
    }),
    token('flows'),
  )
  for (const category of ['dns', 'web'] as const) {
    const records: (DnsRecord | WebRecord)[] = batch[category]
    await insertRows(
      store,
      `tally_restricted.${category}`,
      records.map(({ ts, ...secret }, i) => {
        const clear = { ts, row_id: `${batch.seq}:${i}` }
        const normalized = { ...secret, client: addr(secret.client), server: addr(secret.server) }
        return {
          ...base,
          ...clear,
          key_version: version,
          ...sealRow(key, category, id, clear, normalized),
        }
      }),
      token(category),
    )
  }
  if (segments.length > 0) {
    await insertRows(
      store,
      'tally_restricted.pcap_segments',
      batch.pcap.map((p, i) => {
        const bytes = segments[i] as Buffer
        return {
          ...base,
          segment_index: p.index,
          first: p.first,
          last: p.last,
          packets: p.packets,
          bytes: bytes.length,
          key_version: version,
          ...seal(key, bytes, segmentAad(grant.case_id, grant.grant_id, agent.agent_id, p.index)),
        }
      }),
      token('pcap_segments'),
    )
  }
  await insertRows(
    store,
    'tally.restricted_batches',
    [
      {
        agent_id: agent.agent_id,
        grant_id: grant.grant_id,
        seq: batch.seq,
        case_id: grant.case_id,
        received_at: receivedAt,
        ...countsOf(batch),
      },
    ],
    token('batches'),
  )
}

/** What a segment's ciphertext is bound to: moving it to another case or grant breaks it. */
export const segmentAad = (caseId: string, grantId: string, agentId: string, index: number) =>
  `tally-pcap:${caseId}:${grantId}:${agentId}:${index}`
