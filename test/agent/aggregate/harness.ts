/**
 * Frames through the real decoder into a TrafficAggregator, the way the capture feeds it, and the
 * drained aggregates in a form that reads well in assertions.
 */
import {
  type AggregatorOptions,
  type IntervalAggregates,
  TrafficAggregator,
} from '../../../agent/aggregate/aggregator.ts'
import { DEFAULT_ORGANISATION_PREFIXES, parsePrefix } from '../../../agent/aggregate/prefixes.ts'
import { decodePacket } from '../../../agent/decode/decode.ts'
import { DecodedPacket, LINKTYPE_ETHERNET } from '../../../agent/decode/packet.ts'
import type { UsageContribution } from '../../../protocol/v1.ts'
import {
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ethernet,
  filler,
  type Ipv6Extension,
  icmp,
  ipv4,
  ipv6,
  tcp,
  udp,
} from '../decode/frames.ts'

export const SITE = ['10.1.0.0/16', '2001:db8:1::/48']
export const HOST = ['10.1.2.3', '2001:db8:1::3']

export interface Setup {
  mode?: 'host' | 'gateway'
  local?: readonly string[]
  site?: readonly string[]
  organisation?: readonly string[]
  flowIdleMs?: number
  maxFlows?: number
}

export function options(setup: Setup = {}): AggregatorOptions {
  const result: AggregatorOptions = {
    mode: setup.mode ?? 'gateway',
    localAddresses: (setup.local ?? []).map(parsePrefix),
    sitePrefixes: (setup.site ?? SITE).map(parsePrefix),
    organisationPrefixes: (setup.organisation ?? DEFAULT_ORGANISATION_PREFIXES).map(parsePrefix),
  }
  if (setup.flowIdleMs !== undefined) result.flowIdleMs = setup.flowIdleMs
  if (setup.maxFlows !== undefined) result.maxFlows = setup.maxFlows
  return result
}

export function aggregator(setup: Setup = {}): TrafficAggregator {
  return new TrafficAggregator(options(setup))
}

/** One reused output object, as in the agent. */
const decoded = new DecodedPacket()

export interface FeedOptions {
  timeMs?: number
  /** Bytes captured (the snaplen cut); default the whole frame. */
  snaplen?: number
  /** Length on the wire; default the frame's length. */
  originalLength?: number
  linkType?: number
}

/**
 * Decodes `frame` and adds it. The frame sits inside a larger buffer, between bytes that are not
 * part of it, and the buffer is overwritten afterwards: the aggregator must keep nothing of it.
 */
export function feed(agg: TrafficAggregator, frame: Uint8Array, o: FeedOptions = {}): void {
  const pad = 7
  const buffer = new Uint8Array(pad + frame.length + 32).fill(0xee)
  buffer.set(frame, pad)
  const captured = Math.min(o.snaplen ?? frame.length, frame.length)
  const original = o.originalLength ?? frame.length
  decodePacket(o.linkType ?? LINKTYPE_ETHERNET, buffer, pad, captured, original, decoded)
  agg.add(decoded, original, o.timeMs ?? 0)
  buffer.fill(0x5a)
}

export type Transport = 'tcp' | 'udp' | 'icmp' | 'icmpv6'

export interface PacketSpec {
  src: string
  dst: string
  /** A transport by name or an IP protocol number. */
  proto?: Transport | number
  sport?: number
  dport?: number
  payload?: number
  /** IPv4 fragment offset (8-byte units) / more fragments; for IPv6, a fragment header. */
  fragmentOffset?: number
  moreFragments?: boolean
  extensions?: Ipv6Extension[]
}

const PROTOCOL_NUMBERS: Record<Transport, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 }

/** An Ethernet frame carrying one IPv4 or IPv6 packet (the version follows the addresses). */
export function packet(spec: PacketSpec): Uint8Array {
  const proto = spec.proto ?? 'tcp'
  const protocol = typeof proto === 'number' ? proto : PROTOCOL_NUMBERS[proto]
  const payload = filler(spec.payload ?? 10)
  const nonFirst = (spec.fragmentOffset ?? 0) > 0
  let body: Uint8Array
  if (nonFirst) body = filler(spec.payload ?? 24)
  else if (protocol === 6) body = tcp({ srcPort: spec.sport, dstPort: spec.dport, payload })
  else if (protocol === 17) body = udp({ srcPort: spec.sport, dstPort: spec.dport, payload })
  else if (protocol === 1) body = icmp(8)
  else if (protocol === 58) body = icmp(128)
  else body = payload
  const v6 = spec.dst.includes(':')
  if (!v6) {
    return ethernet(
      ETHERTYPE_IPV4,
      ipv4(body, {
        src: spec.src,
        dst: spec.dst,
        protocol,
        fragmentOffset: spec.fragmentOffset,
        moreFragments: spec.moreFragments,
      }),
    )
  }
  const extensions = [...(spec.extensions ?? [])]
  if (spec.fragmentOffset !== undefined || spec.moreFragments) {
    extensions.push({ type: 44, fragmentOffset: spec.fragmentOffset, more: spec.moreFragments })
  }
  return ethernet(
    ETHERTYPE_IPV6,
    ipv6(body, { src: spec.src, dst: spec.dst, protocol, extensions }),
  )
}

/** A usage row's key, as one line: `outbound v4 tcp https internet`. */
export function keyOf(u: UsageContribution): string {
  return `${u.direction} v${u.ip_version} ${u.transport} ${u.service} ${u.peer_class}`
}

export interface Counts {
  bytes: number
  packets: number
  flows: number
}

/** The usage rows by key. Fails on a duplicate key: every bucket is one row. */
export function byKey(usage: readonly UsageContribution[]): Record<string, Counts> {
  const out: Record<string, Counts> = {}
  for (const u of usage) {
    const key = keyOf(u)
    if (out[key] !== undefined) throw new Error(`duplicate usage row ${key}`)
    out[key] = { bytes: u.bytes, packets: u.packets, flows: u.flows }
  }
  return out
}

/** The keys of the rows (each with one packet in most tests). */
export function keysOf(aggregates: IntervalAggregates): string[] {
  return aggregates.usage.map(keyOf).sort()
}

/** Aggregates one packet per spec in a fresh aggregator and returns the one row it made. */
export function classify(spec: PacketSpec, setup: Setup = {}): string {
  const agg = aggregator(setup)
  feed(agg, packet(spec))
  const { usage } = agg.drain(0)
  if (usage.length !== 1) throw new Error(`expected one usage row, got ${JSON.stringify(usage)}`)
  return keyOf(usage[0] as UsageContribution)
}
