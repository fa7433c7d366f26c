import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  type Deliver,
  type DeliveryOutcome,
  httpDeliver,
  Sender,
  type SenderEvent,
} from '../../../agent/ship/sender.ts'
import { Spool } from '../../../agent/ship/spool.ts'

const CREDENTIAL = 'tly_test-credential'

interface ReceivedRequest {
  seq: number
  batch: { seq: number; interval?: { start: number; end: number } }
  headers: IncomingMessage['headers']
  /** Whether the record was still in the spool when the collector received it. */
  spooled: boolean
}

interface Answer {
  status: number
  body?: unknown
  headers?: Record<string, string>
}

/** A collector stand-in that records what it receives and answers as `answer` says. */
class FakeCollector {
  readonly received: ReceivedRequest[] = []
  answer: (seq: number, attempt: number) => Answer = (seq) => ({ status: 200, body: ack(seq) })
  readonly #server: Server
  url = ''

  constructor() {
    this.#server = createServer((request, response) => this.#handle(request, response))
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    const { port } = this.#server.address() as AddressInfo
    this.url = `http://127.0.0.1:${port}/v1/ingest`
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  acknowledgedSeqs(): number[] {
    return this.received.filter((_, i) => this.#statuses[i] === 200).map((r) => r.seq)
  }

  readonly #statuses: number[] = []

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const batch = JSON.parse(
        gunzipSync(Buffer.concat(chunks)).toString('utf8'),
      ) as ReceivedRequest['batch']
      const attempt = this.received.filter((r) => r.seq === batch.seq).length
      this.received.push({
        seq: batch.seq,
        batch,
        headers: request.headers,
        spooled: existsSync(fileOf(batch.seq)),
      })
      const answer = this.answer(batch.seq, attempt)
      this.#statuses.push(answer.status)
      response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers })
      response.end(answer.body === undefined ? '' : JSON.stringify(answer.body))
    })
  }
}

function ack(seq: number): unknown {
  return { agent_id: 'agent-1', seq, status: 'stored' }
}

function batchBody(seq: number): Buffer {
  return gzipSync(JSON.stringify({ version: 1, agent_id: 'agent-1', seq }))
}

let root: string
let dir: string
let collector: FakeCollector

function fileOf(seq: number): string {
  return join(dir, `${String(seq).padStart(16, '0')}.batch`)
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tally-sender-'))
  dir = join(root, 'spool')
  collector = new FakeCollector()
  await collector.start()
})

afterEach(async () => {
  await collector.stop()
  await rm(root, { recursive: true, force: true })
})

async function spoolOf(seqs: number[]): Promise<Spool> {
  const spool = await Spool.open(dir, { maxRecords: 100, maxBytes: 1_000_000 })
  for (const seq of seqs) expect((await spool.append(batchBody)).seq).toBe(seq)
  return spool
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * Whether `work` settles before `ms` have passed. The deadlines given are far beyond what the
 * work needs and far below what it would take if the behaviour under test were missing (a
 * backoff waited out, a hung delivery awaited, a drain that never stops), so a loaded machine
 * passes and a regression still fails.
 */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false)
  })
  try {
    return await Promise.race([work.then(() => true as const), late])
  } finally {
    clearTimeout(timer)
  }
}

/** Runs the sender until `done`, then aborts it and waits for it to stop. */
async function runUntil(sender: Sender, done: () => boolean, timeoutMs = 3000): Promise<void> {
  const controller = new AbortController()
  const running = sender.run(controller.signal)
  try {
    await until(done, timeoutMs)
  } finally {
    controller.abort()
    await running
  }
}

