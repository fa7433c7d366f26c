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
  GRANT_AUDIENCE,
  type PcapSegment,
  type RestrictedBatch,
} from '../../protocol/grants.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import type { GrantRecord, GrantsRepository } from '../cases/grants-repository.ts'
import type { CaseService, RegisterWriter } from '../cases/workflow.ts'
import { DomainError } from '../errors.ts'
import { normalizeAddress, record, registerOf } from './common.ts'
import { type CaseKeys, seal } from './keys.ts'
import { PcapSegmentError, parseSegment } from './pcap.ts'
import type { BatchCounts, SealedBatch, TierIRecordsRepository } from './records-repository.ts'
import { flowKey, sealRow } from './sealed.ts'

export type { BatchCounts } from './records-repository.ts'

export interface RestrictedIngestDeps {
  records: TierIRecordsRepository
  grants: GrantsRepository
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

interface Refusal {
  code: RejectCode
  message: string
}

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

const BATCH_CATEGORY: [keyof BatchCounts, Category][] = [
  ['flows', 'flows'],
  ['dns', 'dns'],
  ['web', 'web'],
  ['pcap', 'packets'],
]

const GRANT_ID = /^[A-Za-z0-9_-]{1,64}$/

/** A grant id as the register may quote it: never more than a short printable string. */
const quoteId = (id: string) => (GRANT_ID.test(id) ? id : `${JSON.stringify(id.slice(0, 64))}…`)

/** The grant, when it is on record and was issued to this agent for capture. */
function ownGrant(
  agent: AgentIdentity,
  batch: RestrictedBatch,
  grant: GrantRecord | undefined,
): GrantRecord | Refusal {
  if (batch.agent_id !== agent.agent_id) {
    return {
      code: 'wrong_agent',
      message: `the batch names agent ${batch.agent_id} but the credential belongs to another agent`,
    }
  }
  if (grant === undefined) {
    return { code: 'grant_unknown', message: `no grant ${quoteId(batch.grant_id)} is on record` }
  }
  if (grant.audience !== GRANT_AUDIENCE || grant.subject !== agent.agent_id) {
    return {
      code: 'not_your_grant',
      message: `grant ${grant.grant_id} was not issued to this agent for capture`,
    }
  }
  return grant
}

/** Whether the batch stays inside what the grant allows: its categories and its window. */
function beyondGrant(
  grant: GrantRecord,
  batch: RestrictedBatch,
  counts: BatchCounts,
): Refusal | undefined {
  const granted = grantCategories(grant)
  for (const [field, category] of BATCH_CATEGORY) {
    if (counts[field] > 0 && !granted.has(category)) {
      return {
        code: 'category_not_granted',
        message: `grant ${grant.grant_id} does not allow ${category}`,
      }
    }
  }
  const outside = firstOutside(batch, grant.window_start, grant.window_end)
  if (outside === undefined) return undefined
  return {
    code: 'outside_window',
    message: `${outside} lies outside the grant's window ${new Date(grant.window_start).toISOString()} .. ${new Date(grant.window_end).toISOString()}`,
  }
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

/** One segment's bytes, checked to be a whole classic pcap file holding what it says. */
function decodeSegment(p: PcapSegment, i: number): Buffer {
  if (!BASE64.test(p.data) || p.data.length % 4 !== 0) {
    throw invalidBatch('invalid_pcap', `pcap[${i}].data is not base64`)
  }
  const bytes = Buffer.from(p.data, 'base64')
  let packets: number
  try {
    packets = parseSegment(bytes).records.length
  } catch (err) {
    if (err instanceof PcapSegmentError) {
      throw invalidBatch('invalid_pcap', `pcap[${i}]: ${err.message}`)
    }
    throw err
  }
  if (packets !== p.packets) {
    throw invalidBatch('invalid_pcap', `pcap[${i}] says ${p.packets} packets but holds ${packets}`)
  }
  return bytes
}

export async function ingestRestricted(
  deps: RestrictedIngestDeps,
  agent: AgentIdentity,
  batch: RestrictedBatch,
): Promise<IngestAccepted> {
  const now = (deps.now ?? Date.now)()
  const counts = countsOf(batch)
  const onRecord = GRANT_ID.test(batch.grant_id)
    ? await deps.grants.find(batch.grant_id)
    : undefined
  const doc = onRecord === undefined ? undefined : await deps.cases.current(onRecord.case_id)

  const refuse = async ({ code, message }: Refusal): Promise<DomainError> => {
    // A refusal touches no data: it is registered, and answered even if the register is down.
    await record(deps.register, {
      register: registerOf(doc),
      kind: 'restricted_ingest_rejected',
      actor: agent.agent_id,
      ...(doc !== undefined ? { case_id: doc.case_id } : {}),
      details: { reason: code, grant_id: quoteId(batch.grant_id), seq: batch.seq, counts },
    }).catch(() => undefined)
    return ingestRefused(code, message)
  }

  const grant = ownGrant(agent, batch, onRecord)
  if ('code' in grant) throw await refuse(grant)
  if (await deps.records.isBatchStored(agent.agent_id, grant.grant_id, batch.seq)) {
    return { kind: 'duplicate', counts }
  }
  if (grant.revoked) {
    throw await refuse({
      code: 'grant_revoked',
      message: `grant ${grant.grant_id} was revoked; stop capturing under it`,
    })
  }
  if (doc?.state !== 'active') {
    throw await refuse({
      code: 'case_not_active',
      message: `the case of grant ${grant.grant_id} is ${doc?.state ?? 'unknown'}, not active`,
    })
  }
  const beyond = beyondGrant(grant, batch, counts)
  if (beyond !== undefined) throw await refuse(beyond)
  const invalid = invalidRecord(batch)
  if (invalid !== undefined) throw invalidBatch('invalid_batch', invalid)
  const segments = batch.pcap.map(decodeSegment)

  // Fail closed: the entry first; if it cannot be written, nothing is stored (503).
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
  await deps.records.insertBatch(await sealBatch(deps.keys, agent, grant, batch, segments, now))
  return { kind: 'stored', counts }
}

/** The batch sealed with the case's key: no tier I value goes to the store in clear. */
async function sealBatch(
  keys: CaseKeys,
  agent: AgentIdentity,
  grant: GrantRecord,
  batch: RestrictedBatch,
  segments: Buffer[],
  receivedAt: number,
): Promise<SealedBatch> {
  const addr = (a: string) => normalizeAddress(a) ?? a
  const sealing = batch.flows.length + batch.dns.length + batch.web.length + segments.length > 0
  // One key for the whole batch, and only when there is something to seal.
  const { version, key } = sealing
    ? await keys.current(grant.case_id)
    : { version: 0, key: Buffer.alloc(0) }
  const id = { case_id: grant.case_id, grant_id: grant.grant_id, agent_id: agent.agent_id }
  const events = (category: 'dns' | 'web') =>
    batch[category].map(({ ts, ...secret }, i) => {
      const clear = { ts, row_id: `${batch.seq}:${i}` }
      const normalized = { ...secret, client: addr(secret.client), server: addr(secret.server) }
      return { clear, sealed: sealRow(key, category, id, clear, normalized) }
    })
  return {
    place: { ...id, received_at: receivedAt },
    seq: batch.seq,
    key_version: version,
    flows: batch.flows.map(({ start, end, ...secret }) => {
      const clear = { start, end, flow_key: flowKey(key, secret.community_id) }
      const normalized = { ...secret, src: addr(secret.src), dst: addr(secret.dst) }
      return { clear, sealed: sealRow(key, 'flows', id, clear, normalized) }
    }),
    dns: events('dns'),
    web: events('web'),
    segments: batch.pcap.map((p, i) => {
      const bytes = segments[i] as Buffer
      return {
        index: p.index,
        first: p.first,
        last: p.last,
        packets: p.packets,
        bytes: bytes.length,
        sealed: seal(
          key,
          bytes,
          segmentAad(grant.case_id, grant.grant_id, agent.agent_id, p.index),
        ),
      }
    }),
    counts: countsOf(batch),
  }
}

/** What a segment's ciphertext is bound to: moving it to another case or grant breaks it. */
export const segmentAad = (caseId: string, grantId: string, agentId: string, index: number) =>
  `tally-pcap:${caseId}:${grantId}:${agentId}:${index}`
