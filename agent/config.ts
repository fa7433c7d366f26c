/** The agent's settings. An empty file is valid: defaults enroll against a collector on this host. */
import { z } from 'zod'
import { httpUrl, loadConfig } from '../common/config.ts'
import { DEFAULT_ORGANISATION_PREFIXES, parsePrefix } from './aggregate/prefixes.ts'

const MiB = 1024 * 1024

const cidr = z.string().refine(
  (text) => {
    try {
      parsePrefix(text)
      return true
    } catch {
      return false
    }
  },
  { message: 'must be an address prefix such as 10.20.0.0/16 or 2001:db8::/48' },
)

/** Packet capture for site usage (tier A) and traffic totals (tier T). */
export const CaptureConfig = z.strictObject({
  /** 'auto' (the default route's interface), an interface name, or 'none' to capture nothing. */
  interface: z.string().min(1).default('auto'),
  /** host: the agent counts its own host's traffic; gateway: a mirror port of a delegation LAN. */
  mode: z.enum(['host', 'gateway']).default('host'),
  /** The site's address ranges. Host mode defaults to the subnets of the host's interfaces. */
  site_prefixes: z.array(cidr).default([]),
  /** The organisation's ranges: peers there are `organisation`, elsewhere `internet`. */
  organisation_prefixes: z.array(cidr).default(DEFAULT_ORGANISATION_PREFIXES),
  /** A flow not seen for this long counts as new when it is seen again. */
  flow_idle_seconds: z.number().int().min(1).default(60),
  max_flows: z.number().int().min(1000).default(1_000_000),
  tcpdump_path: z.string().min(1).default('tcpdump'),
})
export type CaptureConfig = z.output<typeof CaptureConfig>

export const AgentConfig = z.strictObject({
  collector: z
    .strictObject({
      url: httpUrl().default('http://127.0.0.1:8080'),
      timeout_seconds: z.number().positive().default(15),
    })
    .prefault({}),
  /** Used once, at the first start, to obtain the agent's own credential. */
  enrollment: z
    .strictObject({
      token: z.string().optional(),
      token_file: z.string().optional(),
      /** The name this host is enrolled under; the OS host name by default. */
      hostname: z.string().optional(),
    })
    .prefault({}),
  /** Credential, sequence counter and spool. Keep it on persistent disk. */
  state_dir: z.string().min(1).default('./tally-agent'),
  /** Seconds between batches; the collector's value from enrollment wins when this is unset. */
  interval_seconds: z.number().int().min(1).max(3600).optional(),
  /** Send the host inventory every this many seconds (and always in the first batch). */
  inventory_seconds: z.number().int().min(1).default(3600),
  capture: CaptureConfig.prefault({}),
  spool: z
    .strictObject({
      max_batches: z.number().int().positive().default(8640),
      max_bytes: z
        .number()
        .int()
        .positive()
        .default(64 * MiB),
      /** A batch not delivered within this many days is dropped (and counted): the collector
       * refuses batches older than its own limit (14 days by default), so keep this below it. */
      max_age_days: z.number().positive().max(3650).default(7),
      /** Batches held in memory while the state dir is full or read-only; the oldest go beyond. */
      memory_batches: z.number().int().min(1).max(100_000).default(60),
    })
    .prefault({}),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})
export type AgentConfig = z.output<typeof AgentConfig>

export function loadAgentConfig(file?: string, env?: NodeJS.ProcessEnv): AgentConfig {
  return loadConfig(AgentConfig, {
    file,
    env,
    extraLeaves: [
      'enrollment.token',
      'enrollment.token_file',
      'enrollment.hostname',
      'interval_seconds',
    ],
  })
}
