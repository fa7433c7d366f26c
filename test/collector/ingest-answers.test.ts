/**
 * Every refusal of POST /v1/ingest, byte for byte: status, Retry-After and the body's exact text
 * (keys in their order), and the reason each one is counted under. Agents and their operators
 * read these answers; moving where they are made must not change a byte of them.
 */
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Store } from '../../collector/store/client.ts'
import { createTelemetry, type Telemetry } from '../../collector/telemetry.ts'
import {
  type App,
  type EnrolledAgent,
  enrollAgent,
  gz,
  type Harness,
  makeBatch,
  openHarness,
  postIngest,
} from './harness.ts'

let h: Harness
let agent: EnrolledAgent
let other: EnrolledAgent
let app: App
let telemetry: Telemetry

/** An app of its own with its own telemetry, so its counters have seen only these requests. */
const appOn = (store: Store, ingest: Record<string, unknown> = {}, metrics = createTelemetry()) =>
  h.appWith({ ingest }, { store, telemetry: metrics })

beforeAll(async () => {
  h = await openHarness()
  agent = await enrollAgent(h, 'site-x', 'host-x')
  other = await enrollAgent(h, 'site-x', 'host-y')
  telemetry = createTelemetry()
  app = appOn(h.store, { max_body_bytes: 4096, max_decompressed_bytes: 8192 }, telemetry)
})

afterAll(async () => {
  await h?.close()
})

interface Answer {
  status: number
  retryAfter: string | null
  contentType: string | null
  body: string
}

async function answer(res: Response | Promise<Response>): Promise<Answer> {
  const r = await res
  return {
    status: r.status,
    retryAfter: r.headers.get('retry-after'),
    contentType: r.headers.get('content-type'),
    body: await r.text(),
  }
}

const JSON_TYPE = 'application/json'
const refused = (status: number, body: string, retryAfter: string | null = null): Answer => ({
  status,
  retryAfter,
  contentType: JSON_TYPE,
  body,
})

const send = (body: Uint8Array, options: { encoding?: string | undefined; on?: App } = {}) =>
  answer(
    postIngest(options.on ?? app, body, {
      credential: agent.credential,
      encoding: 'encoding' in options ? options.encoding : 'gzip',
    }),
  )

async function rejectedCount(reason: string): Promise<number> {
  const line = (await telemetry.prometheus())
    .split('\n')
    .find((l) => l.startsWith(`tally_ingest_rejected_total{reason="${reason}"} `))
  return Number(line?.split(' ')[1])
}

