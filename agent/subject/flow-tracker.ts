/**
 * Flow records for a grant that allows flows: a bidirectional flow table keyed by Community ID
 * (which is direction-free: both directions of a 5-tuple, and ICMP requests and their replies,
 * share one). The first packet's source is the flow's source. Bytes are frame lengths on the
 * wire.
 *
 * Reporting: each drain reports every flow that saw a packet since the previous drain, with its
 * cumulative counts so far; (community_id, start) names the flow, and the record with the latest
 * `end` (equivalently the most packets) is the one to keep. A flow ends after 30 s without
 * packets, or 1 s after a RST or after FINs from both sides; it is then forgotten, and its last
 * record already carries its final counts. A final drain reports all.
 */
import type { FlowRecord } from '../../protocol/grants.ts'
import { addressAt, formatAddress } from '../decode/address.ts'
import { type DecodedPacket, TCP_FIN, TCP_RST } from '../decode/packet.ts'
import type { VerifiedGrant } from '../grants/verify.ts'
import { communityId } from './community-id.ts'
import { flowRecord, type Granted } from './records.ts'

export const FLOW_IDLE_MS = 30_000
/** How long a closed (RST, or FIN both ways) flow lingers for its last ACKs. */
export const FLOW_CLOSE_LINGER_MS = 1_000

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

export class FlowTracker {
  readonly #grant: VerifiedGrant
  readonly #maxFlows: number
  readonly #flows = new Map<string, Flow>()
  /** Flows not tracked because the table was full. */
  dropped = 0

  constructor(grant: VerifiedGrant, maxFlows: number) {
    this.#grant = grant
    this.#maxFlows = maxFlows
  }

  /** One IP packet of the subject; `end` is where its captured bytes end in `p.buffer`. */
  observe(p: DecodedPacket, ts: number, wireLength: number, end: number): void {
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
    const flow =
      this.#flows.get(id) ?? this.#open(id, p.protocol, ts, version, src, dst, srcPort, dstPort)
    if (flow === undefined) return
    const tcpFlags = Math.max(p.tcpFlags, 0)
    flow.end = Math.max(flow.end, ts)
    flow.bytes += wireLength
    flow.packets++
    flow.tcpFlags |= tcpFlags
    flow.dirty = true
    if ((tcpFlags & TCP_RST) !== 0) flow.rst = true
    if ((tcpFlags & TCP_FIN) !== 0) {
      const forward = addressAt(flow.srcBytes, src, 0) && Math.max(0, srcPort) === flow.srcPort
      if (forward) flow.finForward = true
      else flow.finBackward = true
    }
  }

  #open(
    id: string,
    protocol: number,
    ts: number,
    version: 4 | 6,
    src: Uint8Array,
    dst: Uint8Array,
    srcPort: number,
    dstPort: number,
  ): Flow | undefined {
    if (this.#flows.size >= this.#maxFlows) {
      this.dropped++
      return undefined
    }
    const flow: Flow = {
      start: ts,
      end: ts,
      ipVersion: version,
      protocol,
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
    return flow
  }

  /** Records of the flows seen since the last drain; forgets the flows that ended. */
  drain(nowMs: number, final: boolean): Granted<FlowRecord>[] {
    const out: Granted<FlowRecord>[] = []
    for (const [id, flow] of this.#flows) {
      if (flow.dirty) {
        out.push(this.#record(flow))
        flow.dirty = false
      }
      if (final || ended(flow, nowMs)) this.#flows.delete(id)
    }
    return out
  }

  #record(flow: Flow): Granted<FlowRecord> {
    return flowRecord(this.#grant, {
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
    })
  }
}

function ended(flow: Flow, nowMs: number): boolean {
  const idle = nowMs - flow.end
  const closed = flow.rst || (flow.finForward && flow.finBackward)
  return idle >= FLOW_IDLE_MS || (closed && idle >= FLOW_CLOSE_LINGER_MS)
}
