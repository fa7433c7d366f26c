/**
 * The tier I uploader reads the collector's answers by the sender's rules (agent/ship/answer.ts):
 * a 401 keeps the batch, a Retry-After holds every upload back until it has passed, a refusal
 * discards. A local HTTP server on loopback stands in for the collector; the uploader's clock is
 * injected, so no test waits for a Retry-After to pass.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MAX_PENDING, RestrictedUploader } from '../../../agent/ship/restricted-uploader.ts'
import type { RestrictedBatch } from '../../../protocol/grants.ts'

const CREDENTIAL = 'tly_a_test.credential'

interface Answer {
  status: number
  headers?: Record<string, string>
}

class FakeCollector {
  /** Seq of every batch received, in order, with the path it came to. */
  readonly received: { seq: number; path: string; authorization: string | undefined }[] = []
  answer: (seq: number, attempt: number) => Answer = () => ({ status: 200 })
  readonly #server: Server = createServer((request, response) => this.#handle(request, response))
  url = ''

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  seqs(): number[] {
    return this.received.map((r) => r.seq)
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const batch = JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')) as {
        seq: number
      }
      const attempt = this.received.filter((r) => r.seq === batch.seq).length
      this.received.push({
        seq: batch.seq,
        path: request.url ?? '',
        authorization: request.headers.authorization,
      })
      const answer = this.answer(batch.seq, attempt)
      response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers })
      response.end(JSON.stringify({ error: 'e', message: 'm' }))
    })
  }
}

function batch(seq: number): RestrictedBatch {
  return {
    version: 1,
    agent_id: 'a-0123456789abcdef',
    grant_id: 'g-1',
    seq,
    flows: [],
    dns: [],
    web: [],
    pcap: [],
  }
}

interface Warning {
  fields: object
  message: string
}

let collector: FakeCollector
let warnings: Warning[]
let clock: number

function uploader(): RestrictedUploader {
  return new RestrictedUploader({
    collectorUrl: collector.url,
    credential: CREDENTIAL,
    timeoutMs: 10_000,
    log: { warn: (fields: object, message: string) => warnings.push({ fields, message }) } as never,
    now: () => clock,
  })
}

beforeEach(async () => {
  collector = new FakeCollector()
  await collector.start()
  warnings = []
  clock = 1_000_000
})

afterEach(async () => {
  await collector.stop()
})

describe('RestrictedUploader', () => {
  it('sends each batch once, oldest first, with the credential, to the tier I ingest', async () => {
    const up = uploader()
    await up.send([batch(1), batch(2)])
    expect(collector.seqs()).toEqual([1, 2])
    expect(collector.received[0]).toMatchObject({
      path: '/v1/restricted/ingest',
      authorization: `Bearer ${CREDENTIAL}`,
    })
    expect(up.pending).toBe(0)
    await up.send([])
    expect(collector.seqs()).toEqual([1, 2])
  })

  it('discards a batch the collector refuses (403) and says so', async () => {
    collector.answer = (seq) => ({ status: seq === 1 ? 403 : 200 })
    const up = uploader()
    await up.send([batch(1), batch(2)])
    expect(up.pending).toBe(0)
    await up.send([])
    expect(collector.seqs()).toEqual([1, 2])
    expect(warnings.map((w) => w.message)).toEqual(['tier I batch refused; discarded'])
  })

  it('keeps a batch answered 401 (credential refused) and sends it again, as the sender does', async () => {
    collector.answer = (_, attempt) => ({ status: attempt === 0 ? 401 : 200 })
    const up = uploader()
    await up.send([batch(1)])
    expect(up.pending).toBe(1)
    expect(warnings[0]?.message).toMatch(/credential was refused; will retry/)
    await up.send([])
    expect(collector.seqs()).toEqual([1, 1])
    expect(up.pending).toBe(0)
  })

  it('holds every upload back until a Retry-After has passed, then sends them in order', async () => {
    collector.answer = (seq, attempt) =>
      seq === 1 && attempt === 0
        ? { status: 503, headers: { 'retry-after': '120' } }
        : { status: 200 }
    const up = uploader()
    await up.send([batch(1), batch(2)])
    // The first answer said wait: the second batch is not tried in the same round.
    expect(collector.seqs()).toEqual([1])
    expect(up.pending).toBe(2)

    clock += 119_000
    await up.send([batch(3)])
    expect(collector.seqs()).toEqual([1])
    expect(up.pending).toBe(3)

    clock += 1_000
    await up.send([])
    expect(collector.seqs()).toEqual([1, 1, 2, 3])
    expect(up.pending).toBe(0)
  })

  it('keeps a batch on a 5xx without Retry-After and on a redirect, trying the rest', async () => {
    collector.answer = (seq, attempt) => {
      if (attempt > 0) return { status: 200 }
      if (seq === 1) return { status: 500 }
      return { status: 307, headers: { location: 'http://127.0.0.1:1/' } }
    }
    const up = uploader()
    await up.send([batch(1), batch(2)])
    expect(collector.seqs()).toEqual([1, 2])
    expect(up.pending).toBe(2)
    await up.send([])
    expect(collector.seqs()).toEqual([1, 2, 1, 2])
    expect(up.pending).toBe(0)
  })

  it(`keeps at most ${MAX_PENDING} batches when the collector cannot be reached`, async () => {
    await collector.stop()
    const up = uploader()
    const many = Array.from({ length: MAX_PENDING + 3 }, (_, i) => batch(i + 1))
    await up.send(many)
    expect(up.pending).toBe(MAX_PENDING)
    expect(warnings[0]).toMatchObject({
      fields: { dropped: 3 },
      message: 'tier I batches dropped: the collector did not take them in time',
    })
    collector = new FakeCollector()
    await collector.start()
  })
})
