/**
 * From captured packets to tier I records, for one grant.
 *
 * The recorder sits behind the subject capture's tcpdump (whose BPF filter already matches the
 * subject alone) and checks again: a packet is used only when it is an IP packet from or to a
 * subject address, with a timestamp inside the grant's window. Then, per granted category and
 * only for granted categories (the others are not even parsed):
 *
 * - flows: a bidirectional flow table keyed by Community ID (which is direction-free: both
 *   directions of a 5-tuple, and ICMP requests and their replies, share one). The first
 *   packet's source is the flow's source. Bytes are frame lengths on the wire. Reporting: each
 *   drain reports every flow that saw a packet since the previous drain, with its cumulative
 *   counts so far; (community_id, start) names the flow, and the record with the latest `end`
 *   (equivalently the most packets) is the one to keep. A flow ends after 30 s without packets,
 *   or 1 s after a RST or after FINs from both sides; it is then forgotten, and its last record
 *   already carries its final counts. A final drain (grant over, capture stopped) reports all.
 * - dns: UDP to or from port 53. A query waits for its response (same client, port, server,
 *   id, name) for 5 s; one record per response (timestamped with its query when seen), or per
 *   query left unanswered (rcode '').
 * - web: TLS SNI from the first data segment of each TCP direction (a ClientHello that spans
 *   segments is followed over up to 16 segments, tolerating bytes cut off by the snaplen as
 *   long as the name itself was captured), and the Host header of every HTTP/1.x request that
 *   starts a segment.
 * - packets: every used record, copied into a classic pcap segment per drain (split when
 *   it would exceed what one PcapSegment may carry).
 *
 * Nothing here throws on packet input; tables are bounded and what does not fit is counted.
 */

import type { PcapHeader } from '../../common/pcap/pcap-reader.ts'
import { formatAddress, parseAddress } from '../decode/address.ts'
import { decodePacket } from '../decode/decode.ts'
import { DecodedPacket, OUTCOME_IP, PROTO_TCP, PROTO_UDP } from '../decode/packet.ts'
import { VerifiedGrant } from '../grants/verify.ts'
import { communityId } from './community-id.ts'
import { parseDns, qtypeName, rcodeName } from './dns.ts'
import {
  dnsRecord,
  emptyRecords,
  flowRecord,
  pcapSegment,
  type SubjectRecords,
  webRecord,
} from './records.ts'
import {
  type ByteAt,
  bytesAt,
  looksLikeClientHello,
  parseClientHello,
  parseHttpHost,
} from './web.ts'

export const FLOW_IDLE_MS = 30_000
/** How long a closed (RST, or FIN both ways) flow lingers for its last ACKs. */
export const FLOW_CLOSE_LINGER_MS = 1_000
export const DNS_ANSWER_TIMEOUT_MS = 5_000
const TLS_MAX_SEGMENTS = 16
const TLS_TIMEOUT_MS = 5_000
/** Raw bytes of one pcap segment: base64 of it must fit PcapSegment.data (16 MiB). */
export const PCAP_SEGMENT_MAX_BYTES = 12 * 1024 * 1024 - 1024

const TCP_FIN = 0x01
const TCP_SYN = 0x02
const TCP_RST = 0x04

export interface RecorderOptions {
  /** The subject's addresses: a packet touching none of them is not used. */
  subject: readonly string[]
  maxFlows?: number
  maxPendingDns?: number
  maxPendingTls?: number
  /** Packets kept for the pcap of one interval (bytes of records); beyond, counted and dropped. */
  maxPcapBytesPerInterval?: number
}

/** Cumulative counters, for health reporting (counts only, no content). */
export interface RecorderStats {
  /** Records seen from tcpdump. */
  seen: number
  /** Used: IP, subject, inside the window. */
  used: number
  outsideWindow: number
  notSubject: number
  /** Not IP, or not decodable. */
  undecoded: number
  flowsDropped: number
  dnsDropped: number
  pcapDropped: number
}

interface Flow {
  start: number
  end: number
  ipVersion: 4 | 6
  protocol: number
  src: string
  dst: string
  srcBytes: Uint8Array
  srcPort: number
  dstPort: number
  bytes: number
  packets: number
  tcpFlags: number
  finForward: boolean
  finBackward: boolean
  rst: boolean
  communityId: string
  /** Saw a packet since the last drain. */
  dirty: boolean
}

interface PendingQuery {
  ts: number
  client: string
  server: string
  name: string
  qtype: string
}

interface PendingHello {
  ts: number
  base: number
  client: string
  server: string
  serverPort: number
  chunks: { offset: number; bytes: Uint8Array }[]
}

interface PcapChunk {
  linkType: number
  nanosecond: boolean
  records: Uint8Array[]
  bytes: number
  packets: number
  first: number
  last: number
}