describe('Sender with httpDeliver against a local collector', () => {
  it('sends gzip with the bearer credential, in order, and removes what was acknowledged', async () => {
    const spool = await spoolOf([1, 2, 3])
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      onEvent: (event) => events.push(event),
    })
    await runUntil(sender, () => spool.stats().depth === 0)

    expect(collector.received.map((r) => r.seq)).toEqual([1, 2, 3])
    for (const request of collector.received) {
      expect(request.headers['content-encoding']).toBe('gzip')
      expect(request.headers['content-type']).toBe('application/json')
      expect(request.headers.authorization).toBe(`Bearer ${CREDENTIAL}`)
      expect(request.spooled).toBe(true)
    }
    expect(events).toEqual([1, 2, 3].map((seq) => ({ kind: 'acknowledged', seq })))
    expect(sender.failures).toBe(0)
    expect(existsSync(fileOf(1))).toBe(false)
  })

  it('waits out a 503 with Retry-After, then delivers everything exactly once in order', async () => {
    const spool = await spoolOf([1, 2, 3])
    collector.answer = (seq, attempt) =>
      seq === 2 && attempt === 0
        ? {
            status: 503,
            headers: { 'retry-after': '1' },
            body: { error: 'unavailable', message: 'store is restarting' },
          }
        : { status: 200, body: ack(seq) }
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      baseDelayMs: 1,
      random: () => 0,
      onEvent: (event) => events.push(event),
    })
    const started = Date.now()
    await runUntil(sender, () => spool.stats().depth === 0)

    expect(Date.now() - started).toBeGreaterThanOrEqual(950)
    expect(collector.received.map((r) => r.seq)).toEqual([1, 2, 2, 3])
    expect(collector.acknowledgedSeqs()).toEqual([1, 2, 3])
    // Every request, the failed one and its retry included, found its record still spooled.
    expect(collector.received.every((r) => r.spooled)).toBe(true)
    expect(sender.failures).toBe(1)
    expect(events[1]).toEqual({
      kind: 'failure',
      seq: 2,
      message: 'HTTP 503 unavailable: store is restarting',
      delayMs: 1000,
    })
  })

  it('moves a rejected batch (400) out of the way and goes on with the queue', async () => {
    const spool = await spoolOf([1, 2, 3])
    collector.answer = (seq) =>
      seq === 1
        ? {
            status: 400,
            body: {
              error: 'invalid_batch',
              message: 'the batch does not match the schema',
              issues: [{ path: 'samples.0.metric', message: 'unknown metric' }],
            },
          }
        : { status: 200, body: ack(seq) }
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      onEvent: (event) => events.push(event),
    })
    await runUntil(sender, () => spool.stats().depth === 0)

    expect(sender.rejected).toBe(1)
    expect(sender.failures).toBe(0)
    expect(collector.received.map((r) => r.seq)).toEqual([1, 2, 3])
    expect(events[0]).toEqual({
      kind: 'rejected',
      seq: 1,
      status: 400,
      message:
        'HTTP 400 invalid_batch: the batch does not match the schema (samples.0.metric: unknown metric)',
    })
  })

  it('keeps an unauthorized batch and retries it with backoff', async () => {
    const spool = await spoolOf([1])
    collector.answer = () => ({
      status: 401,
      body: { error: 'unauthorized', message: 'credential revoked' },
    })
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      baseDelayMs: 5,
      random: () => 0.5,
      onEvent: (event) => events.push(event),
    })
    await runUntil(sender, () => sender.failures >= 3)

    expect(spool.stats().depth).toBe(1)
    expect(sender.rejected).toBe(0)
    expect(events.slice(0, 3)).toEqual(
      [2, 5, 10].map((delayMs) => ({
        kind: 'failure',
        seq: 1,
        message: 'unauthorized: HTTP 401 unauthorized: credential revoked',
        delayMs,
      })),
    )
  })

  it('counts failures and keeps the records while the collector is down', async () => {
    const spool = await spoolOf([1, 2])
    await collector.stop()
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      baseDelayMs: 2,
      maxDelayMs: 10,
      onEvent: (event) => events.push(event),
    })
    await runUntil(sender, () => sender.failures >= 5)

    expect(spool.stats().depth).toBe(2)
    expect(existsSync(fileOf(1))).toBe(true)
    expect(events.every((e) => e.kind === 'failure' && e.seq === 1)).toBe(true)
    expect(events[0]).toMatchObject({ message: expect.stringMatching(/ECONNREFUSED/) })
    // The collector comes back (on a new port): the same records go through.
    collector = new FakeCollector()
    await collector.start()
    const recovered = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
    })
    await runUntil(recovered, () => spool.stats().depth === 0)
    expect(collector.received.map((r) => r.seq)).toEqual([1, 2])
  })

  it('skips a corrupted record and still delivers the next one', async () => {
    const spool = await spoolOf([1, 2, 3])
    await writeFile(fileOf(2), 'not a record')
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
    })
    await runUntil(sender, () => spool.stats().depth === 0)
    expect(collector.received.map((r) => r.seq)).toEqual([1, 3])
    expect(spool.stats().corrupted).toBe(1)
  })

  it('starts sending a record appended while idle when woken', async () => {
    const spool = await spoolOf([])
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
    })
    const controller = new AbortController()
    const running = sender.run(controller.signal)
    await new Promise((resolve) => setTimeout(resolve, 20))
    await spool.append(batchBody)
    sender.wake()
    await until(() => spool.stats().depth === 0)
    await spool.append(batchBody)
    sender.wake()
    await until(() => spool.stats().depth === 0)
    controller.abort()
    await running
    expect(collector.received.map((r) => r.seq)).toEqual([1, 2])
  })

  it('drains everything before a deadline at shutdown', async () => {
    const spool = await spoolOf([1, 2, 3, 4])
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
    })
    await sender.drain(2000)
    expect(spool.stats().depth).toBe(0)
    expect(collector.received.map((r) => r.seq)).toEqual([1, 2, 3, 4])
  })
})

