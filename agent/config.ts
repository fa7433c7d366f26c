/** The agent's settings. An empty file is valid: defaults enroll against a collector on this host. */
import { z } from 'zod'
import { loadConfig } from '../common/config.ts'

const MiB = 1024 * 1024

export const AgentConfig = z.strictObject({
  collector: z
    .strictObject({
      url: z.url().default('http://127.0.0.1:8080'),
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
  spool: z
    .strictObject({
      max_batches: z.number().int().positive().default(8640),
      max_bytes: z
        .number()
        .int()
        .positive()
        .default(64 * MiB),
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