describe('POST /v1/ingest refusals, byte for byte', () => {
  it('a body over its cap, compressed or decompressed, is 413 body_too_large', async () => {
    // Over the app-wide cap of the route, which answers before the route's own.
    expect(await send(Buffer.alloc(5000, 1))).toEqual(
      refused(413, '{"error":"body_too_large","message":"request body exceeds 4096 bytes"}'),
    )
    const before = await rejectedCount('too_large')
    expect(await send(gzipSync(Buffer.alloc(10_000, 32)))).toEqual(
      refused(413, '{"error":"body_too_large","message":"decompressed body exceeds 8192 bytes"}'),
    )
    expect(await rejectedCount('too_large')).toBe(before + 1)
  })

  it('an unknown encoding is 415, bad gzip and bad JSON are 400', async () => {
    expect(await send(gz({}), { encoding: 'br' })).toEqual(
      refused(
        415,
        '{"error":"unsupported_encoding","message":"Content-Encoding br is not supported; use gzip"}',
      ),
    )
    expect(await send(Buffer.from('not gzip'))).toEqual(
      refused(
        400,
        '{"error":"malformed_gzip","message":"body is not valid gzip: incorrect header check"}',
      ),
    )
    const json = await send(Buffer.from('{"version": 1,'), { encoding: undefined })
    expect(json).toEqual(
      refused(
        400,
        expect.stringMatching(/^\{"error":"malformed_json","message":"body is not JSON: /),
      ),
    )
    expect(await rejectedCount('encoding')).toBe(1)
    expect(await rejectedCount('gzip')).toBe(1)
    expect(await rejectedCount('json')).toBe(1)
  })

  it('a batch naming its host, off the schema, or of another agent is refused', async () => {
    expect(await send(gz({ ...makeBatch(agent.agent_id, 1), host: 'h' }))).toEqual(
      refused(
        400,
        '{"error":"identity_in_body","message":"a batch must not name a host or site: the collector takes them from the agent credential"}',
      ),
    )
    expect(await send(gz({ ...makeBatch(agent.agent_id, 1), extra: 1 }))).toEqual(
      refused(
        400,
        '{"error":"invalid_batch","message":"batch does not match protocol v1","issues":[{"path":"(top level)","message":"Unrecognized key: \\"extra\\""}]}',
      ),
    )
    expect(await send(gz(makeBatch(other.agent_id, 1)))).toEqual(
      refused(
        403,
        `{"error":"wrong_agent","message":"batch names agent ${other.agent_id} but the credential belongs to another agent"}`,
      ),
    )
    expect(await rejectedCount('identity')).toBe(2)
    expect(await rejectedCount('schema')).toBe(1)
  })

  it('an interval that ends before it starts is 422 implausible_time', async () => {
    const batch = makeBatch(agent.agent_id, 1)
    const backwards = {
      ...batch,
      interval: { start: batch.interval.end, end: batch.interval.start },
    }
    const start = new Date(backwards.interval.start).toISOString()
    const end = new Date(backwards.interval.end).toISOString()
    expect(await send(gz(backwards))).toEqual(
      refused(
        422,
        `{"error":"implausible_time","message":"interval ends ${end}, before it starts (${start}); it must end after it starts"}`,
      ),
    )
    expect(await rejectedCount('time')).toBe(1)
  })

  it('a stored seq with other content is 409 seq_conflict, last_seq after the message', async () => {
    const batch = makeBatch(agent.agent_id, 7)
    expect((await send(gz(batch))).status).toBe(200)
    const changed = { ...batch, agent_version: '9.9.9' }
    expect(await send(gz(changed))).toEqual(
      refused(
        409,
        '{"error":"seq_conflict","message":"seq 7 is already stored for this agent with other content: its numbering went backwards; number unacknowledged batches from 8","last_seq":7}',
      ),
    )
    expect(await rejectedCount('seq_conflict')).toBe(1)
  })

  it('a full queue and a failing store are 503 with Retry-After', async () => {
    const retryAfter = String(h.config.ingest.retry_after_seconds)
    const busyMetrics = createTelemetry()
    const busy = appOn(h.store, { group_window_ms: 300, queue_max_batches: 1 }, busyMetrics)
    const answers = await Promise.all([
      send(gz(makeBatch(agent.agent_id, 20)), { on: busy }),
      send(gz(makeBatch(agent.agent_id, 21)), { on: busy }),
    ])
    expect(answers[0]?.status).toBe(200)
    expect(answers[1]).toEqual(
      refused(
        503,
        '{"error":"ingest_queue_full","message":"more than 1 batches are waiting to be stored; retry later"}',
        retryAfter,
      ),
    )
    const failing: Store = new Proxy(h.store, {
      get(target, prop, receiver) {
        if (prop === 'insert') return () => Promise.reject(new Error('disk on fire'))
        const value: unknown = Reflect.get(target, prop, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const down = appOn(failing, {}, busyMetrics)
    expect(await send(gz(makeBatch(agent.agent_id, 22)), { on: down })).toEqual(
      refused(
        503,
        '{"error":"store_unavailable","message":"the store could not take the batch; retry later"}',
        retryAfter,
      ),
    )
    expect(await busyMetrics.prometheus()).toContain('\ntally_ingest_unavailable_total 2\n')
  })
})