describe("Sender and the collector's judgement on numbering and time", () => {
  it('renumbers every waiting batch after last_seq on a seq_conflict, and loses none', async () => {
    const spool = await spoolOf([1, 2, 3])
    collector.answer = (seq) =>
      seq <= 10
        ? {
            status: 409,
            body: {
              error: 'seq_conflict',
              message: `seq ${seq} is stored with other content`,
              last_seq: 10,
            },
          }
        : { status: 200, body: ack(seq) }
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      onEvent: (event) => events.push(event),
    })
    await runUntil(sender, () => spool.stats().depth === 0)
    expect(collector.received.map((r) => r.seq)).toEqual([1, 11, 12, 13])
    // The seq inside each body is the one it was sent under.
    expect(collector.received.map((r) => r.batch.seq)).toEqual([1, 11, 12, 13])
    expect(events.filter((e) => e.kind === 'renumbered')).toEqual([
      { kind: 'renumbered', seq: 1, lastSeq: 10, count: 3, first: 11, last: 13 },
    ])
    expect(spool.stats()).toMatchObject({ rejected: 0, dropped: 0 })
    expect(spool.nextSeq).toBe(14)
    expect((await readFile(join(dir, 'next-seq'), 'utf8')).trim()).toBe('14')
    expect(sender.failures).toBe(0)
  })

  it('does not renumber when the collector contradicts itself (last_seq below the seq)', async () => {
    const spool = await spoolOf([5, 6].map((_, i) => i + 1))
    collector.answer = (seq, attempt) =>
      attempt === 0
        ? { status: 409, body: { error: 'seq_conflict', message: 'conflict', last_seq: 0 } }
        : { status: 200, body: ack(seq) }
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      baseDelayMs: 1,
    })
    await runUntil(sender, () => spool.stats().depth === 0)
    expect(collector.received.map((r) => r.seq)).toEqual([1, 1, 2, 2])
    expect(sender.failures).toBe(2)
  })

  it('removes a batch refused as implausible_time (422) and counts it, across a restart', async () => {
    const spool = await spoolOf([1, 2])
    collector.answer = (seq) =>
      seq === 1
        ? {
            status: 422,
            body: {
              error: 'implausible_time',
              message: 'interval starts 1970-01-01T00:00:00.000Z',
            },
          }
        : { status: 200, body: ack(seq) }
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      onEvent: (event) => events.push(event),
    })
    await runUntil(sender, () => spool.stats().depth === 0)
    expect(collector.received.map((r) => r.seq)).toEqual([1, 2])
    expect(events[0]).toEqual({
      kind: 'rejected',
      seq: 1,
      status: 422,
      message: 'HTTP 422 implausible_time: interval starts 1970-01-01T00:00:00.000Z',
    })
    expect(spool.stats().rejected).toBe(1)
    const reopened = await Spool.open(dir, { maxRecords: 100, maxBytes: 1_000_000 })
    expect(reopened.stats().rejected).toBe(1)
  })

  it('repairs a spooled batch whose interval ends before it starts, the same way on every try', async () => {
    const spool = await Spool.open(dir, { maxRecords: 100, maxBytes: 1_000_000 })
    const end = 1_764_000_000_000
    // As an agent before the monotonic interval wrote it after the clock stepped back 5 s.
    const broken = { version: 1, agent_id: 'agent-1', interval: { start: end + 5_000, end } }
    await spool.append((seq) => gzipSync(JSON.stringify({ ...broken, seq })))
    collector.answer = (seq, attempt) =>
      attempt === 0
        ? { status: 503, body: { error: 'unavailable', message: 'later' } }
        : { status: 200, body: ack(seq) }
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL }),
      baseDelayMs: 1,
      nominalIntervalMs: 10_000,
      onEvent: (event) => events.push(event),
    })
    await runUntil(sender, () => spool.stats().depth === 0)
    expect(collector.received.map((r) => r.batch.interval)).toEqual([
      { start: end - 10_000, end },
      { start: end - 10_000, end },
    ])
    expect(events.filter((e) => e.kind === 'repaired')).toEqual([
      {
        kind: 'repaired',
        seq: 1,
        was: { start: end + 5_000, end },
        now: { start: end - 10_000, end },
      },
    ])
    expect(spool.stats().rejected).toBe(0)
  })
})

