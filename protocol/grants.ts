/**
 * Grants and tier I records: what an approved case lets an agent capture, and what it sends.
 *
 * A grant is a compact JWS (EdDSA, Ed25519) signed by the collector with the key the agent pinned
 * at enrollment. It names the case, the agent, the subject's addresses (gateway mode), the
 * categories and the window. The agent acts on nothing else.
 */
import { z } from 'zod'

export const CATEGORIES = ['flows', 'dns', 'web', 'packets'] as const
export type Category = (typeof CATEGORIES)[number]

export const GRANT_ISSUER = 'tally-collector'
export const GRANT_AUDIENCE = 'tally-agent'
export const GRANT_TYPE = 'tally-grant+jwt'

const address = z.union([z.ipv4(), z.ipv6()])
const epochMs = z.number().int().min(0)

/** The claims of a grant, beside the registered ones (iss, aud, jti, nbf, exp, iat). */
export const GrantClaims = z.strictObject({
  case_id: z.string().regex(/^c-[a-z0-9]{16}$/),
  /** Which agent runs the capture. */
  agent_id: z.string(),
  /** Host mode: empty (the host itself). Gateway mode: the subject's addresses. */
  addresses: z.array(address).max(64),
  categories: z.array(z.enum(CATEGORIES)).min(1),
  window: z.strictObject({ start: epochMs, end: epochMs }),
})
export type GrantClaims = z.infer<typeof GrantClaims>

/** GET /v1/agents/grants: the grants an agent must run now; anything not listed must stop. */
export const AgentGrants = z.strictObject({
  grants: z.array(z.strictObject({ grant_id: z.string(), token: z.string() })),
})
export type AgentGrants = z.infer<typeof AgentGrants>

export const FlowRecord = z.strictObject({
  start: epochMs,
  end: epochMs,
  ip_version: z.union([z.literal(4), z.literal(6)]),
  protocol: z.number().int().min(0).max(255),
  src: address,
  dst: address,
  src_port: z.number().int().min(0).max(65535),
  dst_port: z.number().int().min(0).max(65535),
  bytes: z.number().int().min(0),
  packets: z.number().int().min(0),
  /** OR of the TCP flags seen; 0 for other protocols. */
  tcp_flags: z.number().int().min(0).max(255),
  /** Community ID v1 (seed 0) of the flow. */
  community_id: z.string().max(64),
})
export type FlowRecord = z.infer<typeof FlowRecord>

export const DnsRecord = z.strictObject({
  ts: epochMs,
  client: address,
  server: address,
  query: z.string().max(255),
  qtype: z.string().max(16),
  /** Response code name (NOERROR, NXDOMAIN, ...), or '' for a query seen without its answer. */
  rcode: z.string().max(16),
})
export type DnsRecord = z.infer<typeof DnsRecord>

export const WebRecord = z.strictObject({
  ts: epochMs,
  client: address,
  server: address,
  server_port: z.number().int().min(0).max(65535),
  kind: z.enum(['tls-sni', 'http-host']),
  name: z.string().max(255),
})
export type WebRecord = z.infer<typeof WebRecord>

export const PcapSegment = z.strictObject({
  /** Position of this segment in the grant's capture, from 0. */
  index: z.number().int().min(0),
  first: epochMs,
  last: epochMs,
  packets: z.number().int().min(0),
  /** A classic pcap file (header and records), base64. */
  data: z.string().max(16 * 1024 * 1024),
})
export type PcapSegment = z.infer<typeof PcapSegment>

/** POST /v1/restricted/ingest: one interval of tier I records under one grant. */
export const RestrictedBatch = z.strictObject({
  version: z.literal(1),
  agent_id: z.string(),
  grant_id: z.string(),
  seq: z.number().int().min(1),
  flows: z.array(FlowRecord).max(100_000).default([]),
  dns: z.array(DnsRecord).max(100_000).default([]),
  web: z.array(WebRecord).max(100_000).default([]),
  pcap: z.array(PcapSegment).max(64).default([]),
})
export type RestrictedBatch = z.infer<typeof RestrictedBatch>
