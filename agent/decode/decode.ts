/**
 * Link, network and transport decoders for the capture hot path.
 *
 * `decodePacket` reads one captured frame and fills a reused `DecodedPacket`. It never throws,
 * never allocates (no objects, arrays, strings, subarrays or DataViews per call) and reads bytes
 * straight from the capture buffer; every read is bounds-checked against the captured end first.
 *
 * Two lengths matter for every frame:
 * - the captured end (`offset + capturedLength`, clamped to the buffer): what we may read;
 * - the wire end (`offset + originalLength`): where the frame ended on the wire. Length fields in
 *   the IP headers are checked against it, so a frame cut by the snaplen (128 bytes by default)
 *   is not mistaken for a malformed one, while a header whose length runs past the real frame is.
 *
 * Malformed reasons are decided in one place each and are documented at that place with a
 * `reason:` comment.
 */
import {
  type DecodedPacket,
  LINKTYPE_ETHERNET,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  type MalformedReason,
  OUTCOME_IP,
  OUTCOME_MALFORMED,
  OUTCOME_NON_IP,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
} from './packet.ts'

const ETHERTYPE_IPV4 = 0x0800
const ETHERTYPE_ARP = 0x0806
const ETHERTYPE_IPV6 = 0x86dd
const ETHERTYPE_VLAN = 0x8100
const ETHERTYPE_QINQ = 0x88a8
const ETHERTYPE_QINQ_OLD = 0x9100

/** At most this many VLAN tags (802.1Q, or QinQ outer + inner). */
const MAX_VLAN_TAGS = 2
/** At most this many IPv6 extension headers before the chain is declared malformed. */
export const MAX_IPV6_EXTENSION_HEADERS = 8

const ETHERNET_HEADER = 14
const SLL_HEADER = 16
const SLL2_HEADER = 20
const LOOPBACK_HEADER = 4
const IPV4_MIN_HEADER = 20
const IPV6_HEADER = 40
const TCP_MIN_CAPTURED = 14
const TCP_MIN_HEADER = 20
const UDP_HEADER = 8

/** BSD loopback address families (the value is the sender's AF_ constant). */
const AF_INET = 2
const AF_INET6_LINUX = 10
const AF_INET6_BSD = 24
const AF_INET6_FREEBSD = 28
const AF_INET6_DARWIN = 30

/** IPv6 extension headers (IANA "IPv6 Extension Header Types"). */
const IPV6_HOP_BY_HOP = 0
const IPV6_ROUTING = 43
const IPV6_FRAGMENT = 44
const IPV6_AH = 51
const IPV6_DESTINATION = 60
const IPV6_MOBILITY = 135
const IPV6_HIP = 139
const IPV6_SHIM6 = 140

/** Jumbo Payload option (RFC 2675), the first option of a hop-by-hop header of a jumbogram. */
const IPV6_OPTION_JUMBO = 0xc2

/** The byte at `i`; callers have checked `i` against the captured end. */
function u8(d: Uint8Array, i: number): number {
  return d[i] as number
}

/** The big-endian 16-bit word at `i`; callers have checked `i + 1` against the captured end. */
function u16(d: Uint8Array, i: number): number {
  return ((d[i] as number) << 8) | (d[i + 1] as number)
}

function malformed(out: DecodedPacket, reason: MalformedReason): void {
  out.outcome = OUTCOME_MALFORMED
  out.malformed = reason
}

/**
 * Decodes the frame at `data[offset .. offset+capturedLength)` of link type `linkType` into `out`.
 * `originalLength` is the frame's length on the wire (at least `capturedLength`).
 */
