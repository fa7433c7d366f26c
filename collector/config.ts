/** The collector's settings, with defaults that run on one machine with the embedded engine. */
import { z } from 'zod'
import { httpUrl, loadConfig } from '../common/config.ts'

const MiB = 1024 * 1024

export const CollectorConfig = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
    })
    .prefault({}),
  /** Embedded engine data and the admin token file live here (and, unset elsewhere, the keys). */
  data_dir: z.string().min(1).default('./data'),
  clickhouse: z
    .strictObject({
      /** A ClickHouse server (http://host:8123). Unset: the embedded engine in data_dir. */
      url: httpUrl().optional(),
      username: z.string().default('default'),
      password: z.string().default(''),
      /**
       * The cluster name when the server is a cluster laid out by `tally collector migrate
       * --cluster NAME`: purges and the usage views are then run ON CLUSTER.
       */
      cluster: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a cluster name from remote_servers')
        .optional(),
    })
    .prefault({}),
  ingest: z
    .strictObject({
      max_body_bytes: z
        .number()
        .int()
        .positive()
        .default(1 * MiB),
      max_decompressed_bytes: z
        .number()
        .int()
        .positive()
        .default(16 * MiB),
      retry_after_seconds: z.number().int().positive().default(5),
      /**
       * The time window a batch must fall in (else 422 implausible_time). Oldest accepted start,
       * as an age: above the agent spool's age limit, so a batch spooled through a long outage
       * still lands. Default 14 days.
       */
      max_batch_age_hours: z.number().positive().default(336),
      /** How far past the collector's clock a batch may end: the hosts' clocks drift. */
      max_clock_skew_seconds: z.number().int().min(0).default(300),
      /**
       * The longest interval one batch may cover (an agent paused or suspended sends one long
       * batch when it wakes). At most 4294967 s: interval_ms is stored as UInt32 milliseconds.
       */
      max_interval_seconds: z.number().int().min(1).max(4_294_967).default(86_400),
      /**
       * Group commit (collector/store/group-commit.ts): the first batch of a group waits this
       * long for others, and a group holds at most group_max_batches; one insert per table per
       * group. Beyond queue_max_batches waiting, a batch is refused at once (503, Retry-After).
       */
      group_window_ms: z.number().int().min(0).max(1000).default(20),
      group_max_batches: z.number().int().min(1).max(100_000).default(1000),
      queue_max_batches: z.number().int().min(1).max(1_000_000).default(4000),
    })
    .prefault({}),
  restricted: z
    .strictObject({
      max_body_bytes: z
        .number()
        .int()
        .positive()
        .default(128 * MiB)
        .describe("Cap on a tier I batch's compressed body (413 beyond it)."),
      max_decompressed_bytes: z
        .number()
        .int()
        .positive()
        .default(160 * MiB)
        .describe('Cap while inflating a tier I batch (413 beyond it; stops gzip bombs).'),
    })
    .prefault({})
    .describe(
      "Accepting the agents' tier I batches (`POST /v1/restricted/ingest`). They carry packet segments (up to 64 MiB of packets per interval from an agent's recorder, base64 in JSON), so their caps are wider than those of `ingest`.",
    ),
  enrollment: z
    .strictObject({
      token_ttl_hours: z.number().positive().default(24),
      token_max_uses: z.number().int().positive().default(1),
      /** What enrolled agents are told; they align their intervals to it. */
      interval_seconds: z.number().int().min(1).max(3600).default(10),
    })
    .prefault({}),
  usage: z
    .strictObject({
      /** A site usage cell is shown only when at least k hosts contributed to it. */
      k: z.number().int().min(1).default(5),
      /**
       * A minute of site usage is released (judged against k, then shown) this long after it
       * ends; usage from a batch whose interval started longer ago than this is not counted.
       */
      release_after_seconds: z.number().int().min(10).max(3600).default(600),
    })
    .prefault({}),
  cases: z
    .strictObject({
      /** The longest a grant may run; an extension is a new approval within it (8.5f). */
      max_grant_days: z.number().positive().default(30),
      /** Technical cases (8.2) run at most this long. */
      technical_max_hours: z.number().positive().max(72).default(72),
      /** After a verbal emergency request (8.4b), the written one is due within this time. */
      emergency_written_hours: z.number().positive().default(24),
      /**
       * The master key that wraps every case key (tier I at rest). Unset: `case-master.key` in
       * data_dir, for a single-machine demo only, since whoever holds the data directory then
       * holds the key too. On a real site a path outside data_dir (another volume, a secret).
       */
      master_key_file: z.string().min(1).optional(),
      /** Where notices go. Neither set: only in-person notices can be recorded. */
      outbox: z
        .strictObject({
          webhook_url: httpUrl().optional(),
          smtp: z
            .strictObject({
              host: z.string().min(1),
              port: z.number().int().min(1).max(65535).default(25),
              from: z.email(),
              secure: z.boolean().default(false),
            })
            .optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  oios: z
    .strictObject({
      /**
       * Where the collector writes OIOS's bootstrap token at its first start (mode 0600): a path
       * outside data_dir that OIOS holds and ITSD does not (docs/privacy.md). Unset: the token
       * is shown once by `tally collector run`, never stored. Only its hash is kept.
       */
      bootstrap_token_file: z.string().min(1).optional(),
    })
    .prefault({}),
  grants: z
    .strictObject({
      /**
       * The key that signs every capture and access grant (Ed25519, PKCS#8 PEM; made on first
       * start if missing). Unset: grant-signing-key.pem in data_dir, where whoever holds the
       * directory could sign grants of their own. On a site, a path outside data_dir.
       */
      signing_key_file: z.string().min(1).optional(),
    })
    .prefault({}),
  auth: z
    .strictObject({
      /**
       * The key binding every stored token hash (users' tokens, agents' credentials, enrollment
       * tokens) to this collector: 32 random bytes, made on first start if missing. Unset:
       * token-hash.key in data_dir, where whoever holds the directory could write the hash of a
       * token of their own into anyone's row. On a site, a path outside data_dir.
       */
      token_key_file: z.string().min(1).optional(),
    })
    .prefault({}),
  register: z
    .strictObject({
      /**
       * The register's checkpoint-signing key (Ed25519, PKCS#8 PEM; made on first start if
       * missing). Unset: register-signing-key.pem in data_dir. Keep it outside data_dir, on a
       * mount another user owns and the data_dir backups leave out (docs/operators.md).
       */
      signing_key_file: z.string().min(1).optional(),
    })
    .prefault({}),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})
export type CollectorConfig = z.output<typeof CollectorConfig>

export function loadCollectorConfig(file?: string, env?: NodeJS.ProcessEnv): CollectorConfig {
  return loadConfig(CollectorConfig, {
    file,
    env,
    extraLeaves: [
      'clickhouse.url',
      'clickhouse.cluster',
      'cases.master_key_file',
      'cases.outbox.webhook_url',
      'oios.bootstrap_token_file',
      'grants.signing_key_file',
      'register.signing_key_file',
      'auth.token_key_file',
    ],
  })
}
