/**
 * Wire format v1: what an agent sends to the collector and what it gets back.
 *
 * Every object is strict: a field the schema does not name is an error, so a body cannot smuggle
 * a value past validation (a host or site name, an address) by inventing a field for it. The
 * agent's host and site are never on the wire after enrollment; the collector takes them from
 * the credential.
 */
import { z } from 'zod'
import { DIRECTIONS, PEER_CLASSES, TRANSPORTS } from './classes.ts'
import { AgentGrants } from './grants.ts'
import { SERVICE_NAMES } from './services.ts'

export { DIRECTIONS, PEER_CLASSES, TRANSPORTS }

export const PROTOCOL_VERSION = 1

/** Metric names, after the OpenTelemetry system semantic conventions where one exists. */
export const HOST_METRICS = [
  'system.cpu.utilization',
  'system.cpu.load_average.1m',
  'system.cpu.load_average.5m',
  'system.cpu.load_average.15m',
  'system.memory.usage',
  'system.memory.limit',
  'system.memory.utilization',
  'system.filesystem.usage',
  'system.filesystem.limit',
  'system.filesystem.utilization',
  'system.network.io',
  'system.network.packet.count',
  'system.network.errors',
  'system.network.packet.dropped',
  'system.network.connection.count',
  'system.uptime',
  'tally.agent.spool.depth',
  'tally.agent.spool.bytes',
  'tally.agent.batches.dropped',
  'tally.agent.spool.corrupted',
  'tally.agent.send.failures',
  'tally.agent.batches.rejected',
  'tally.agent.spool.in_memory',
  'tally.agent.spool.disk_full',
  'tally.agent.register.inconsistent',
  'tally.traffic.bytes',
  'tally.traffic.packets',
  'tally.capture.packets',
  'tally.capture.malformed',
  'tally.capture.running',
] as const
export type HostMetricName = (typeof HOST_METRICS)[number]

export const CPU_MODES = ['user', 'system', 'nice', 'idle', 'iowait', 'irq', 'steal'] as const
export const MEMORY_STATES = ['used', 'free', 'buffers', 'cached', 'available'] as const
export const FILESYSTEM_STATES = ['used', 'free', 'reserved'] as const
export const IO_DIRECTIONS = ['receive', 'transmit'] as const
/** Linux TCP states, named as the OpenTelemetry `network.connection.state` attribute names them. */
export const TCP_STATES = [
  'established',
  'syn_sent',
  'syn_recv',
  'fin_wait_1',
  'fin_wait_2',
  'time_wait',
  'close',
  'close_wait',
  'last_ack',
  'listen',
  'closing',
] as const

/** What became of captured packets, for the capture's health. */
export const CAPTURE_OUTCOMES = [
  'received',
  'dropped_kernel',
  'dropped_interface',
  'decoded',
  'non_ip',
  'malformed',
  'unsupported',
] as const

/** A name the host gives one of its own devices or mount points; bounded, printable. */
const localName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x20-\x7e]+$/, 'must be printable ASCII')

/**
 * The attributes a host sample may carry. Closed: counts of connections carry their state, never
 * an endpoint, because there is no attribute an endpoint could go into.
 */
export const SampleAttributes = z.strictObject({
  'cpu.mode': z.enum(CPU_MODES).optional(),
  'system.memory.state': z.enum(MEMORY_STATES).optional(),
  'system.device': localName.optional(),
  'system.filesystem.mountpoint': localName.optional(),
  'system.filesystem.type': localName.optional(),
  'system.filesystem.state': z.enum(FILESYSTEM_STATES).optional(),
  'network.interface.name': localName.optional(),
  'network.io.direction': z.enum(IO_DIRECTIONS).optional(),
  'network.transport': z.enum(TRANSPORTS).optional(),
  'network.connection.state': z.enum(TCP_STATES).optional(),
  'tally.direction': z.enum(DIRECTIONS).optional(),
  'tally.capture.outcome': z.enum(CAPTURE_OUTCOMES).optional(),
  /** A decoder's reason code: lower case words and dashes, so never an address. */
  'tally.malformed.reason': z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,39}$/)
    .optional(),
})
export type SampleAttributes = z.infer<typeof SampleAttributes>

