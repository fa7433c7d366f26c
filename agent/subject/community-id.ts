/**
 * Community ID flow hashing, version 1 (https://github.com/corelight/community-id-spec):
 *
 *   "1:" + base64(SHA-1(seed (2 bytes, BE) | src addr | dst addr | proto (1) | 0 (1)
 *                       | src port (2, BE) | dst port (2, BE)))
 *
 * The endpoints are ordered so both directions of a flow give the same ID: the tuple is kept
 * as is when src addr < dst addr (bytewise), or the addresses are equal and src port < dst
 * port; otherwise the two endpoints are swapped. ICMP and ICMPv6 use the message type as the
 * source "port" and, for request/reply pairs, the counterpart type as the destination "port";
 * other messages are one-way (never swapped) with the code as the destination "port".
 * Protocols without ports (and later IP fragments) hash the addresses and protocol only.
 */
import { createHash } from 'node:crypto'

const PROTO_ICMP = 1
const PROTO_TCP = 6
const PROTO_UDP = 17
const PROTO_SCTP = 132
const PROTO_ICMPV6 = 58

/** ICMPv4 request/reply counterparts (echo, timestamp, info, router, address mask). */
const ICMP4_PAIRS = new Map<number, number>([
  [8, 0],
  [0, 8],
  [13, 14],
  [14, 13],
  [15, 16],
  [16, 15],
  [10, 9],
  [9, 10],
  [17, 18],
  [18, 17],
])

/** ICMPv6 request/reply counterparts (echo, router, neighbor, MLD, node information, HA). */
const ICMP6_PAIRS = new Map<number, number>([
  [128, 129],
  [129, 128],
  [133, 134],
  [134, 133],
  [135, 136],
  [136, 135],
  [130, 131],
  [131, 130],
  [139, 140],
  [140, 139],
  [144, 145],
  [145, 144],
])

export interface CommunityIdTuple {
  /** 4 or 16 bytes each, same length. */
  src: Uint8Array
  dst: Uint8Array
  protocol: number
  /** TCP/UDP/SCTP ports; ICMP type; -1 when unknown (later fragment). */
  srcPort: number
  /** TCP/UDP/SCTP ports; ICMP code; -1 when unknown. */
  dstPort: number
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** Community ID v1 of a flow tuple; `seed` defaults to 0. */
export function communityId(tuple: CommunityIdTuple, seed = 0): string {
  let { src, dst, srcPort, dstPort } = tuple
  const { protocol } = tuple
  let hasPorts =
    protocol === PROTO_TCP ||
    protocol === PROTO_UDP ||
    protocol === PROTO_SCTP ||
    protocol === PROTO_ICMP ||
    protocol === PROTO_ICMPV6
  if (srcPort < 0 || dstPort < 0) hasPorts = false
  let oneWay = false
  if (hasPorts && (protocol === PROTO_ICMP || protocol === PROTO_ICMPV6)) {
    const pairs = protocol === PROTO_ICMP ? ICMP4_PAIRS : ICMP6_PAIRS
    const counterpart = pairs.get(srcPort)
    if (counterpart === undefined) oneWay = true
    else dstPort = counterpart
  }
  const order = compareBytes(src, dst)
  const ordered = oneWay || order < 0 || (order === 0 && (!hasPorts || srcPort < dstPort))
  if (!ordered) {
    ;[src, dst] = [dst, src]
    ;[srcPort, dstPort] = [dstPort, srcPort]
  }
  const hash = createHash('sha1')
  const head = new Uint8Array(2)
  head[0] = (seed >> 8) & 0xff
  head[1] = seed & 0xff
  hash.update(head)
  hash.update(src)
  hash.update(dst)
  const tail = new Uint8Array(hasPorts ? 6 : 2)
  tail[0] = protocol & 0xff
  tail[1] = 0
  if (hasPorts) {
    tail[2] = (srcPort >> 8) & 0xff
    tail[3] = srcPort & 0xff
    tail[4] = (dstPort >> 8) & 0xff
    tail[5] = dstPort & 0xff
  }
  hash.update(tail)
  return `1:${hash.digest('base64')}`
}
