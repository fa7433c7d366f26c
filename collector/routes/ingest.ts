/**
 * POST /v1/ingest: one agent batch, gzip'd JSON. Acknowledged only once its rows are stored.
 *
 * Caps: the compressed body (before reading it whole) and the decompressed size (while
 * inflating, so a gzip bomb stops at the cap instead of filling memory).
 */

import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HostBatch, type IngestAck } from '../../protocol/v1.ts'
import { requireAgent } from '../auth/middleware.ts'
import type { CollectorConfig } from '../config.ts'
import { type CollectorEnv, problem, zodIssues } from '../http.ts'
import type { Store } from '../store/client.ts'
import { writeHostBatch } from '../store/host-batches.ts'
import { Mutex } from '../store/rows.ts'
import type { IngestCounters, RejectReason } from '../telemetry.ts'

const inflate = promisify(gunzip)

export function ingestRoutes(store: Store, config: CollectorConfig, counters: IngestCounters) {
  // One batch per agent at a time, so a retry racing its original cannot write twice.
  const perAgent = new Map<string, Mutex>()
  const lockFor = (agentId: string): Mutex => {
    const existing = perAgent.get(agentId)
    if (existing !== undefined) return existing
    const lock = new Mutex()
    perAgent.set(agentId, lock)
    return lock
  }
  const rejected = (reason: RejectReason) => counters.rejected(reason)

  return new Hono<CollectorEnv>().post(
    '/v1/ingest',
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
    requireAgent(store),
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
      let body = Buffer.from(await c.req.arrayBuffer())
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
      try {
        const status = await lockFor(agent.agent_id).run(() => writeHostBatch(store, agent, batch))
        counters.batch(status, batch.samples.length)
        const ack: IngestAck = { agent_id: agent.agent_id, seq: batch.seq, status }
        return c.json(ack, 200)
      } catch (err) {
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