function sameBytes(a: Uint8Array, b: Uint8Array, offset: number): boolean {
  if (offset + a.length > b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[offset + i]) return false
  return true
}

export class SubjectRecorder {
  readonly #grant: VerifiedGrant
  readonly #subject4: Uint8Array[] = []
  readonly #subject6: Uint8Array[] = []
  readonly #maxFlows: number
  readonly #maxPendingDns: number
  readonly #maxPendingTls: number
  readonly #maxPcapBytes: number
  readonly #flowsOn: boolean
  readonly #dnsOn: boolean
  readonly #webOn: boolean
  readonly #packetsOn: boolean

  #header: PcapHeader | undefined
  readonly #packet = new DecodedPacket()
  readonly #flows = new Map<string, Flow>()
  readonly #pendingDns = new Map<string, PendingQuery>()
  /** Directions (src|sport|dst|dport) whose first data segment was looked at. */
  readonly #inspected = new Set<string>()
  readonly #pendingTls = new Map<string, PendingHello>()
  #records: SubjectRecords = emptyRecords()
  #pcap: PcapChunk[] = []
  #pcapBytes = 0
  #pcapIndex = 0
  readonly #stats: RecorderStats = {
    seen: 0,
    used: 0,
    outsideWindow: 0,
    notSubject: 0,
    undecoded: 0,
    flowsDropped: 0,
    dnsDropped: 0,
    pcapDropped: 0,
  }

  constructor(grant: VerifiedGrant, options: RecorderOptions) {
    if (!VerifiedGrant.isGenuine(grant)) {
      throw new TypeError('a subject recorder needs a grant verified by verifyGrant')
    }
    this.#grant = grant
    for (const text of options.subject) {
      const bytes = parseAddress(text)
      if (bytes.length === 4) this.#subject4.push(bytes)
      else this.#subject6.push(bytes)
    }
    if (this.#subject4.length + this.#subject6.length === 0) {
      throw new RangeError('a subject recorder needs at least one subject address')
    }
    this.#maxFlows = options.maxFlows ?? 65_536
    this.#maxPendingDns = options.maxPendingDns ?? 4_096
    this.#maxPendingTls = options.maxPendingTls ?? 1_024
    this.#maxPcapBytes = options.maxPcapBytesPerInterval ?? 64 * 1024 * 1024
    this.#flowsOn = grant.allows('flows')
    this.#dnsOn = grant.allows('dns')
    this.#webOn = grant.allows('web')
    this.#packetsOn = grant.allows('packets')
  }

  stats(): RecorderStats {
    return { ...this.#stats }
  }

  readonly onHeader = (header: PcapHeader): void => {
    this.#header = header
  }

  readonly onPacket = (
    data: Uint8Array,
    offset: number,
    capturedLength: number,
    originalLength: number,
    tsSeconds: number,
    tsFraction: number,
  ): void => {
    const header = this.#header
    if (header === undefined) return
    this.#stats.seen++
    const ts = Math.floor(
      tsSeconds * 1000 + (header.nanosecond ? tsFraction / 1e6 : tsFraction / 1e3),
    )
    if (!this.#grant.active(ts)) {
      this.#stats.outsideWindow++
      return
    }
    const p = this.#packet
    decodePacket(header.linkType, data, offset, capturedLength, originalLength, p)
    if (p.outcome !== OUTCOME_IP || (p.ipVersion !== 4 && p.ipVersion !== 6)) {
      this.#stats.undecoded++
      return
    }
    if (!this.#touchesSubject(p)) {
      this.#stats.notSubject++
      return
    }
    this.#stats.used++
    const end = Math.min(offset + capturedLength, data.length)
    if (this.#flowsOn) this.#flow(p, ts, originalLength, end)
    if (this.#dnsOn && p.protocol === PROTO_UDP && (p.srcPort === 53 || p.dstPort === 53)) {
      this.#dns(p, ts, end)
    }
    if (this.#webOn && p.protocol === PROTO_TCP) this.#web(p, ts, end)
    if (this.#packetsOn) {
      this.#keepPacket(
        header,
        data,
        offset,
        capturedLength,
        originalLength,
        tsSeconds,
        tsFraction,
        ts,
      )
    }
  }

  #touchesSubject(p: DecodedPacket): boolean {
    const list = p.ipVersion === 4 ? this.#subject4 : this.#subject6
    for (const a of list) {
      if (sameBytes(a, p.buffer, p.srcOffset) || sameBytes(a, p.buffer, p.dstOffset)) return true
    }
    return false
  }

  #flow(p: DecodedPacket, ts: number, wireLength: number, end: number): void {
    const version = p.ipVersion as 4 | 6
    const size = version === 4 ? 4 : 16
    const src = p.buffer.slice(p.srcOffset, p.srcOffset + size)
    const dst = p.buffer.slice(p.dstOffset, p.dstOffset + size)
    let srcPort = p.srcPort
    let dstPort = p.dstPort
    if (p.icmpType >= 0) {
      srcPort = p.icmpType
      const codeAt = p.transportOffset + 1
      dstPort = codeAt < end ? (p.buffer[codeAt] as number) : -1
    }
    const id = communityId({ src, dst, protocol: p.protocol, srcPort, dstPort })
    const tcpFlags = Math.max(p.tcpFlags, 0)
    let flow = this.#flows.get(id)
    if (flow === undefined) {
      if (this.#flows.size >= this.#maxFlows) {
        this.#stats.flowsDropped++
        return
      }
      flow = {
        start: ts,
        end: ts,
        ipVersion: version,
        protocol: p.protocol,
        src: formatAddress(src, 0, version),
        dst: formatAddress(dst, 0, version),
        srcBytes: src,
        srcPort: Math.max(0, srcPort),
        dstPort: Math.max(0, dstPort),
        bytes: 0,
        packets: 0,
        tcpFlags: 0,
        finForward: false,
        finBackward: false,
        rst: false,
        communityId: id,
        dirty: true,
      }
      this.#flows.set(id, flow)
    }
    flow.end = Math.max(flow.end, ts)
    flow.bytes += wireLength
    flow.packets++
    flow.tcpFlags |= tcpFlags
    flow.dirty = true
    if ((tcpFlags & TCP_RST) !== 0) flow.rst = true
    if ((tcpFlags & TCP_FIN) !== 0) {
      const forward = sameBytes(flow.srcBytes, src, 0) && Math.max(0, srcPort) === flow.srcPort
      if (forward) flow.finForward = true
      else flow.finBackward = true
    }
  }

  #dns(p: DecodedPacket, ts: number, end: number): void {
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
      if (this.#pendingDns.has(key)) return // a retransmission: the first one stands
      if (this.#pendingDns.size >= this.#maxPendingDns) {
        this.#stats.dnsDropped++
        return
      }
      this.#pendingDns.set(key, { ts, client: src, server: dst, name: message.name, qtype })
      return
    }
    const key = `${dst}|${p.dstPort}|${src}|${message.id}|${message.name}|${qtype}`
    const query = this.#pendingDns.get(key)
    if (query !== undefined) this.#pendingDns.delete(key)
    this.#records.dns.push(
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

  #web(p: DecodedPacket, ts: number, end: number): void {
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
    const captured = Math.max(0, Math.min(p.payloadLength, end - p.payloadOffset))
    const b = p.buffer
    const seqAt = p.transportOffset + 4
    const seq =
      seqAt + 4 <= end
        ? (b[seqAt] as number) * 0x100_0000 +
          (((b[seqAt + 1] as number) << 16) |
            ((b[seqAt + 2] as number) << 8) |
            (b[seqAt + 3] as number))
        : -1
    const pending = this.#pendingTls.get(direction)
    if (pending !== undefined) {
      this.#continueHello(direction, pending, seq, p.buffer, p.payloadOffset, captured, ts)
      return
    }
    if (!this.#inspected.has(direction)) {
      if (this.#inspected.size >= 65_536) this.#inspected.clear()
      this.#inspected.add(direction)
      const at = bytesAt(p.buffer, p.payloadOffset, captured)
      if (looksLikeClientHello(at)) {
        const result = parseClientHello(at)
        if (result.kind === 'sni') {
          this.#webRecord(client, server, p.dstPort, ts, 'tls-sni', result.name)
        } else if (
          result.kind === 'more' &&
          seq >= 0 &&
          this.#pendingTls.size < this.#maxPendingTls
        ) {
          this.#pendingTls.set(direction, {
            ts,
            base: seq,
            client,
            server,
            serverPort: p.dstPort,
            chunks: [
              { offset: 0, bytes: p.buffer.slice(p.payloadOffset, p.payloadOffset + captured) },
            ],
          })
        }
        return
      }
    }
    const host = parseHttpHost(p.buffer, p.payloadOffset, captured)
    if (host !== undefined) this.#webRecord(client, server, p.dstPort, ts, 'http-host', host)
  }

  #continueHello(
    direction: string,
    pending: PendingHello,
    seq: number,
    buffer: Uint8Array,
    payloadOffset: number,
    captured: number,
    ts: number,
  ): void {
    if (seq < 0 || ts - pending.ts > TLS_TIMEOUT_MS) {
      this.#pendingTls.delete(direction)
      return
    }
    const offset = (seq - pending.base + 0x1_0000_0000) % 0x1_0000_0000
    if (offset > 0 && offset < 65_536 && captured > 0) {
      pending.chunks.push({ offset, bytes: buffer.slice(payloadOffset, payloadOffset + captured) })
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
    this.#pendingTls.delete(direction)
    if (result.kind === 'sni') {
      this.#webRecord(
        pending.client,
        pending.server,
        pending.serverPort,
        pending.ts,
        'tls-sni',
        result.name,
      )
    }
  }

  #webRecord(
    client: string,
    server: string,
    serverPort: number,
    ts: number,
    kind: 'tls-sni' | 'http-host',
    name: string,
  ): void {
    this.#records.web.push(
      webRecord(this.#grant, { ts, client, server, server_port: serverPort, kind, name }),
    )
  }

  #keepPacket(
    header: PcapHeader,
    data: Uint8Array,
    offset: number,
    capturedLength: number,
    originalLength: number,
    tsSeconds: number,
    tsFraction: number,
    ts: number,
  ): void {
    const size = 16 + capturedLength
    if (this.#pcapBytes + size > this.#maxPcapBytes) {
      this.#stats.pcapDropped++
      return
    }
    let chunk = this.#pcap.at(-1)
    if (
      chunk === undefined ||
      chunk.linkType !== header.linkType ||
      chunk.nanosecond !== header.nanosecond ||
      chunk.bytes + size > PCAP_SEGMENT_MAX_BYTES - 24
    ) {
      chunk = {
        linkType: header.linkType,
        nanosecond: header.nanosecond,
        records: [],
        bytes: 0,
        packets: 0,
        first: ts,
        last: ts,
      }
      this.#pcap.push(chunk)
    }
    const record = new Uint8Array(size)
    const view = new DataView(record.buffer)
    view.setUint32(0, tsSeconds, true)
    view.setUint32(4, tsFraction, true)
    view.setUint32(8, capturedLength, true)
    view.setUint32(12, originalLength, true)
    record.set(data.subarray(offset, offset + capturedLength), 16)
    chunk.records.push(record)
    chunk.bytes += size
    chunk.packets++
    chunk.last = Math.max(chunk.last, ts)
    this.#pcapBytes += size
  }

  /**
   * The records of the interval ending at `nowMs`. `final`: the capture is over, so every flow
   * and pending query is reported now and the tables are emptied.
   */
  drain(nowMs: number, final = false): SubjectRecords {
    const out = this.#records
    this.#records = emptyRecords()
    const grant = this.#grant
    if (this.#flowsOn) {
      for (const [id, flow] of this.#flows) {
        if (flow.dirty) {
          out.flows.push(
            flowRecord(grant, {
              start: flow.start,
              end: flow.end,
              ip_version: flow.ipVersion,
              protocol: flow.protocol,
              src: flow.src,
              dst: flow.dst,
              src_port: flow.srcPort,
              dst_port: flow.dstPort,
              bytes: flow.bytes,
              packets: flow.packets,
              tcp_flags: flow.tcpFlags,
              community_id: flow.communityId,
            }),
          )
          flow.dirty = false
        }
        const closed = flow.rst || (flow.finForward && flow.finBackward)
        if (
          final ||
          nowMs - flow.end >= FLOW_IDLE_MS ||
          (closed && nowMs - flow.end >= FLOW_CLOSE_LINGER_MS)
        ) {
          this.#flows.delete(id)
        }
      }
    }
    if (this.#dnsOn) {
      for (const [key, query] of this.#pendingDns) {
        if (final || nowMs - query.ts >= DNS_ANSWER_TIMEOUT_MS) {
          out.dns.push(
            dnsRecord(grant, {
              ts: query.ts,
              client: query.client,
              server: query.server,
              query: query.name,
              qtype: query.qtype,
              rcode: '',
            }),
          )
          this.#pendingDns.delete(key)
        }
      }
    }
    if (this.#webOn) {
      for (const [key, pending] of this.#pendingTls) {
        if (final || nowMs - pending.ts >= TLS_TIMEOUT_MS) this.#pendingTls.delete(key)
      }
      if (final) this.#inspected.clear()
    }
    if (this.#packetsOn) {
      for (const chunk of this.#pcap) {
        out.pcap.push(
          pcapSegment(grant, {
            index: this.#pcapIndex++,
            first: chunk.first,
            last: chunk.last,
            packets: chunk.packets,
            data: Buffer.concat([pcapFileHeader(chunk), ...chunk.records]).toString('base64'),
          }),
        )
      }
      this.#pcap = []
      this.#pcapBytes = 0
    }
    return out
  }
}

function pcapFileHeader(chunk: PcapChunk): Uint8Array {
  const header = new Uint8Array(24)
  const view = new DataView(header.buffer)
  view.setUint32(0, chunk.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, true)
  view.setUint16(4, 2, true)
  view.setUint16(6, 4, true)
  view.setUint32(16, 262_144, true)
  view.setUint32(20, chunk.linkType, true)
  return header
}