export function decodePacket(
  linkType: number,
  data: Uint8Array,
  offset: number,
  capturedLength: number,
  originalLength: number,
  out: DecodedPacket,
): void {
  out.outcome = OUTCOME_MALFORMED
  out.malformed = 'truncated-link'
  out.nonIp = 'other'
  out.ipVersion = 0
  out.buffer = data
  out.srcOffset = 0
  out.dstOffset = 0
  out.protocol = 0
  out.srcPort = -1
  out.dstPort = -1
  out.tcpFlags = -1
  out.icmpType = -1
  out.fragment = false
  out.firstFragment = true
  out.vlan = -1
  out.ipOffset = -1
  out.ipLength = 0
  out.transportOffset = -1
  out.payloadOffset = -1
  out.payloadLength = -1

  // reason: truncated-link — nonsensical position or length (negative, NaN, fractional offset):
  // there is no frame to read.
  if (!(offset >= 0) || !(capturedLength >= 0) || Math.floor(offset) !== offset) return
  let end = offset + capturedLength
  if (end > data.length) end = data.length
  // A record whose original length is below its captured length is corrupt; trust the bytes.
  let wireEnd = offset + capturedLength
  if (originalLength > capturedLength) wireEnd = offset + originalLength
  const d = data

  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      // reason: truncated-link — fewer than 14 bytes for destination, source and EtherType.
      if (offset + ETHERNET_HEADER > end) return
      const type = u16(d, offset + 12)
      decodeEthertype(d, type, offset + ETHERNET_HEADER, end, wireEnd, out)
      return
    }
    case LINKTYPE_LINUX_SLL: {
      // reason: truncated-link — fewer than the 16 bytes of a Linux cooked (SLL) header.
      if (offset + SLL_HEADER > end) return
      const type = u16(d, offset + 14)
      decodeEthertype(d, type, offset + SLL_HEADER, end, wireEnd, out)
      return
    }
    case LINKTYPE_LINUX_SLL2: {
      // reason: truncated-link — fewer than the 20 bytes of a Linux cooked v2 (SLL2) header.
      if (offset + SLL2_HEADER > end) return
      const type = u16(d, offset)
      decodeEthertype(d, type, offset + SLL2_HEADER, end, wireEnd, out)
      return
    }
    case LINKTYPE_RAW:
      // reason: truncated-link — an empty raw-IP frame: not even a version nibble.
      if (offset + 1 > end) return
      decodeRawIp(d, offset, end, wireEnd, out)
      return
    case LINKTYPE_IPV4:
      decodeIpv4(d, offset, end, wireEnd, out)
      return
    case LINKTYPE_IPV6:
      decodeIpv6(d, offset, end, wireEnd, out)
      return
    case LINKTYPE_NULL: {
      // reason: truncated-link — fewer than the 4 bytes of the loopback address family.
      if (offset + LOOPBACK_HEADER > end) return
      decodeFamily(d, nullFamily(d, offset), offset + LOOPBACK_HEADER, end, wireEnd, out)
      return
    }
    case LINKTYPE_LOOP: {
      // reason: truncated-link — fewer than the 4 bytes of the loopback address family.
      if (offset + LOOPBACK_HEADER > end) return
      decodeFamily(d, loopFamily(d, offset), offset + LOOPBACK_HEADER, end, wireEnd, out)
      return
    }
    default:
      // reason: unsupported-link-type — a pcap link type this decoder does not know.
      malformed(out, 'unsupported-link-type')
  }
}

/** Raw IP: the version nibble says which. */
function decodeRawIp(
  d: Uint8Array,
  offset: number,
  end: number,
  wireEnd: number,
  out: DecodedPacket,
): void {
  const version = u8(d, offset) >> 4
  if (version === 4) decodeIpv4(d, offset, end, wireEnd, out)
  else if (version === 6) decodeIpv6(d, offset, end, wireEnd, out)
  // reason: bad-ip-version — raw IP whose version nibble is neither 4 nor 6.
  else malformed(out, 'bad-ip-version')
}

