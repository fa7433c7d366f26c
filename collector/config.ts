/**
 * The collector's settings, with defaults that run on one machine with the embedded engine. Each
 * setting's description is its documentation: docs/configuration.md is generated from them
 * (`npm run docs:config`), so say there what an operator needs to know.
 */
import { z } from 'zod'
import { httpUrl, loadConfig } from '../common/config.ts'

const MiB = 1024 * 1024

export const CollectorConfig = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().default('127.0.0.1').describe('Address the API listens on.'),
      port: z
        .number()
        .int()
        .min(0)
        .max(65535)
        .default(8080)
        .describe(
          'Port the API listens on (0: any free port; the collector prints the one it took).',
        ),
    })
    .prefault({})
    .describe('Where the API listens.'),
  data_dir: z
    .string()
    .min(1)
    .default('./data')
    .describe(
      'The data directory: the embedded engine (`clickhouse/`), `admin.token`, the ingest journal (`ingest-journal/`); and, unless set elsewhere, `grant-signing-key.pem`, `register-signing-key.pem`, `case-master.key`, `token-hash.key`.',
    ),
  clickhouse: z
    .strictObject({
      url: httpUrl()
        .optional()
        .describe(
          'A ClickHouse server (`http://host:8123` or `https://...`). Unset: the embedded engine in `data_dir/clickhouse`.',
        ),
      username: z
        .string()
        .default('default')
        .describe('The server user (`tally_collector` with deploy/clickhouse).'),
      password: z
        .string()
        .default('')
        .describe('Its password; keep it in the environment file, not in the YAML.'),
      cluster: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a cluster name from remote_servers')
        .optional()
        .describe(
          'The cluster name when the server is a cluster laid out by `tally collector migrate --cluster NAME`: purges and the usage views are then run ON CLUSTER.',
        ),
    })
    .prefault({})
    .describe('The store: the embedded engine, or a ClickHouse server.'),
  ingest: z
    .strictObject({
      max_body_bytes: z
        .number()
        .int()
        .positive()
        .default(1 * MiB)
        .describe("Cap on a batch's compressed body (413 beyond it)."),
      max_decompressed_bytes: z
        .number()
        .int()
        .positive()
        .default(16 * MiB)
        .describe('Cap while inflating a body (413 beyond it; stops gzip bombs).'),
      retry_after_seconds: z
        .number()
        .int()
        .positive()
        .default(5)
        .describe('The `Retry-After` of a 503 answer.'),
      max_batch_age_hours: z
        .number()
        .positive()
        .default(336)
        .describe(
          "A batch whose interval starts longer ago is refused (422 `implausible_time`). The default, 14 days, is above the agents' `spool.max_age_days`, so a batch spooled through a long outage still lands: keep it so.",
        ),
      max_clock_skew_seconds: z
        .number()
        .int()
        .min(0)
        .default(300)
        .describe(
          "How far past the collector's clock a batch may end (the hosts' clocks drift); further is refused (422 `implausible_time`).",
        ),
      max_interval_seconds: z
        .number()
        .int()
        .min(1)
        .max(4_294_967)
        .default(86_400)
        .describe(
          'The longest interval one batch may cover (an agent paused or suspended sends one long batch when it wakes); longer is refused (422). At most 4294967: `interval_ms` is stored as UInt32 milliseconds.',
        ),
      group_window_ms: z
        .number()
        .int()
        .min(0)
        .max(1000)
        .default(20)
        .describe(
          "Group commit (docs/architecture.md): the first batch of a group waits this long for others; one insert per table per group. Under load the previous group's insert is the window.",
        ),
      group_max_batches: z
        .number()
        .int()
        .min(1)
        .max(100_000)
        .default(1000)
        .describe('Group commit: the most batches in one group.'),
      queue_max_batches: z
        .number()
        .int()
        .min(1)
        .max(1_000_000)
        .default(4000)
        .describe(
          'The most batches waiting for a group; beyond it a batch is answered 503 `ingest_queue_full` with `Retry-After` at once (this bounds memory: about 50 KB a batch).',
        ),
    })
    .prefault({})
    .describe("Accepting the agents' batches (`POST /v1/ingest`)."),
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
      token_ttl_hours: z
        .number()
        .positive()
        .default(24)
        .describe(
          'Lifetime of a new enrollment token (`tally admin enroll-token --ttl-hours` overrides it).',
        ),
      token_max_uses: z
        .number()
        .int()
        .positive()
        .default(1)
        .describe(
          'How many agents one new enrollment token may enroll (`--max-uses` overrides it).',
        ),
      interval_seconds: z
        .number()
        .int()
        .min(1)
        .max(3600)
        .default(10)
        .describe(
          'The seconds between batches that enrolled agents are told; they align their intervals to it.',
        ),
    })
    .prefault({})
    .describe('Enrollment tokens, and what enrolled agents are told.'),
  usage: z
    .strictObject({
      k: z
        .number()
        .int()
        .min(1)
        .default(5)
        .describe(
          'A site usage cell (site, minute, direction, IP version, transport, service, peer class) is shown only when at least k hosts contributed to it.',
        ),
      release_after_seconds: z
        .number()
        .int()
        .min(10)
        .max(3600)
        .default(600)
        .describe(
          'A minute of site usage is released (judged against k, then shown) this long after it ends; usage from a batch whose interval started longer ago than this is not counted.',
        ),
    })
    .prefault({})
    .describe('Site usage (tier A) and its k rule.'),
  cases: z
    .strictObject({
      max_grant_days: z
        .number()
        .positive()
        .default(30)
        .describe(
          'The longest a grant may run after approval (8.5f); an extension is a new approval within it.',
        ),
      technical_max_hours: z
        .number()
        .positive()
        .max(72)
        .default(72)
        .describe('The longest a technical case (8.2) may run; at most 72.'),
      emergency_written_hours: z
        .number()
        .positive()
        .default(24)
        .describe(
          'After a verbal emergency request (8.4b), the written one is due within this time, else the case is suspended.',
        ),
      master_key_file: z
        .string()
        .min(1)
        .optional()
        .describe(
          'The master key that wraps every case key (tier I at rest). Unset: `case-master.key` in `data_dir` (logged as a warning), for a single-machine demo only, since whoever holds the data directory then holds the key too. On a site, a path outside `data_dir` (another volume, a secret).',
        ),
      outbox: z
        .strictObject({
          webhook_url: httpUrl()
            .optional()
            .describe(
              'Notices are POSTed there as JSON (`http://` or `https://`); `check` treats its path as a secret.',
            ),
          smtp: z
            .strictObject({
              host: z.string().min(1).describe('The SMTP server.'),
              port: z.number().int().min(1).max(65535).default(25).describe('Its port.'),
              from: z.email().describe('The sender address of notices.'),
              secure: z
                .boolean()
                .default(false)
                .describe(
                  '`true`: TLS from the first byte (port 465); `false`: plain, or STARTTLS when the server offers it.',
                ),
            })
            .optional()
            .describe('An SMTP server for notices: set `host` and `from` to send mail.'),
        })
        .prefault({})
        .describe(
          'Where notices go. Neither `webhook_url` nor `smtp` set: notices can only be given in person (`tally case notice --given-by`), and technical cases, which must be notified, are refused.',
        ),
    })
    .prefault({})
    .describe('Investigations: grant limits, the key of tier I at rest, notices.'),
  oios: z
    .strictObject({
      bootstrap_token_file: z
        .string()
        .min(1)
        .optional()
        .describe(
          "Where the collector writes OIOS's bootstrap token at its first start (mode 0600): a path outside `data_dir` that OIOS holds and ITSD does not (docs/privacy.md). Unset: the token is shown once by `tally collector run`, never stored. Only its hash is kept.",
        ),
    })
    .prefault({})
    .describe("OIOS's first token."),
  grants: z
    .strictObject({
      signing_key_file: z
        .string()
        .min(1)
        .optional()
        .describe(
          'The key that signs every capture and access grant (Ed25519, PKCS#8 PEM; made on first start if missing). Unset: `grant-signing-key.pem` in `data_dir` (logged as a warning), where whoever holds the directory could sign grants of their own. On a site, a path outside `data_dir`.',
        ),
    })
    .prefault({})
    .describe('Capture and access grants.'),
  auth: z
    .strictObject({
      token_key_file: z
        .string()
        .min(1)
        .optional()
        .describe(
          "The key binding every stored token hash (users' tokens, agents' credentials, enrollment tokens) to this collector: 32 random bytes, made on first start if missing. Unset: `token-hash.key` in `data_dir` (logged as a warning), where whoever holds the directory could write the hash of a token of their own into anyone's row. On a site, a path outside `data_dir`.",
        ),
    })
    .prefault({})
    .describe('Stored token hashes.'),
  register: z
    .strictObject({
      signing_key_file: z
        .string()
        .min(1)
        .optional()
        .describe(
          "The register's key, signing every entry and checkpoint (Ed25519, PKCS#8 PEM; made on first start if missing). Unset: `register-signing-key.pem` in `data_dir` (logged as a warning). On a site, outside `data_dir`, on a mount another user owns and the data directory's backups leave out (docs/operators.md).",
        ),
    })
    .prefault({})
    .describe('The tamper-evident register.'),
  log_level: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('The least severe level written to the log.'),
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
