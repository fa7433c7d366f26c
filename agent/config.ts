/**
 * The agent's settings. An empty file is valid: defaults enroll against a collector on this host.
 * Each setting's description is its documentation: docs/configuration.md is generated from them
 * (`npm run docs:config`).
 */
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
  interface: z
    .string()
    .min(1)
    .default('auto')
    .describe(
      "`auto` (the default route's interface), an interface name, or `none` to capture nothing.",
    ),
  mode: z
    .enum(['host', 'gateway'])
    .default('host')
    .describe(
      "`host`: the agent counts its own host's traffic, directions relative to the host; `gateway`: a mirror port of a delegation LAN, directions relative to the site.",
    ),
  site_prefixes: z
    .array(cidr)
    .default([])
    .describe(
      "The site's address ranges (`[10.20.0.0/16, 2001:db8:20::/48]`). Empty in host mode: the subnets of the host's interfaces; in gateway mode there is no such default, so set it.",
    ),
  organisation_prefixes: z
    .array(cidr)
    .default(DEFAULT_ORGANISATION_PREFIXES)
    .describe("The organisation's ranges: peers there are `organisation`, elsewhere `internet`."),
  flow_idle_seconds: z
    .number()
    .int()
    .min(1)
    .default(60)
    .describe('A flow not seen for this long counts as new when it is seen again.'),
  max_flows: z
    .number()
    .int()
    .min(1000)
    .default(1_000_000)
    .describe('The bound of the flow table (conversations tracked at once).'),
  tcpdump_path: z.string().min(1).default('tcpdump').describe('The tcpdump binary.'),
})
export type CaptureConfig = z.output<typeof CaptureConfig>

export const AgentConfig = z.strictObject({
  collector: z
    .strictObject({
      url: httpUrl()
        .default('http://127.0.0.1:8080')
        .describe(
          'Where to send; `http://` or `https://` (`127.0.0.1:8080` alone is refused: no scheme).',
        ),
      timeout_seconds: z
        .number()
        .positive()
        .default(15)
        .describe('How long one request to the collector may take.'),
    })
    .prefault({})
    .describe('The collector this agent sends to.'),
  enrollment: z
    .strictObject({
      token: z.string().optional().describe("The site's enrollment token (`tly_e_...`)."),
      token_file: z
        .string()
        .optional()
        .describe('A file holding the enrollment token instead (what `install.sh` writes).'),
      hostname: z
        .string()
        .optional()
        .describe('The name this host is enrolled under; the OS host name by default.'),
    })
    .prefault({})
    .describe("Used once, at the first start, to obtain the agent's own credential."),
  state_dir: z
    .string()
    .min(1)
    .default('./tally-agent')
    .describe(
      'Credential, instance secret, sequence counter and spool. Keep it on persistent disk.',
    ),
  interval_seconds: z
    .number()
    .int()
    .min(1)
    .max(3600)
    .optional()
    .describe(
      "Seconds between batches, aligned to the clock. Unset: the collector's value from enrollment (its `enrollment.interval_seconds`, 10 by default).",
    ),
  inventory_seconds: z
    .number()
    .int()
    .min(1)
    .default(3600)
    .describe('Send the host inventory every this many seconds (and always in the first batch).'),
  capture: CaptureConfig.prefault({}).describe(
    'Packet capture for site usage (tier A) and traffic totals (tier T).',
  ),
  spool: z
    .strictObject({
      max_batches: z
        .number()
        .int()
        .positive()
        .default(8640)
        .describe('Spool bound in batches; beyond it the oldest is dropped (and counted).'),
      max_bytes: z
        .number()
        .int()
        .positive()
        .default(64 * MiB)
        .describe('Spool bound in bytes; beyond it the oldest is dropped (and counted).'),
      max_age_days: z
        .number()
        .positive()
        .max(3650)
        .default(7)
        .describe(
          'A batch not delivered within this many days is dropped (and counted): the collector refuses batches older than its `ingest.max_batch_age_hours` (14 days by default), so keep this below it.',
        ),
      memory_batches: z
        .number()
        .int()
        .min(1)
        .max(100_000)
        .default(60)
        .describe(
          'Batches held in memory while the state directory is full or read-only; beyond it the oldest go.',
        ),
    })
    .prefault({})
    .describe("Batches waiting for the collector's acknowledgement, kept on disk in `state_dir`."),
  log_level: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('The least severe level written to the log.'),
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
