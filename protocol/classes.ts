/**
 * The closed classes of tier A, without the schema library, so the agent's packet path can use
 * them without loading zod. protocol/v1.ts builds its schemas from these.
 */

/** Direction of a packet relative to the host (host mode) or to the site (gateway mode). */
export const DIRECTIONS = ['inbound', 'outbound', 'internal', 'transit'] as const
export const TRANSPORTS = ['tcp', 'udp', 'icmp', 'icmpv6', 'other'] as const
/** The class of the other end: where traffic goes, never who. */
export const PEER_CLASSES = [
  'same-site',
  'organisation',
  'internet',
  'multicast-broadcast',
] as const
