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
import type { Context, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { Logger } from 'pino'
import * as api from '../../protocol/api/agents.ts'
import {
  type HostBatch,
  type IngestAck,
  implausibleTime,
  type SeqConflict,
  type TimeWindow,
} from '../../protocol/v1.ts'
import { AgentLookups } from '../auth/agent-lookups.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import type { CollectorConfig } from '../config.ts'
import { ContractRoutes } from '../contract.ts'
import { DomainError, type DomainErrorOptions, type Failure } from '../errors.ts'
import { type CollectorEnv, zodIssues } from '../http.ts'
import type { Store } from '../store/client.ts'
import { GroupWriter, IngestQueueFull, type ReceivedBatch } from '../store/group-commit.ts'
import type { BatchOutcome } from '../store/host-batches.ts'
import { batchDigest } from '../store/host-batches.ts'
import { IngestJournal, journalDir } from '../store/ingest-journal.ts'
import { loadOrCreateUsageHostKey } from '../store/usage-host-key.ts'
import type { IngestCounters, RejectReason } from '../telemetry.ts'

const inflate = promisify(gunzip)

type Encoding = ReceivedBatch['encoding']

/** A 4xx refusal, counted under its reason; thrown on to app.onError. */
type Refuse = (
  reason: RejectReason,
  failure: Failure,
  code: string,
  message: string,
  options?: DomainErrorOptions,
) => DomainError

function contentEncoding(header: string | undefined, refuse: Refuse): Encoding {
  const encoding = (header ?? 'identity').toLowerCase()
  if (encoding === 'gzip' || encoding === 'identity') return encoding
  throw refuse(
    'encoding',
    'unsupported_encoding',
    'unsupported_encoding',
    `Content-Encoding ${encoding} is not supported; use gzip`,
  )
}

/** The body inflated, stopping at the cap so that a gzip bomb cannot fill memory. */
async function inflated(received: Buffer, maxBytes: number, refuse: Refuse): Promise<Buffer> {
  try {
    return await inflate(received, { maxOutputLength: maxBytes })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw refuse(
        'too_large',
        'too_large',
        'body_too_large',
        `decompressed body exceeds ${maxBytes} bytes`,
      )
    }
    throw refuse(
      'gzip',
      'invalid',
      'malformed_gzip',
      `body is not valid gzip: ${(err as Error).message}`,
    )
  }
}

/**
 * The body as JSON, as far as it can be checked before the schema: a Content-Encoding we take,
 * gzip that inflates under the cap, JSON, and no identity of its own (the collector takes host
 * and site from the credential). What it returns is the JSON as sent, which the batch's digest
 * is computed on.
 */
async function sentJson(
  c: Context<CollectorEnv>,
  maxDecompressedBytes: number,
  refuse: Refuse,
): Promise<unknown> {
  const encoding = contentEncoding(c.req.header('content-encoding'), refuse)
  const received = Buffer.from(await c.req.arrayBuffer())
  const body =
    encoding === 'gzip' ? await inflated(received, maxDecompressedBytes, refuse) : received
  let sent: unknown
  try {
    sent = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw refuse('json', 'invalid', 'malformed_json', `body is not JSON: ${(err as Error).message}`)
  }
  if (typeof sent === 'object' && sent !== null && ('host' in sent || 'site' in sent)) {
    throw refuse(
      'identity',
      'invalid',
      'identity_in_body',
      'a batch must not name a host or site: the collector takes them from the agent credential',
    )
  }
  return sent
}

/** The batch's own claims against the credential and the collector's clock. */
function checkClaims(batch: HostBatch, agent: AgentIdentity, window: TimeWindow, refuse: Refuse) {
  if (batch.agent_id !== agent.agent_id) {
    throw refuse(
      'identity',
      'forbidden',
      'wrong_agent',
      `batch names agent ${batch.agent_id} but the credential belongs to another agent`,
    )
  }
  const implausible = implausibleTime(batch.interval, Date.now(), window)
  if (implausible !== undefined) {
    throw refuse('time', 'unprocessable', 'implausible_time', implausible)
  }
}

/** 409: the seq is stored with other content; the agent renumbers from `lastSeq` + 1. */
function seqConflict(seq: number, lastSeq: number, refuse: Refuse): DomainError {
  const fields: Omit<SeqConflict, 'error' | 'message'> = { last_seq: lastSeq }
  return refuse(
    'seq_conflict',
    'conflict',
    'seq_conflict',
    `seq ${seq} is already stored for this agent with other content: its ` +
      `numbering went backwards; number unacknowledged batches from ${lastSeq + 1}`,
    { fields },
  )
}

export function ingestRoutes(store: Store, config: CollectorConfig, counters: IngestCounters) {
  const refuse: Refuse = (reason, failure, code, message, options) => {
    counters.rejected(reason)
    return new DomainError(failure, code, message, options)
  }
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

  /** Waits for the batch's group; a full queue or a failing store is a 503, counted. */
  const stored = async (received: ReceivedBatch, log: Logger): Promise<BatchOutcome> => {
    try {
      return await writer.submit(received)
    } catch (err) {
      counters.unavailable()
      if (err instanceof IngestQueueFull) throw err
      const { agent_id } = received.agent
      log.error({ err, agent_id, seq: received.batch.seq }, 'store write failed')
      throw new DomainError(
        'unavailable',
        'store_unavailable',
        'the store could not take the batch; retry later',
        { cause: err },
      )
    }
  }

  /** Before the body is read or the agent looked up: refusing must cost next to nothing. */
  const room: MiddlewareHandler<CollectorEnv> = async (_c, next) => {
    try {
      writer.checkRoom()
    } catch (err) {
      counters.unavailable()
      throw err
    }
    await next()
  }
  const cap = bodyLimit({
    maxSize: config.ingest.max_body_bytes,
    onError: () => {
      throw refuse(
        'too_large',
        'too_large',
        'body_too_large',
        `request body exceeds ${config.ingest.max_body_bytes} bytes`,
      )
    },
  })

  return new ContractRoutes(store).serve(
    api.ingest,
    async ({ c, agent, body, bodyAsSent }) => {
      const batch = await body()
      checkClaims(batch, agent, window, refuse)
      const outcome = await stored(
        {
          agent,
          batch,
          digest: batchDigest(bodyAsSent()),
          receivedAt: Date.now(),
          // Taken by sentJson already, so this cannot refuse; the bytes are Hono's cached ones.
          encoding: contentEncoding(c.req.header('content-encoding'), refuse),
          body: Buffer.from(await c.req.arrayBuffer()),
        },
        c.get('log'),
      )
      if (outcome.status === 'conflict') {
        c.get('log').warn(
          { agent_id: agent.agent_id, seq: batch.seq, last_seq: outcome.lastSeq },
          'batch reuses a stored seq with other content: the agent numbering went backwards',
        )
        throw seqConflict(batch.seq, outcome.lastSeq, refuse)
      }
      counters.batch(outcome.status, batch.samples.length)
      const ack: IngestAck = { agent_id: agent.agent_id, seq: batch.seq, status: outcome.status }
      return ack
    },
    {
      before: [room, cap],
      authenticateAgent: lookups.authenticate,
      bodyReader: {
        read: (c) => sentJson(c, config.ingest.max_decompressed_bytes, refuse),
        refuse: (error) =>
          refuse('schema', 'invalid', 'invalid_batch', 'batch does not match protocol v1', {
            issues: zodIssues(error),
          }),
      },
    },
  ).app
}
