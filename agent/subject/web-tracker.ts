/**
 * Web records for a grant that allows web: the TLS SNI from the first data segment of each TCP
 * direction (a ClientHello that spans segments is followed over up to 16 segments, tolerating
 * bytes cut off by the snaplen as long as the name itself was captured), and the Host header of
 * every HTTP/1.x request that starts a segment.
 */
import type { WebRecord } from '../../protocol/grants.ts'
import { formatAddress } from '../decode/address.ts'
import { type DecodedPacket, TCP_FIN, TCP_RST, TCP_SYN } from '../decode/packet.ts'
import type { VerifiedGrant } from '../grants/verify.ts'
import { type Granted, webRecord } from './records.ts'
import {
  type ByteAt,
  bytesAt,
  looksLikeClientHello,
  parseClientHello,
  parseHttpHost,
} from './web.ts'

const TLS_MAX_SEGMENTS = 16
const TLS_TIMEOUT_MS = 5_000
/** Directions remembered as inspected; beyond, the set starts over. */
const MAX_INSPECTED = 65_536

interface PendingHello {
  ts: number
  base: number
  client: string
  server: string
  serverPort: number
  chunks: { offset: number; bytes: Uint8Array }[]
}

/** One TCP data segment, where its payload lies and who sent it. */
interface Segment {
  direction: string
  client: string
  server: string
  serverPort: number
  buffer: Uint8Array
  payloadOffset: number
  captured: number
  seq: number
  ts: number
}

export class WebTracker {
  readonly #grant: VerifiedGrant
  readonly #maxPendingTls: number
  /** Directions (src|sport|dst|dport) whose first data segment was looked at. */
  readonly #inspected = new Set<string>()
  readonly #pendingTls = new Map<string, PendingHello>()
  #records: Granted<WebRecord>[] = []

  constructor(grant: VerifiedGrant, maxPendingTls: number) {
    this.#grant = grant
    this.#maxPendingTls = maxPendingTls
  }

  /** One TCP packet; `end` is where its captured bytes end in `p.buffer`. */
  observe(p: DecodedPacket, ts: number, end: number): void {
    if (p.payloadOffset < 0) return
    const version = p.ipVersion as 4 | 6
    const client = formatAddress(p.buffer, p.srcOffset, version)
    const server = formatAddress(p.buffer, p.dstOffset, version)
    const direction = `${client}|${p.srcPort}|${server}|${p.dstPort}`
    if ((p.tcpFlags & (TCP_SYN | TCP_RST | TCP_FIN)) !== 0 && p.payloadLength <= 0) {
      // A new connection (SYN) or the end of one: the next data is a "first" segment again.
      this.#inspected.delete(direction)
      this.#pendingTls.delete(direction)
      return
    }
    if (p.payloadLength <= 0) return
    const segment: Segment = {
      direction,
      client,
      server,
      serverPort: p.dstPort,
      buffer: p.buffer,
      payloadOffset: p.payloadOffset,
      captured: Math.max(0, Math.min(p.payloadLength, end - p.payloadOffset)),
      seq: sequenceNumber(p.buffer, p.transportOffset + 4, end),
      ts,
    }
    const pending = this.#pendingTls.get(direction)
    if (pending !== undefined) {
      this.#continueHello(pending, segment)
      return
    }
    if (this.#firstSegment(segment)) return
    const host = parseHttpHost(p.buffer, p.payloadOffset, segment.captured)
    if (host !== undefined) this.#record(client, server, p.dstPort, ts, 'http-host', host)
  }

  /**
   * Looks at the first data segment of a direction for a ClientHello: true when it was one
   * (recorded, or followed into the next segments), false when it may be an HTTP request.
   */
  #firstSegment(s: Segment): boolean {
    if (this.#inspected.has(s.direction)) return false
    if (this.#inspected.size >= MAX_INSPECTED) this.#inspected.clear()
    this.#inspected.add(s.direction)
    const at = bytesAt(s.buffer, s.payloadOffset, s.captured)
    if (!looksLikeClientHello(at)) return false
    const result = parseClientHello(at)
    if (result.kind === 'sni') {
      this.#record(s.client, s.server, s.serverPort, s.ts, 'tls-sni', result.name)
    } else if (
      result.kind === 'more' &&
      s.seq >= 0 &&
      this.#pendingTls.size < this.#maxPendingTls
    ) {
      this.#pendingTls.set(s.direction, {
        ts: s.ts,
        base: s.seq,
        client: s.client,
        server: s.server,
        serverPort: s.serverPort,
        chunks: [
          { offset: 0, bytes: s.buffer.slice(s.payloadOffset, s.payloadOffset + s.captured) },
        ],
      })
    }
    return true
  }

  #continueHello(pending: PendingHello, s: Segment): void {
    if (s.seq < 0 || s.ts - pending.ts > TLS_TIMEOUT_MS) {
      this.#pendingTls.delete(s.direction)
      return
    }
    const offset = (s.seq - pending.base + 0x1_0000_0000) % 0x1_0000_0000
    if (offset > 0 && offset < 65_536 && s.captured > 0) {
      pending.chunks.push({
        offset,
        bytes: s.buffer.slice(s.payloadOffset, s.payloadOffset + s.captured),
      })
    }
    const chunks = pending.chunks
    const at: ByteAt = (i) => {
      for (const c of chunks) {
        if (i >= c.offset && i < c.offset + c.bytes.length) return c.bytes[i - c.offset] as number
      }
      return -1
    }
    const result = parseClientHello(at)
    if (result.kind === 'more' && chunks.length < TLS_MAX_SEGMENTS) return
    this.#pendingTls.delete(s.direction)
    if (result.kind === 'sni') {
      const { client, server, serverPort, ts } = pending
      this.#record(client, server, serverPort, ts, 'tls-sni', result.name)
    }
  }

  #record(
    client: string,
    server: string,
    serverPort: number,
    ts: number,
    kind: 'tls-sni' | 'http-host',
    name: string,
  ): void {
    this.#records.push(
      webRecord(this.#grant, { ts, client, server, server_port: serverPort, kind, name }),
    )
  }

  /** The records since the last drain; ClientHellos followed too long are given up. */
  drain(nowMs: number, final: boolean): Granted<WebRecord>[] {
    const out = this.#records
    this.#records = []
    for (const [key, pending] of this.#pendingTls) {
      if (final || nowMs - pending.ts >= TLS_TIMEOUT_MS) this.#pendingTls.delete(key)
    }
    if (final) this.#inspected.clear()
    return out
  }
}

/** The TCP sequence number at `at`, or -1 when it was not captured. */
function sequenceNumber(b: Uint8Array, at: number, end: number): number {
  if (at + 4 > end) return -1
  return (
    (b[at] as number) * 0x100_0000 +
    (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number))
  )
}
