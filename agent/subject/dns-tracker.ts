/**
 * DNS records for a grant that allows dns, from UDP to or from port 53. A query waits for its
 * response (same client, port, server, id, name) for 5 s; one record per response (timestamped
 * with its query when seen), or per query left unanswered (rcode '').
 */
import type { DnsRecord } from '../../protocol/grants.ts'
import { formatAddress } from '../decode/address.ts'
import type { DecodedPacket } from '../decode/packet.ts'
import type { VerifiedGrant } from '../grants/verify.ts'
import { parseDns, qtypeName, rcodeName } from './dns.ts'
import { dnsRecord, type Granted } from './records.ts'

export const DNS_ANSWER_TIMEOUT_MS = 5_000

interface PendingQuery {
  ts: number
  client: string
  server: string
  name: string
  qtype: string
}

export class DnsTracker {
  readonly #grant: VerifiedGrant
  readonly #maxPending: number
  readonly #pending = new Map<string, PendingQuery>()
  #records: Granted<DnsRecord>[] = []
  /** Queries not kept because too many were waiting for an answer. */
  dropped = 0

  constructor(grant: VerifiedGrant, maxPending: number) {
    this.#grant = grant
    this.#maxPending = maxPending
  }

  /** One UDP packet to or from port 53; `end` is where its captured bytes end in `p.buffer`. */
  observe(p: DecodedPacket, ts: number, end: number): void {
    if (p.payloadOffset < 0) return
    const message = parseDns(
      p.buffer,
      p.payloadOffset,
      Math.min(p.payloadLength, end - p.payloadOffset),
    )
    if (message === undefined || message.opcode !== 0) return
    const version = p.ipVersion as 4 | 6
    const src = formatAddress(p.buffer, p.srcOffset, version)
    const dst = formatAddress(p.buffer, p.dstOffset, version)
    const qtype = qtypeName(message.qtype)
    if (!message.response) {
      const key = `${src}|${p.srcPort}|${dst}|${message.id}|${message.name}|${qtype}`
      if (this.#pending.has(key)) return // a retransmission: the first one stands
      if (this.#pending.size >= this.#maxPending) {
        this.dropped++
        return
      }
      this.#pending.set(key, { ts, client: src, server: dst, name: message.name, qtype })
      return
    }
    const key = `${dst}|${p.dstPort}|${src}|${message.id}|${message.name}|${qtype}`
    const query = this.#pending.get(key)
    if (query !== undefined) this.#pending.delete(key)
    this.#records.push(
      dnsRecord(this.#grant, {
        ts: query?.ts ?? ts,
        client: dst,
        server: src,
        query: message.name,
        qtype,
        rcode: rcodeName(message.rcode),
      }),
    )
  }

  /** The answers seen since the last drain, then the queries whose wait is over. */
  drain(nowMs: number, final: boolean): Granted<DnsRecord>[] {
    const out = this.#records
    this.#records = []
    for (const [key, query] of this.#pending) {
      if (final || nowMs - query.ts >= DNS_ANSWER_TIMEOUT_MS) {
        out.push(
          dnsRecord(this.#grant, {
            ts: query.ts,
            client: query.client,
            server: query.server,
            query: query.name,
            qtype: query.qtype,
            rcode: '',
          }),
        )
        this.#pending.delete(key)
      }
    }
    return out
  }
}
