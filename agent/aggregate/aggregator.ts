/**
 * Turns decoded packets into the interval's aggregates, and nothing else leaves it.
 *
 * Tier A: bytes, packets and new flows keyed by direction, IP version, transport, service and
 * peer class. Tier T: the host's traffic by direction and transport, and capture statistics.
 * Addresses are classified where they lie in the capture buffer and never copied; the flow table
 * keeps a 62-bit hash of each conversation, not its endpoints.
 *
 * Definitions (also in the README):
 * - bytes are the frame's original length on the wire (tshark's `frame.len`);
 * - a flow is a conversation in both directions between two endpoints: the IP version, the
 *   transport, both addresses and, for TCP and UDP, both ports (ICMP and other protocols have no
 *   ports: all of it between two addresses is one flow);
 * - a new flow is counted, in the bucket of its packet, when a packet's flow was not seen in the
 *   last `flowIdleMs` (60 s by default, by capture timestamps) or has never been seen; a later
 *   fragment (no ports) starts no flow;
 * - the peer class of a packet sent to a multicast or broadcast address is multicast-broadcast.
 */

import { DIRECTIONS, PEER_CLASSES, TRANSPORTS } from '../../protocol/classes.ts'
import { SERVICE_NAMES, SERVICE_TABLE } from '../../protocol/services.ts'
import type { HostSample, UsageContribution } from '../../protocol/v1.ts'
import {
  type DecodedPacket,
  OUTCOME_IP,
  OUTCOME_MALFORMED,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
} from '../decode/packet.ts'
import { FLOW_NEW, FLOW_NEW_TABLE_FULL, FlowTable } from './flow-table.ts'
import {
  AddressClassifier,
  CLASS_HOST,
  CLASS_LOCAL_SCOPE,
  CLASS_MULTICAST,
  CLASS_ORGANISATION,
  CLASS_SITE,
  LOCAL_SCOPE_PREFIXES,
  MULTICAST_PREFIXES,
  type Prefix,
} from './prefixes.ts'

export interface AggregatorOptions {
  /** host: directions relative to this host's addresses; gateway: relative to the site prefixes. */
  mode: 'host' | 'gateway'
  /** The host's own addresses (host mode), as /32 and /128 prefixes. */
  localAddresses: readonly Prefix[]
  sitePrefixes: readonly Prefix[]
  organisationPrefixes: readonly Prefix[]
  flowIdleMs?: number
  /** Bound on the flow table; beyond it, flows are still counted but not remembered. */
  maxFlows?: number
}

export interface CaptureCounters {
  packets: number
  bytes: number
  decoded: number
  nonIp: number
  malformed: Map<string, number>
  /** Packets whose flow could not be remembered because the flow table was full. */
  flowTableFull: number
}

const DIR_INBOUND = 0
const DIR_OUTBOUND = 1
const DIR_INTERNAL = 2
const DIR_TRANSIT = 3

const PEER_SAME_SITE = 0
const PEER_ORGANISATION = 1
const PEER_INTERNET = 2
const PEER_MULTICAST = 3

const T_TCP = 0
const T_UDP = 1
const T_ICMP = 2
const T_ICMPV6 = 3
const T_OTHER = 4

const SERVICE_COUNT = SERVICE_NAMES.length
const SVC_OTHER_TCP = SERVICE_NAMES.indexOf('other-tcp')
const SVC_OTHER_UDP = SERVICE_NAMES.indexOf('other-udp')
const SVC_ICMP = SERVICE_NAMES.indexOf('icmp')
const SVC_ICMPV6 = SERVICE_NAMES.indexOf('icmpv6')
const SVC_OTHER = SERVICE_NAMES.indexOf('other')

/** Port → service index + 1 (0: not a well-known port), one table per transport. */
function portTable(transport: 'tcp' | 'udp'): Uint8Array {
  const table = new Uint8Array(65536)
  SERVICE_TABLE.forEach((service, index) => {
    for (const port of service[transport] ?? []) table[port] = index + 1
  })
  return table
}
const TCP_SERVICES = portTable('tcp')
const UDP_SERVICES = portTable('udp')