/** LINKTYPE_NULL's family, in the capturing host's byte order: either is accepted. -1: neither. */
function nullFamily(d: Uint8Array, offset: number): number {
  const b0 = u8(d, offset)
  const b1 = u8(d, offset + 1)
  const b2 = u8(d, offset + 2)
  const b3 = u8(d, offset + 3)
  if (b1 === 0 && b2 === 0 && b3 === 0) return b0
  if (b0 === 0 && b1 === 0 && b2 === 0) return b3
  return -1
}

/** LINKTYPE_LOOP's family, always big-endian. -1: not a family. */
function loopFamily(d: Uint8Array, offset: number): number {
  const b0 = u8(d, offset)
  const b1 = u8(d, offset + 1)
  const b2 = u8(d, offset + 2)
  return b0 === 0 && b1 === 0 && b2 === 0 ? u8(d, offset + 3) : -1
}

/** Loopback (NULL/LOOP): the 4-byte address family says what follows. */
function decodeFamily(
  d: Uint8Array,
  family: number,
  p: number,
  end: number,
  wireEnd: number,
  out: DecodedPacket,
): void {
  if (family === AF_INET) decodeIpv4(d, p, end, wireEnd, out)
  else if (
    family === AF_INET6_BSD ||
    family === AF_INET6_FREEBSD ||
    family === AF_INET6_DARWIN ||
    family === AF_INET6_LINUX
  )
    decodeIpv6(d, p, end, wireEnd, out)
  else {
    out.outcome = OUTCOME_NON_IP
    out.nonIp = 'other'
  }
}

/**
 * From an EtherType (Ethernet, or the protocol field of SLL/SLL2) at payload position `p`:
 * VLAN tags, then ARP, IPv4, IPv6 or another protocol.
 */
function decodeEthertype(
  d: Uint8Array,
  type: number,
  p: number,
  end: number,
  wireEnd: number,
  out: DecodedPacket,
): void {
  let tags = 0
  while (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_OLD) {
    // reason: vlan-too-deep — a third VLAN tag (802.1Q/QinQ stacks deeper than 2 are refused).
    if (tags === MAX_VLAN_TAGS) {
      malformed(out, 'vlan-too-deep')
      return
    }
    // reason: truncated-link — a VLAN tag (TCI + EtherType, 4 bytes) cut short.
    if (p + 4 > end) {
      malformed(out, 'truncated-link')
      return
    }
    if (tags === 0) out.vlan = u16(d, p) & 0x0fff
    type = u16(d, p + 2)
    p += 4
    tags++
  }
  if (type === ETHERTYPE_IPV4) decodeIpv4(d, p, end, wireEnd, out)
  else if (type === ETHERTYPE_IPV6) decodeIpv6(d, p, end, wireEnd, out)
  else if (type === ETHERTYPE_ARP) {
    out.outcome = OUTCOME_NON_IP
    out.nonIp = 'arp'
  } else {
    out.outcome = OUTCOME_NON_IP
    out.nonIp = 'other'
  }
}

function decodeIpv4(
  d: Uint8Array,
  p: number,
  end: number,
  wireEnd: number,
  out: DecodedPacket,
): void {
  // reason: truncated-ipv4 — fewer than the 20 bytes of a minimal IPv4 header captured.
  if (p + IPV4_MIN_HEADER > end) {
    malformed(out, 'truncated-ipv4')
    return
  }
  const b0 = u8(d, p)
  // reason: bad-ip-version — the link said IPv4 but the version nibble is not 4.
  if (b0 >> 4 !== 4) {
    malformed(out, 'bad-ip-version')
    return
  }
  const headerLength = (b0 & 0x0f) << 2
  // reason: bad-ipv4-header-length — IHL below 5 (20 bytes).
  if (headerLength < IPV4_MIN_HEADER) {
    malformed(out, 'bad-ipv4-header-length')
    return
  }
  const totalLength = u16(d, p + 2)
  // reason: bad-ipv4-total-length — total length shorter than the header, or longer than what
  // the frame carried on the wire after the link header.
  if (totalLength < headerLength || p + totalLength > wireEnd) {
    malformed(out, 'bad-ipv4-total-length')
    return
  }
  // reason: truncated-ipv4 — a legal header with options, but its options were not captured.
  if (p + headerLength > end) {
    malformed(out, 'truncated-ipv4')
    return
  }

  out.ipVersion = 4
  out.ipOffset = p
  out.ipLength = totalLength
  out.srcOffset = p + 12
  out.dstOffset = p + 16
  const protocol = u8(d, p + 9)
  out.protocol = protocol
  const fragmentField = u16(d, p + 6)
  const fragmentOffset = fragmentField & 0x1fff
  if ((fragmentField & 0x2000) !== 0 || fragmentOffset !== 0) {
    out.fragment = true
    if (fragmentOffset !== 0) {
      // A later fragment: protocol known, no transport header.
      out.firstFragment = false
      out.outcome = OUTCOME_IP
      return
    }
  }
  decodeTransport(d, protocol, p + headerLength, end, p + totalLength, out)
}

