/**
 * POST /v1/ingest: one agent batch, gzip'd JSON. Acknowledged only once its rows are stored.
 *
 * Caps: the compressed body (before reading it whole) and the decompressed size (while
 * inflating, so a gzip bomb stops at the cap instead of filling memory).
 *
 * Time: a batch whose interval is implausible by this collector's clock (config `ingest`) is
 * 422 implausible_time. Sequence: a stored seq sent again with other content is 409
 * seq_conflict with the agent's last stored seq (see store/host-batches.ts).
 *
 * Batches are written by group commit (store/group-commit.ts): a request waits for its group to
 * be stored. When more batches wait than `ingest.queue_max_batches`, a request is answered 503
 * with Retry-After at once, before its body is read, instead of letting latency grow.
 */

import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import {
  HostBatch,
  type IngestAck,
  implausibleTime,
  type SeqConflict,
  type TimeWindow,
} from '../../protocol/v1.ts'
import { AgentLookups } from '../auth/agent-lookups.ts'
import { requireAgent } from '../auth/middleware.ts'
import type { CollectorConfig } from '../config.ts'
import { type CollectorEnv, problem, zodIssues } from '../http.ts'
import type { Store } from '../store/client.ts'
import { GroupWriter, IngestQueueFull } from '../store/group-commit.ts'
import { batchDigest } from '../store/host-batches.ts'
import { IngestJournal, journalDir } from '../store/ingest-journal.ts'
import { loadOrCreateUsageHostKey } from '../store/usage-host-key.ts'
import type { IngestCounters, RejectReason } from '../telemetry.ts'

const inflate = promisify(gunzip)

export function ingestRoutes(store: Store, config: CollectorConfig, counters: IngestCounters) {
  const rejected = (reason: RejectReason) => counters.rejected(reason)
  const usage = {
    hostKey: loadOrCreateUsageHostKey(config.data_dir),
    releaseAfterSeconds: config.usage.release_after_seconds,
  }
  const window: TimeWindow = {
    maxAgeMs: config.ingest.max_batch_age_hours * 3_600_000,
    maxSkewMs: config.ingest.max_clock_skew_seconds * 1000,
    maxSpanMs: config.ingest.max_interval_seconds * 1000,
  }
  // One writer per app: batches of the same (agent_id, seq) meet in its queue, where the first
  // is written and the others are answered after it (the job the per-agent lock did).
  const writer = new GroupWriter(store, new IngestJournal(journalDir(config.data_dir)), usage, {
    windowMs: config.ingest.group_window_ms,
    maxBatches: config.ingest.group_max_batches,
    queueMaxBatches: config.ingest.queue_max_batches,
  })
  const lookups = new AgentLookups(store)
  const busy = (c: Context<CollectorEnv>) => {
    counters.unavailable()
    c.header('Retry-After', String(config.ingest.retry_after_seconds))
    return problem(
      c,
      503,
      'ingest_queue_full',
      `more than ${config.ingest.queue_max_batches} batches are waiting to be stored; retry later`,
    )
  }

  return new Hono<CollectorEnv>().post(
    '/v1/ingest',
    async (c, next) => {
      // Before the body is read or the agent looked up: refusing must cost next to nothing.
      if (writer.full) return busy(c)
      await next()
    },
    bodyLimit({
      maxSize: config.ingest.max_body_bytes,
      onError: (c) => {
        rejected('too_large')
        return problem(
          c,
          413,
          'body_too_large',
          `request body exceeds ${config.ingest.max_body_bytes} bytes`,
        )
      },
    }),
    requireAgent(store, lookups.authenticate),
    async (c) => {
      const agent = c.get('agent')
      const encoding = (c.req.header('content-encoding') ?? 'identity').toLowerCase()
      if (encoding !== 'gzip' && encoding !== 'identity') {
        rejected('encoding')
        return problem(
          c,
          415,
          'unsupported_encoding',
          `Content-Encoding ${encoding} is not supported; use gzip`,
        )
      }
      const received = Buffer.from(await c.req.arrayBuffer())
      let body = received
      if (encoding === 'gzip') {
        try {
          body = await inflate(body, { maxOutputLength: config.ingest.max_decompressed_bytes })
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
            rejected('too_large')
            return problem(
              c,
              413,
              'body_too_large',
              `decompressed body exceeds ${config.ingest.max_decompressed_bytes} bytes`,
            )
          }
          rejected('gzip')
          return problem(
            c,
            400,
            'malformed_gzip',
            `body is not valid gzip: ${(err as Error).message}`,
          )
        }
      }
      let raw: unknown
      try {
        raw = JSON.parse(body.toString('utf8'))
      } catch (err) {
        rejected('json')
        return problem(c, 400, 'malformed_json', `body is not JSON: ${(err as Error).message}`)
      }
      if (typeof raw === 'object' && raw !== null && ('host' in raw || 'site' in raw)) {
        rejected('identity')
        return problem(
          c,
          400,
          'identity_in_body',
          'a batch must not name a host or site: the collector takes them from the agent credential',
        )
      }
      const parsed = HostBatch.safeParse(raw)
      if (!parsed.success) {
        rejected('schema')
        return problem(
          c,
          400,
          'invalid_batch',
          'batch does not match protocol v1',
          zodIssues(parsed.error),
        )
      }
      const batch = parsed.data
      if (batch.agent_id !== agent.agent_id) {
        rejected('identity')
        return problem(
          c,
          403,
          'wrong_agent',
          `batch names agent ${batch.agent_id} but the credential belongs to another agent`,
        )
      }
      const implausible = implausibleTime(batch.interval, Date.now(), window)
      if (implausible !== undefined) {
        rejected('time')
        return problem(c, 422, 'implausible_time', implausible)
      }
      const digest = batchDigest(raw)
      try {
        const outcome = await writer.submit({
          agent,
          batch,
          digest,
          receivedAt: Date.now(),
          encoding,
          body: received,
        })
        if (outcome.status === 'conflict') {
          rejected('seq_conflict')
          c.get('log').warn(
            { agent_id: agent.agent_id, seq: batch.seq, last_seq: outcome.lastSeq },
            'batch reuses a stored seq with other content: the agent numbering went backwards',
          )
          const conflict: SeqConflict = {
            error: 'seq_conflict',
            message:
              `seq ${batch.seq} is already stored for this agent with other content: its ` +
              `numbering went backwards; number unacknowledged batches from ${outcome.lastSeq + 1}`,
            last_seq: outcome.lastSeq,
          }
          return c.json(conflict, 409)
        }
        counters.batch(outcome.status, batch.samples.length)
        const ack: IngestAck = { agent_id: agent.agent_id, seq: batch.seq, status: outcome.status }
        return c.json(ack, 200)
      } catch (err) {
        if (err instanceof IngestQueueFull) return busy(c)
        counters.unavailable()
        c.get('log').error({ err, agent_id: agent.agent_id, seq: batch.seq }, 'store write failed')
        c.header('Retry-After', String(config.ingest.retry_after_seconds))
        return problem(
          c,
          503,
          'store_unavailable',
          'the store could not take the batch; retry later',
        )
      }
    },
  )
}