/** One value of one tier T metric over the batch's interval. */
export const HostSample = z.strictObject({
  metric: z.enum(HOST_METRICS),
  value: z.number(),
  attributes: SampleAttributes.default({}),
})
export type HostSample = z.infer<typeof HostSample>

const address = z.union([z.ipv4(), z.ipv6()])

/** Host inventory, tier T: the host's own description. Its own addresses are allowed (8.1). */
export const HostInventory = z.strictObject({
  os: z.strictObject({
    platform: z.string().max(64),
    distro: z.string().max(128),
    release: z.string().max(128),
    kernel: z.string().max(128),
    arch: z.string().max(32),
  }),
  cpu: z.strictObject({ model: z.string().max(256), cores: z.number().int().min(0).max(65536) }),
  memory_bytes: z.number().int().min(0),
  interfaces: z
    .array(
      z.strictObject({
        name: localName,
        mac: z.string().max(32),
        addresses: z.array(address).max(64),
        speed_mbps: z.number().min(0).nullable(),
        up: z.boolean(),
      }),
    )
    .max(256),
})
export type HostInventory = z.infer<typeof HostInventory>

/**
 * Tier A: one host's contribution to its site's usage over the interval. Every field is a closed
 * class or a count; there is no field an address, a port outside the service table or a name
 * could go into.
 */
export const UsageContribution = z.strictObject({
  direction: z.enum(DIRECTIONS),
  ip_version: z.union([z.literal(4), z.literal(6)]),
  transport: z.enum(TRANSPORTS),
  service: z
    .string()
    .refine((s) => SERVICE_NAMES.includes(s), 'must be a service from the service table'),
  peer_class: z.enum(PEER_CLASSES),
  bytes: z.number().int().min(0),
  packets: z.number().int().min(0),
  flows: z.number().int().min(0),
})
export type UsageContribution = z.infer<typeof UsageContribution>

const epochMs = z.number().int().min(0).max(8_640_000_000_000)

/**
 * One interval's worth of tier T data from one agent. `(agent_id, seq)` identifies it. Whether
 * its interval is plausible (ends after it starts, not too old, not in the future, not too long)
 * is checked against the collector's clock by `implausibleTime`, with its own answer (422).
 */
export const HostBatch = z.strictObject({
  version: z.literal(PROTOCOL_VERSION),
  agent_id: z.string().regex(/^[a-z0-9-]{1,64}$/, 'must be an agent id issued at enrollment'),
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  agent_version: z.string().min(1).max(64),
  interval: z.strictObject({ start: epochMs, end: epochMs }),
  samples: z.array(HostSample).max(20_000),
  usage: z.array(UsageContribution).max(10_000).optional(),
  inventory: HostInventory.optional(),
})
export type HostBatch = z.infer<typeof HostBatch>

/**
 * The times a collector accepts a batch for, relative to its own clock. A spooled batch after a
 * long outage is legitimately old, so the age limit must stay above the agent spool's; the
 * span bounds `interval_ms` (stored as UInt32 milliseconds, which would wrap after 49.7 days).
 */
export interface TimeWindow {
  /** The oldest start accepted, as an age. */
  maxAgeMs: number
  /** How far past the collector's clock an interval may end (the hosts' clocks drift). */
  maxSkewMs: number
  /** The longest interval one batch may cover. */
  maxSpanMs: number
}

/** The longest span any window may allow: interval_ms is UInt32 milliseconds. */
export const MAX_SPAN_MS = 0xffff_ffff

export const DEFAULT_TIME_WINDOW: TimeWindow = {
  maxAgeMs: 336 * 3_600_000,
  maxSkewMs: 300_000,
  maxSpanMs: 86_400_000,
}

const iso = (ms: number): string => new Date(ms).toISOString()

function duration(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000} h`
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}

/** Why a batch's interval is implausible at `now`, in one sentence; undefined when it is not. */
export function implausibleTime(
  interval: { start: number; end: number },
  now: number,
  window: TimeWindow = DEFAULT_TIME_WINDOW,
): string | undefined {
  const { start, end } = interval
  if (end <= start) {
    return `interval ends ${iso(end)}, ${end === start ? 'when' : 'before'} it starts (${iso(start)}); it must end after it starts`
  }
  const span = end - start
  if (span > Math.min(window.maxSpanMs, MAX_SPAN_MS)) {
    return `interval spans ${duration(span)} (${iso(start)} to ${iso(end)}), more than the ${duration(window.maxSpanMs)} one batch may cover`
  }
  if (start < now - window.maxAgeMs) {
    return `interval starts ${iso(start)}, more than ${duration(window.maxAgeMs)} before the collector's clock (${iso(now)})`
  }
  if (end > now + window.maxSkewMs) {
    return `interval ends ${iso(end)}, more than ${duration(window.maxSkewMs)} after the collector's clock (${iso(now)})`
  }
  return undefined
}

