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

/** One interval's worth of tier T data from one agent. `(agent_id, seq)` identifies it. */
export const HostBatch = z
  .strictObject({
    version: z.literal(PROTOCOL_VERSION),
    agent_id: z.string().regex(/^[a-z0-9-]{1,64}$/, 'must be an agent id issued at enrollment'),
    seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    agent_version: z.string().min(1).max(64),
    interval: z.strictObject({ start: epochMs, end: epochMs }),
    samples: z.array(HostSample).max(20_000),
    usage: z.array(UsageContribution).max(10_000).optional(),
    inventory: HostInventory.optional(),
  })
  .refine((b) => b.interval.end > b.interval.start, {
    message: 'interval.end must be after interval.start',
    path: ['interval', 'end'],
  })
export type HostBatch = z.infer<typeof HostBatch>

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

export const EnrollRequest = z.strictObject({
  hostname: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, 'must be a host name'),
  agent_version: z.string().min(1).max(64),
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