const SLOTS = 4 * 2 * 5 * SERVICE_COUNT * 4
const slotOf = (dir: number, v: number, t: number, s: number, p: number) =>
  (((dir * 2 + v) * 5 + t) * SERVICE_COUNT + s) * 4 + p

export class TrafficAggregator {
  readonly #options: AggregatorOptions
  readonly #flowIdleMs: number
  readonly #maxFlows: number
  // Per interval, indexed by slot: no allocation per packet.
  readonly #bytes = new Float64Array(SLOTS)
  readonly #packets = new Float64Array(SLOTS)
  readonly #flows = new Float64Array(SLOTS)
  /** Tier T: [direction][transport] bytes and packets. */
  readonly #hostBytes = new Float64Array(4 * 5)
  readonly #hostPackets = new Float64Array(4 * 5)
  readonly #flowTable: FlowTable
  readonly #classifier: AddressClassifier
  #interval: CaptureCounters = emptyCounters()
  readonly total: CaptureCounters = emptyCounters()

  constructor(options: AggregatorOptions) {
    this.#options = options
    this.#flowIdleMs = options.flowIdleMs ?? 60_000
    this.#maxFlows = options.maxFlows ?? 1_000_000
    this.#flowTable = new FlowTable(this.#maxFlows)
    this.#classifier = new AddressClassifier([
      { prefixes: options.localAddresses, addressClass: CLASS_HOST },
      { prefixes: options.sitePrefixes, addressClass: CLASS_SITE },
      { prefixes: LOCAL_SCOPE_PREFIXES, addressClass: CLASS_LOCAL_SCOPE },
      { prefixes: MULTICAST_PREFIXES, addressClass: CLASS_MULTICAST },
      { prefixes: options.organisationPrefixes, addressClass: CLASS_ORGANISATION },
    ])
  }

  /** Counts one frame. `frameLength` is its original length; `timeMs` its capture timestamp. */
  add(packet: DecodedPacket, frameLength: number, timeMs: number): void {
    count(this.#interval, this.total, frameLength)
    if (packet.outcome !== OUTCOME_IP) {
      this.#countUndecoded(packet)
      return
    }
    this.#interval.decoded += 1
    this.total.decoded += 1

    const version = packet.ipVersion === 6 ? 6 : 4
    const source = this.#classifier.classify(version, packet.buffer, packet.srcOffset)
    const destination = this.#classifier.classify(version, packet.buffer, packet.dstOffset)
    const own = this.#options.mode === 'host' ? CLASS_HOST : CLASS_SITE
    const fromUs = (source & own) !== 0
    const toUs = (destination & own) !== 0
    const dir = direction(fromUs, toUs, this.#options.mode === 'host')
    // Traffic sent to a group is multicast-broadcast whichever way it goes; otherwise the peer
    // is the end that is not us (or not the site).
    const peer =
      (destination & CLASS_MULTICAST) !== 0
        ? PEER_MULTICAST
        : peerClass(dir === DIR_INBOUND ? source : destination)

    const transport = transportOf(packet.protocol)
    const service = serviceFor(transport, packet.srcPort, packet.dstPort)

    const slot = slotOf(dir, version === 6 ? 1 : 0, transport, service, peer)
    this.#bytes[slot] = (this.#bytes[slot] ?? 0) + frameLength
    this.#packets[slot] = (this.#packets[slot] ?? 0) + 1
    // A later fragment has no ports: it belongs to the flow its first fragment counted.
    const laterFragment = packet.fragment && !packet.firstFragment
    if (!laterFragment && this.#isNewFlow(packet, version, timeMs))
      this.#flows[slot] = (this.#flows[slot] ?? 0) + 1
    const hostSlot = dir * 5 + transport
    this.#hostBytes[hostSlot] = (this.#hostBytes[hostSlot] ?? 0) + frameLength
    this.#hostPackets[hostSlot] = (this.#hostPackets[hostSlot] ?? 0) + 1
  }

  #countUndecoded(packet: DecodedPacket): void {
    if (packet.outcome === OUTCOME_MALFORMED) {
      bump(this.#interval.malformed, packet.malformed)
      bump(this.total.malformed, packet.malformed)
    } else {
      this.#interval.nonIp += 1
      this.total.nonIp += 1
    }
  }

  #isNewFlow(packet: DecodedPacket, version: 4 | 6, timeMs: number): boolean {
    flowHash(packet, version)
    const last = this.#flowTable.touch(hashHi, hashLo, timeMs)
    if (last === FLOW_NEW) return true
    if (last === FLOW_NEW_TABLE_FULL) {
      this.#interval.flowTableFull += 1
      this.total.flowTableFull += 1
      return true
    }
    return timeMs - last > this.#flowIdleMs
  }

  /** The interval's aggregates; resets them and forgets flows idle at `nowMs`. */
  drain(nowMs: number): IntervalAggregates {
    const usage: UsageContribution[] = []
    for (let slot = 0; slot < SLOTS; slot++) {
      const packets = this.#packets[slot] ?? 0
      if (packets === 0) continue
      let rest = slot
      const peer = rest % 4
      rest = Math.floor(rest / 4)
      const service = rest % SERVICE_COUNT
      rest = Math.floor(rest / SERVICE_COUNT)
      const transport = rest % 5
      rest = Math.floor(rest / 5)
      const v = rest % 2
      const dir = Math.floor(rest / 2)
      usage.push({
        direction: DIRECTIONS[dir] ?? 'transit',
        ip_version: v === 1 ? 6 : 4,
        transport: TRANSPORTS[transport] ?? 'other',
        service: SERVICE_NAMES[service] ?? 'other',
        peer_class: PEER_CLASSES[peer] ?? 'internet',
        bytes: this.#bytes[slot] ?? 0,
        packets,
        flows: this.#flows[slot] ?? 0,
      })
    }
    const traffic: HostSample[] = []
    for (let hostSlot = 0; hostSlot < 4 * 5; hostSlot++) {
      const packets = this.#hostPackets[hostSlot] ?? 0
      if (packets === 0) continue
      const attributes = {
        'tally.direction': DIRECTIONS[Math.floor(hostSlot / 5)] ?? 'transit',
        'network.transport': TRANSPORTS[hostSlot % 5] ?? 'other',
      }
      traffic.push({
        metric: 'tally.traffic.bytes',
        value: this.#hostBytes[hostSlot] ?? 0,
        attributes,
      })
      traffic.push({ metric: 'tally.traffic.packets', value: packets, attributes })
    }
    const counters = this.#interval
    this.#bytes.fill(0)
    this.#packets.fill(0)
    this.#flows.fill(0)
    this.#hostBytes.fill(0)
    this.#hostPackets.fill(0)
    this.#interval = emptyCounters()
    this.#flowTable.sweep(nowMs - this.#flowIdleMs)
    return { usage, traffic, counters }
  }

  get trackedFlows(): number {
    return this.#flowTable.size
  }
}

export interface IntervalAggregates {
  usage: UsageContribution[]
  traffic: HostSample[]
  counters: CaptureCounters
}

function peerClass(classes: number): number {
  if ((classes & CLASS_MULTICAST) !== 0) return PEER_MULTICAST
  if ((classes & (CLASS_SITE | CLASS_LOCAL_SCOPE | CLASS_HOST)) !== 0) return PEER_SAME_SITE
  if ((classes & CLASS_ORGANISATION) !== 0) return PEER_ORGANISATION
  return PEER_INTERNET
}

function emptyCounters(): CaptureCounters {
  return { packets: 0, bytes: 0, decoded: 0, nonIp: 0, malformed: new Map(), flowTableFull: 0 }
}

function count(interval: CaptureCounters, total: CaptureCounters, frameLength: number): void {
  interval.packets += 1
  interval.bytes += frameLength
  total.packets += 1
  total.bytes += frameLength
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

/** The side with the well-known port names the service; when both have one, the lower port. */
function serviceOf(table: Uint8Array, srcPort: number, dstPort: number): number {
  const src = srcPort >= 0 ? (table[srcPort] ?? 0) : 0
  const dst = dstPort >= 0 ? (table[dstPort] ?? 0) : 0
  if (src !== 0 && dst !== 0) return (srcPort < dstPort ? src : dst) - 1
  if (dst !== 0) return dst - 1
  if (src !== 0) return src - 1
  return -1
}

/** The last flow hash, in two halves (written by flowHash, so hashing allocates nothing). */
let hashHi = 0
let hashLo = 0

/**
 * A 62-bit hash of the conversation, the same in both directions: the endpoints are put in a
 * fixed order first. Two FNV-1a style 32-bit hashes with different multipliers make the bits.
 */
function flowHash(packet: DecodedPacket, version: 4 | 6): void {
  const buffer = packet.buffer
  const length = version === 4 ? 4 : 16
  const hasPorts = packet.protocol === PROTO_TCP || packet.protocol === PROTO_UDP
  const srcPort = hasPorts ? packet.srcPort : 0
  const dstPort = hasPorts ? packet.dstPort : 0
  let order = 0
  for (let i = 0; i < length && order === 0; i++) {
    order = (buffer[packet.srcOffset + i] ?? 0) - (buffer[packet.dstOffset + i] ?? 0)
  }
  if (order === 0) order = srcPort - dstPort
  const aOffset = order <= 0 ? packet.srcOffset : packet.dstOffset
  const bOffset = order <= 0 ? packet.dstOffset : packet.srcOffset
  const aPort = order <= 0 ? srcPort : dstPort
  const bPort = order <= 0 ? dstPort : srcPort
  let h1 = 0x811c9dc5 ^ packet.protocol
  let h2 = 0x9747b28c ^ version
  for (let i = 0; i < length; i++) {
    const a = buffer[aOffset + i] ?? 0
    h1 = Math.imul(h1 ^ a, 0x01000193)
    h2 = Math.imul(h2 ^ a, 0x5bd1e995)
  }
  for (let i = 0; i < length; i++) {
    const b = buffer[bOffset + i] ?? 0
    h1 = Math.imul(h1 ^ b, 0x01000193)
    h2 = Math.imul(h2 ^ b, 0x5bd1e995)
  }
  hashHi = Math.imul(h1 ^ ((aPort << 16) | bPort), 0x01000193)
  hashLo = (Math.imul(h2 ^ ((bPort << 16) | aPort), 0x5bd1e995) >>> 2) & 0x3fffffff
}

/** Which way a packet goes, seen from the host (host mode) or the site. */
function direction(fromUs: boolean, toUs: boolean, hostMode: boolean): number {
  if (fromUs) return toUs ? DIR_INTERNAL : DIR_OUTBOUND
  return toUs || hostMode ? DIR_INBOUND : DIR_TRANSIT
}

function transportOf(protocol: number): number {
  switch (protocol) {
    case PROTO_TCP:
      return T_TCP
    case PROTO_UDP:
      return T_UDP
    case PROTO_ICMP:
      return T_ICMP
    case PROTO_ICMPV6:
      return T_ICMPV6
    default:
      return T_OTHER
  }
}

/** The service a packet of this transport belongs to, by its well-known port if it has one. */
function serviceFor(transport: number, srcPort: number, dstPort: number): number {
  switch (transport) {
    case T_TCP: {
      const service = serviceOf(TCP_SERVICES, srcPort, dstPort)
      return service < 0 ? SVC_OTHER_TCP : service
    }
    case T_UDP: {
      const service = serviceOf(UDP_SERVICES, srcPort, dstPort)
      return service < 0 ? SVC_OTHER_UDP : service
    }
    case T_ICMP:
      return SVC_ICMP
    case T_ICMPV6:
      return SVC_ICMPV6
    default:
      return SVC_OTHER
  }
}