describe('httpDeliver outcomes', () => {
  const record = { seq: 7, body: batchBody(7) }

  async function deliverWith(answer: Answer): Promise<DeliveryOutcome> {
    collector.answer = () => answer
    return httpDeliver({ ingestUrl: collector.url, credential: CREDENTIAL })(record)
  }

  it('maps each kind of answer', async () => {
    expect(await deliverWith({ status: 200, body: ack(7) })).toEqual({ kind: 'acknowledged' })
    expect(
      await deliverWith({ status: 200, body: { agent_id: 'a', seq: 7, status: 'duplicate' } }),
    ).toEqual({ kind: 'acknowledged' })
    expect(await deliverWith({ status: 200, body: ack(6) })).toEqual({
      kind: 'retry',
      message: 'HTTP 200 acknowledged seq 6 instead of 7',
    })
    expect(await deliverWith({ status: 200, body: { ok: true } })).toMatchObject({ kind: 'retry' })
    expect(await deliverWith({ status: 413, body: { error: 'too_large', message: 'm' } })).toEqual({
      kind: 'rejected',
      status: 413,
      message: 'HTTP 413 too_large: m',
    })
    expect(
      await deliverWith({ status: 429, headers: { 'retry-after': '3' }, body: undefined }),
    ).toEqual({ kind: 'retry', message: 'HTTP 429', retryAfterMs: 3000 })
    expect(await deliverWith({ status: 408 })).toEqual({ kind: 'retry', message: 'HTTP 408' })
    expect(
      await deliverWith({
        status: 409,
        body: { error: 'seq_conflict', message: 'other content', last_seq: 9 },
      }),
    ).toEqual({ kind: 'conflict', lastSeq: 9, message: 'HTTP 409 seq_conflict: other content' })
    expect(await deliverWith({ status: 409, body: { error: 'other', message: 'm' } })).toEqual({
      kind: 'rejected',
      status: 409,
      message: 'HTTP 409 other: m',
    })
    expect(await deliverWith({ status: 500, body: 'oops' })).toEqual({
      kind: 'retry',
      message: 'HTTP 500: "oops"',
    })
    expect(
      await deliverWith({ status: 503, headers: { 'retry-after': 'soon' }, body: undefined }),
    ).toEqual({ kind: 'retry', message: 'HTTP 503' })
    expect(
      await deliverWith({ status: 307, headers: { location: 'http://elsewhere/' } }),
    ).toMatchObject({
      kind: 'retry',
      message: expect.stringMatching(/redirect to http:\/\/elsewhere/),
    })
  })

  it('gives up on a collector that does not answer in time', async () => {
    collector.answer = () => ({ status: 200, body: ack(7) })
    const silent = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const { port } = silent.address() as AddressInfo
    try {
      const outcome = await httpDeliver({
        ingestUrl: `http://127.0.0.1:${port}/v1/ingest`,
        credential: CREDENTIAL,
        timeoutMs: 100,
      })(record)
      expect(outcome).toEqual({ kind: 'retry', message: 'request timed out' })
    } finally {
      silent.closeAllConnections()
      silent.close()
    }
  })
})

