/**
 * Tier I record builders. Each takes the VerifiedGrant the record is produced under and refuses
 * (throws) unless it is a genuine grant that allows the record's category. What they return is
 * branded `Granted<...>`: the type of a record that went through this gate, which is what
 * `SubjectRecords` (and so everything the subject capture hands out) holds.
 */
import type {
  Category,
  DnsRecord,
  FlowRecord,
  PcapSegment,
  WebRecord,
} from '../../protocol/grants.ts'
import { VerifiedGrant } from '../grants/verify.ts'

/** Type-only brand: no value carries it at run time, only the builders below assert it. */
declare const grantedBrand: unique symbol
export type Granted<T> = T & { readonly [grantedBrand]: true }

/** One interval of tier I records under one grant; categories not granted stay empty. */
export interface SubjectRecords {
  flows: Granted<FlowRecord>[]
  dns: Granted<DnsRecord>[]
  web: Granted<WebRecord>[]
  pcap: Granted<PcapSegment>[]
}

export class NotGranted extends Error {
  override name = 'NotGranted'
}

function gate(grant: VerifiedGrant, category: Category): void {
  if (!VerifiedGrant.isGenuine(grant)) {
    throw new NotGranted('tier I records need a grant verified by verifyGrant')
  }
  if (!grant.allows(category)) {
    throw new NotGranted(`grant ${grant.grantId} does not allow ${category}`)
  }
}

export function flowRecord(grant: VerifiedGrant, record: FlowRecord): Granted<FlowRecord> {
  gate(grant, 'flows')
  return record as Granted<FlowRecord>
}

export function dnsRecord(grant: VerifiedGrant, record: DnsRecord): Granted<DnsRecord> {
  gate(grant, 'dns')
  return record as Granted<DnsRecord>
}

export function webRecord(grant: VerifiedGrant, record: WebRecord): Granted<WebRecord> {
  gate(grant, 'web')
  return record as Granted<WebRecord>
}

export function pcapSegment(grant: VerifiedGrant, segment: PcapSegment): Granted<PcapSegment> {
  gate(grant, 'packets')
  return segment as Granted<PcapSegment>
}

export function emptyRecords(): SubjectRecords {
  return { flows: [], dns: [], web: [], pcap: [] }
}

export function recordCount(r: SubjectRecords): number {
  return r.flows.length + r.dns.length + r.web.length + r.pcap.length
}