function decodeIpv6(
  d: Uint8Array,
  p: number,
  end: number,
  wireEnd: number,
  out: DecodedPacket,
): void {
  // reason: truncated-ipv6 — fewer than the 40 bytes of the fixed IPv6 header captured.
  if (p + IPV6_HEADER > end) {
    malformed(out, 'truncated-ipv6')
    return
  }
  // reason: bad-ip-version — the link said IPv6 but the version nibble is not 6.
  if (u8(d, p) >> 4 !== 6) {
    malformed(out, 'bad-ip-version')
    return
  }
  let next = u8(d, p + 6)
  const payloadEnd = ipv6PayloadEnd(d, p, end, wireEnd)
  // reason: bad-ipv6-payload-length — the payload length runs past the frame's original length.
  if (payloadEnd > wireEnd) {
    malformed(out, 'bad-ipv6-payload-length')
    return
  }

  out.ipVersion = 6
  out.ipOffset = p
  out.ipLength = payloadEnd - p
  out.srcOffset = p + 8
  out.dstOffset = p + 24

  let q = p + IPV6_HEADER
  let headers = 0
  for (;;) {
    const length = extensionLength(d, next, q, end, payloadEnd)
    if (length === NOT_AN_EXTENSION) break
    // reason: ipv6-extension-chain — next header and length bytes not within the payload and
    // the captured bytes (TRUNCATED_EXTENSION); more than MAX_IPV6_EXTENSION_HEADERS headers (a
    // looping or padded chain), or a header that runs past the payload or the captured bytes.
    if (
      length === TRUNCATED_EXTENSION ||
      ++headers > MAX_IPV6_EXTENSION_HEADERS ||
      q + length > payloadEnd ||
      q + length > end
    ) {
      malformed(out, 'ipv6-extension-chain')
      return
    }
    if (next === IPV6_FRAGMENT && laterIpv6Fragment(d, q, out)) return
    next = u8(d, q)
    q += length
  }
  out.protocol = next
  decodeTransport(d, next, q, end, payloadEnd, out)
}

/** Where the IPv6 payload ends per its length field; a jumbogram's runs to the frame's end. */
function ipv6PayloadEnd(d: Uint8Array, p: number, end: number, wireEnd: number): number {
  const payloadLength = u16(d, p + 4)
  if (
    payloadLength === 0 &&
    u8(d, p + 6) === IPV6_HOP_BY_HOP &&
    p + IPV6_HEADER + 3 <= end &&
    d[p + IPV6_HEADER + 2] === IPV6_OPTION_JUMBO
  ) {
    // A jumbogram (RFC 2675; Linux BIG TCP): the payload runs to the end of the frame.
    return wireEnd
  }
  return p + IPV6_HEADER + payloadLength
}

/** extensionLength: `next` names no extension header, the transport header comes. */
const NOT_AN_EXTENSION = -1
/** extensionLength: the header's next-header and length bytes are not there to read. */
const TRUNCATED_EXTENSION = -2