describe('Sender scheduling', () => {
  function scripted(outcomes: DeliveryOutcome[]): Deliver {
    return async () => outcomes.shift() ?? { kind: 'acknowledged' }
  }

  it('doubles the backoff cap up to the maximum, honours Retry-After, resets after a success', async () => {
    const spool = await spoolOf([1, 2])
    const retry: DeliveryOutcome = { kind: 'retry', message: 'down' }
    const events: SenderEvent[] = []
    const sender = new Sender({
      spool,
      deliver: scripted([
        retry,
        retry,
        retry,
        retry,
        { kind: 'retry', message: 'busy', retryAfterMs: 30 },
        { kind: 'acknowledged' },
        retry,
      ]),
      baseDelayMs: 2,
      maxDelayMs: 10,
      random: () => 0.5,
      onEvent: (event) => events.push(event),
    })
    await runUntil(sender, () => spool.stats().depth === 0)
    const delays = events.flatMap((e) => (e.kind === 'failure' ? [e.delayMs] : []))
    // caps 2, 4, 8, 10, 10 halved by the jitter; 30 from Retry-After; then back to cap 2.
    expect(delays).toEqual([1, 2, 4, 5, 30, 1])
    expect(sender.failures).toBe(6)
  })

  it('treats a throwing deliver as a failure to retry', async () => {
    const spool = await spoolOf([1])
    let calls = 0
    const sender = new Sender({
      spool,
      deliver: async () => {
        calls += 1
        if (calls === 1) throw new Error('boom')
        return { kind: 'acknowledged' }
      },
      baseDelayMs: 1,
    })
    await runUntil(sender, () => spool.stats().depth === 0)
    expect(sender.failures).toBe(1)
  })

  it('stops promptly when aborted during a backoff', async () => {
    const spool = await spoolOf([1])
    const sender = new Sender({
      spool,
      // An hour's backoff: waiting it out instead of stopping would outlast any deadline below.
      deliver: scripted([{ kind: 'retry', message: 'down', retryAfterMs: 3_600_000 }]),
    })
    const controller = new AbortController()
    const running = sender.run(controller.signal)
    await until(() => sender.failures === 1)
    controller.abort()
    expect(await settlesWithin(running, 20_000), 'run() ended without the backoff').toBe(true)
    expect(sender.failures).toBe(1)
    expect(spool.stats().depth).toBe(1)
  })

  it('lets the in-flight delivery settle after an abort, and removes its record on ack', async () => {
    const spool = await spoolOf([1, 2])
    let answer: (outcome: DeliveryOutcome) => void = () => {}
    let delivering = false
    const sender = new Sender({
      spool,
      deliver: () => {
        delivering = true
        return new Promise((resolve) => {
          answer = resolve
        })
      },
    })
    const controller = new AbortController()
    let settled = false
    const running = sender.run(controller.signal).then(() => {
      settled = true
    })
    await until(() => delivering)
    controller.abort()
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(settled).toBe(false)
    answer({ kind: 'acknowledged' })
    await running
    expect(spool.stats().depth).toBe(1)
    expect((await spool.oldest())?.seq).toBe(2)
  })

  it('drain gives up at the deadline when the collector is down', async () => {
    const spool = await spoolOf([1, 2])
    // Down for good: only the deadline can end this drain.
    const sender = new Sender({
      spool,
      deliver: async () => ({ kind: 'retry', message: 'down' }),
      baseDelayMs: 5,
      maxDelayMs: 20,
    })
    expect(await settlesWithin(sender.drain(200), 20_000), 'drain() ended at its deadline').toBe(
      true,
    )
    expect(sender.failures).toBeGreaterThan(0)
    expect(spool.stats().depth).toBe(2)
  })

  it('drain gives up at the deadline on a delivery that hangs', async () => {
    const spool = await spoolOf([1])
    const sender = new Sender({ spool, deliver: () => new Promise(() => {}) })
    expect(await settlesWithin(sender.drain(100), 20_000), 'drain() ended at its deadline').toBe(
      true,
    )
    expect(spool.stats().depth).toBe(1)
  })

  it('refuses to run twice at once', async () => {
    const spool = await spoolOf([])
    const sender = new Sender({ spool, deliver: scripted([]) })
    const controller = new AbortController()
    const running = sender.run(controller.signal)
    await expect(sender.run(controller.signal)).rejects.toThrow(/already sending/)
    await expect(sender.drain(10)).rejects.toThrow(/already sending/)
    controller.abort()
    await running
  })
})