/** The collector's answer to an accepted batch; the agent deletes it from its spool on this. */
export const IngestAck = z.strictObject({
  agent_id: z.string(),
  seq: z.number().int(),
  status: z.enum(['stored', 'duplicate']),
})
export type IngestAck = z.infer<typeof IngestAck>

/** Every 4xx and 5xx carries this shape: a stable code and a sentence for the operator. */
export const ErrorBody = z.strictObject({
  error: z.string(),
  message: z.string(),
  issues: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
})
export type ErrorBody = z.infer<typeof ErrorBody>

/**
 * 409 from POST /v1/ingest: a batch with this `(agent_id, seq)` is stored with other content, so
 * the agent's numbering went backwards (a lost or damaged counter). Nothing was written or
 * acknowledged; the agent numbers its unacknowledged batches from `last_seq + 1` and sends them
 * again.
 */
export const SeqConflict = ErrorBody.extend({
  error: z.literal('seq_conflict'),
  /** The highest seq the collector has stored for this agent. */
  last_seq: z.number().int().min(0),
})
export type SeqConflict = z.infer<typeof SeqConflict>

/**
 * 422 from POST /v1/ingest: the batch's interval is implausible by the collector's clock (see
 * `implausibleTime`). Sending the same batch again cannot succeed.
 */
export const ImplausibleTime = ErrorBody.extend({ error: z.literal('implausible_time') })
export type ImplausibleTime = z.infer<typeof ImplausibleTime>

/**
 * The secret an agent makes once, before its first enrollment attempt, and keeps in its state
 * directory: 32 random bytes or more, base64url. Sent again with the same token, it gets the same
 * enrollment back (with a new credential), so a lost answer does not burn the token.
 */
export const InstanceSecret = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43,128}$/, 'must be 32 to 96 random bytes, base64url')

export const EnrollRequest = z.strictObject({
  hostname: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, 'must be a host name'),
  agent_version: z.string().min(1).max(64),
  /** The agent's instance secret; without it a lost answer cannot be asked for again. */
  instance: InstanceSecret.optional(),
})
export type EnrollRequest = z.infer<typeof EnrollRequest>

export const EnrollResponse = z.strictObject({
  agent_id: z.string(),
  host: z.string(),
  site: z.string(),
  /** Bearer credential for every later call. Shown once; the collector keeps only its hash. */
  credential: z.string(),
  /** Public key (JWK, Ed25519) the agent pins to verify grants. */
  grant_public_key: z.record(z.string(), z.string()),
  interval_seconds: z.number().int().positive(),
})
export type EnrollResponse = z.infer<typeof EnrollResponse>

/**
 * ITSD's register head as agents see it with their grants poll: they keep the latest one and
 * demand that each next one extends it. Never OIOS's register.
 */
export const RegisterHead = z.strictObject({
  register: z.literal('itsd'),
  size: z.number().int().min(0),
  /** RFC 6962 Merkle root, hex. */
  root: z.string().regex(/^[0-9a-f]{64}$/),
  ts: z.string().max(64),
  /** base64url Ed25519 signature over canonical {register, size, root, ts}. */
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
})
export type RegisterHead = z.infer<typeof RegisterHead>

export const RegisterHeadAnswer = z.strictObject({
  head: RegisterHead,
  /** RFC 6962 PROOF(register_size, head.size), hex; empty when the agent kept none (size 0). */
  proof: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(128),
  /** The register's public key (JWK); an agent that has none pinned pins it (trust on first use). */
  public_key: z.record(z.string(), z.string()),
})
export type RegisterHeadAnswer = z.infer<typeof RegisterHeadAnswer>

/** The grants poll's answer to an agent that sent `register_size`. */
export const AgentGrantsPoll = AgentGrants.extend({ register: RegisterHeadAnswer.optional() })
export type AgentGrantsPoll = z.infer<typeof AgentGrantsPoll>
