/**
 * The result of decoding one captured frame, written into one reused object so the hot path
 * allocates nothing per packet. Addresses are not copied: they stay in the capture buffer and
 * are referred to by offset, for the aggregator to classify and forget.
 */

/** Why a frame could not be decoded. A closed set, so counts by reason can go on the wire. */
export const MALFORMED_REASONS = [
  'truncated-link',
  'unsupported-link-type',
  'vlan-too-deep',
  'bad-ip-version',
  'truncated-ipv4',
  'bad-ipv4-header-length',
  'bad-ipv4-total-length',
  'truncated-ipv6',
  'bad-ipv6-payload-length',
  'ipv6-extension-chain',
  'truncated-tcp',
  'bad-tcp-data-offset',
  'truncated-udp',
  'bad-udp-length',
  'truncated-icmp',
] as const
export type MalformedReason = (typeof MALFORMED_REASONS)[number]

export const OUTCOME_IP = 0
export const OUTCOME_NON_IP = 1
export const OUTCOME_MALFORMED = 2

export const PROTO_ICMP = 1
export const PROTO_TCP = 6
export const PROTO_UDP = 17
export const PROTO_ICMPV6 = 58

/** TCP flag bits, as in DecodedPacket.tcpFlags. */
export const TCP_FIN = 0x01
export const TCP_SYN = 0x02
export const TCP_RST = 0x04

/** Link-layer header types (tcpdump.org/linktypes.html) that the decoder knows. */
export const LINKTYPE_NULL = 0
export const LINKTYPE_ETHERNET = 1
export const LINKTYPE_RAW = 101
export const LINKTYPE_LOOP = 108
export const LINKTYPE_LINUX_SLL = 113
export const LINKTYPE_IPV4 = 228
export const LINKTYPE_IPV6 = 229
export const LINKTYPE_LINUX_SLL2 = 276

export class DecodedPacket {
  /** OUTCOME_IP, OUTCOME_NON_IP (ARP and other non-IP frames) or OUTCOME_MALFORMED. */
  outcome = OUTCOME_MALFORMED
  /** Set when outcome is OUTCOME_MALFORMED. */
  malformed: MalformedReason = 'truncated-link'
  /** For OUTCOME_NON_IP: 'arp' or 'other'. */
  nonIp: 'arp' | 'other' = 'other'
  /** 4 or 6 when outcome is OUTCOME_IP. */
  ipVersion: 0 | 4 | 6 = 0
  /** The buffer the addresses are in (the capture's, not a copy). */
  buffer: Uint8Array = new Uint8Array(0)
  /** Offsets of the source and destination addresses in `buffer`; 4 bytes for IPv4, 16 for IPv6. */
  srcOffset = 0
  dstOffset = 0
  /** IP protocol of the transport header after any IPv6 extension headers (6, 17, 1, 58, ...). */
  protocol = 0
  /** TCP/UDP ports, or -1 when there are none (another protocol, or a non-first fragment). */
  srcPort = -1
  dstPort = -1
  /** TCP flags byte, or -1 when not TCP or not available. */
  tcpFlags = -1
  /** ICMP/ICMPv6 type, or -1. */
  icmpType = -1
  /** The packet is an IP fragment; `firstFragment` tells whether it carries the transport header. */
  fragment = false
  firstFragment = true
  /** Outer 802.1Q VLAN id, or -1. */
  vlan = -1
  /** Offset of the IP header in `buffer`, or -1 when no IP header was reached. */
  ipOffset = -1
  /**
   * Length of the IP packet per its own header (IPv4 total length, IPv6 40 + payload length),
   * which excludes link padding and FCS; 0 when no IP header was reached.
   */
  ipLength = 0
  /** Offset of the transport header (after IPv6 extension headers) in `buffer`, or -1. */
  transportOffset = -1
  /**
   * Offset of the TCP/UDP payload in `buffer` (it may lie past the captured bytes), or -1 when
   * not TCP/UDP or a non-first fragment.
   */
  payloadOffset = -1
  /**
   * TCP/UDP payload length on the wire per the IP (TCP) or UDP length fields, or -1. For a first
   * fragment, only what this fragment carries.
   */
  payloadLength = -1
}
