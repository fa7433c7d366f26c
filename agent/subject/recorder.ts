/**
 * From captured packets to tier I records, for one grant.
 *
 * The recorder sits behind the subject capture's tcpdump (whose BPF filter already matches the
 * subject alone) and checks again: a packet is used only when it is an IP packet from or to a
 * subject address, with a timestamp inside the grant's window. Then it hands the packet to one
 * tracker per granted category, and only for granted categories (the others are not even
 * parsed): flows (flow-tracker.ts), dns (dns-tracker.ts, UDP port 53), web (web-tracker.ts, TCP)
 * and packets (packet-keeper.ts). A drain collects what each tracker has; a final drain (grant
 * over, capture stopped) reports everything still held and empties the tables.
 *
 * Nothing here throws on packet input; tables are bounded and what does not fit is counted.
 */

import type { PacketSink, PcapHeader } from '../../common/pcap/pcap-reader.ts'
import { addressAt, parseAddress } from '../decode/address.ts'
import { decodePacket } from '../decode/decode.ts'
import { DecodedPacket, OUTCOME_IP, PROTO_TCP, PROTO_UDP } from '../decode/packet.ts'
import { VerifiedGrant } from '../grants/verify.ts'
import { DnsTracker } from './dns-tracker.ts'
import { FlowTracker } from './flow-tracker.ts'
import { PacketKeeper } from './packet-keeper.ts'
import { emptyRecords, type SubjectRecords } from './records.ts'
import { WebTracker } from './web-tracker.ts'

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

export class SubjectRecorder {
  readonly #grant: VerifiedGrant
  readonly #subject4: Uint8Array[] = []
  readonly #subject6: Uint8Array[] = []
  /** One tracker per granted category; undefined when the grant does not allow it. */
  readonly #flows: FlowTracker | undefined
  readonly #dns: DnsTracker | undefined
  readonly #web: WebTracker | undefined
  readonly #packets: PacketKeeper | undefined

  #header: PcapHeader | undefined
  readonly #packet = new DecodedPacket()
  readonly #counts = { seen: 0, used: 0, outsideWindow: 0, notSubject: 0, undecoded: 0 }

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
    if (grant.allows('flows')) this.#flows = new FlowTracker(grant, options.maxFlows ?? 65_536)
    if (grant.allows('dns')) this.#dns = new DnsTracker(grant, options.maxPendingDns ?? 4_096)
    if (grant.allows('web')) this.#web = new WebTracker(grant, options.maxPendingTls ?? 1_024)
    if (grant.allows('packets')) {
      this.#packets = new PacketKeeper(grant, options.maxPcapBytesPerInterval ?? 64 * 1024 * 1024)
    }
  }

  stats(): RecorderStats {
    return {
      ...this.#counts,
      flowsDropped: this.#flows?.dropped ?? 0,
      dnsDropped: this.#dns?.dropped ?? 0,
      pcapDropped: this.#packets?.dropped ?? 0,
    }
  }

  readonly onHeader = (header: PcapHeader): void => {
    this.#header = header
  }

  readonly onPacket: PacketSink = (
    data,
    offset,
    capturedLength,
    originalLength,
    tsSeconds,
    tsFraction,
  ) => {
    const header = this.#header
    if (header === undefined) return
    this.#counts.seen++
    const ts = Math.floor(
      tsSeconds * 1000 + (header.nanosecond ? tsFraction / 1e6 : tsFraction / 1e3),
    )
    if (!this.#grant.active(ts)) {
      this.#counts.outsideWindow++
      return
    }
    const p = this.#packet
    decodePacket(header.linkType, data, offset, capturedLength, originalLength, p)
    if (p.outcome !== OUTCOME_IP || (p.ipVersion !== 4 && p.ipVersion !== 6)) {
      this.#counts.undecoded++
      return
    }
    if (!this.#touchesSubject(p)) {
      this.#counts.notSubject++
      return
    }
    this.#counts.used++
    const end = Math.min(offset + capturedLength, data.length)
    this.#flows?.observe(p, ts, originalLength, end)
    if (p.protocol === PROTO_UDP && (p.srcPort === 53 || p.dstPort === 53)) {
      this.#dns?.observe(p, ts, end)
    }
    if (p.protocol === PROTO_TCP) this.#web?.observe(p, ts, end)
    this.#packets?.keep(
      header,
      ts,
      data,
      offset,
      capturedLength,
      originalLength,
      tsSeconds,
      tsFraction,
    )
  }

  #touchesSubject(p: DecodedPacket): boolean {
    const list = p.ipVersion === 4 ? this.#subject4 : this.#subject6
    for (const a of list) {
      if (addressAt(a, p.buffer, p.srcOffset) || addressAt(a, p.buffer, p.dstOffset)) return true
    }
    return false
  }

  /**
   * The records of the interval ending at `nowMs`. `final`: the capture is over, so every flow
   * and pending query is reported now and the tables are emptied.
   */
  drain(nowMs: number, final = false): SubjectRecords {
    const out = emptyRecords()
    if (this.#flows) out.flows = this.#flows.drain(nowMs, final)
    if (this.#dns) out.dns = this.#dns.drain(nowMs, final)
    if (this.#web) out.web = this.#web.drain(nowMs, final)
    if (this.#packets) out.pcap = this.#packets.drain()
    return out
  }
}