/** The length of the extension header `next` at `q`, or one of the two values above. */
function extensionLength(
  d: Uint8Array,
  next: number,
  q: number,
  end: number,
  payloadEnd: number,
): number {
  switch (next) {
    case IPV6_HOP_BY_HOP:
    case IPV6_ROUTING:
    case IPV6_DESTINATION:
    case IPV6_MOBILITY:
    case IPV6_HIP:
    case IPV6_SHIM6:
      if (q + 2 > end || q + 2 > payloadEnd) return TRUNCATED_EXTENSION
      return (u8(d, q + 1) + 1) << 3
    case IPV6_AH:
      if (q + 2 > end || q + 2 > payloadEnd) return TRUNCATED_EXTENSION
      return (u8(d, q + 1) + 2) << 2
    case IPV6_FRAGMENT:
      return 8
    default:
      return NOT_AN_EXTENSION
  }
}

/** Marks the packet a fragment; true (and done) when it is a later one, without transport. */
function laterIpv6Fragment(d: Uint8Array, q: number, out: DecodedPacket): boolean {
  out.fragment = true
  if (u16(d, q + 2) >> 3 === 0) return false
  // A later fragment: the fragment header names the protocol; no transport header.
  out.firstFragment = false
  out.protocol = u8(d, q)
  out.outcome = OUTCOME_IP
  return true
}

/**
 * The transport header at `p`; `ipEnd` is where the IP packet ends per its length fields.
 * ESP, no-next-header and other protocols have no ports.
 */
function decodeTransport(
  d: Uint8Array,
  protocol: number,
  p: number,
  end: number,
  ipEnd: number,
  out: DecodedPacket,
): void {
  out.transportOffset = p
  const ipPayload = ipEnd - p
  if (protocol === PROTO_TCP) {
    // reason: truncated-tcp — fewer than 14 bytes captured (ports, sequence, ack, offset, flags).
    if (p + TCP_MIN_CAPTURED > end) {
      malformed(out, 'truncated-tcp')
      return
    }
    const headerLength = (u8(d, p + 12) >> 4) << 2
    // reason: bad-tcp-data-offset — data offset below 5, or a header longer than the IP payload
    // (judged from the IP length fields, not the captured bytes: snaplen may cut options).
    if (headerLength < TCP_MIN_HEADER || headerLength > ipPayload) {
      malformed(out, 'bad-tcp-data-offset')
      return
    }
    out.srcPort = u16(d, p)
    out.dstPort = u16(d, p + 2)
    out.tcpFlags = u8(d, p + 13)
    out.payloadOffset = p + headerLength
    out.payloadLength = ipPayload - headerLength
  } else if (protocol === PROTO_UDP) {
    // reason: truncated-udp — fewer than the 8 bytes of a UDP header captured.
    if (p + UDP_HEADER > end) {
      malformed(out, 'truncated-udp')
      return
    }
    const udpLength = u16(d, p + 4)
    // reason: bad-udp-length — UDP length below 8, an IP payload too short for a UDP header, or
    // (unfragmented) a UDP length past the IP payload. A first fragment legitimately carries
    // only part of the datagram that the UDP length describes.
    if (
      udpLength < UDP_HEADER ||
      ipPayload < UDP_HEADER ||
      (udpLength > ipPayload && !out.fragment)
    ) {
      malformed(out, 'bad-udp-length')
      return
    }
    out.srcPort = u16(d, p)
    out.dstPort = u16(d, p + 2)
    out.payloadOffset = p + UDP_HEADER
    out.payloadLength = Math.min(udpLength, ipPayload) - UDP_HEADER
  } else if (protocol === PROTO_ICMP || protocol === PROTO_ICMPV6) {
    // reason: truncated-icmp — no ICMP type byte captured, or an empty IP payload.
    if (p + 1 > end || ipPayload < 1) {
      malformed(out, 'truncated-icmp')
      return
    }
    out.icmpType = u8(d, p)
  }
  out.outcome = OUTCOME_IP
}
