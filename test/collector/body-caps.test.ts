/**
 * Request bodies are capped before authentication on every route. In-process, every route of the
 * table gets 413 one byte over its cap (chunked, and announced by Content-Length), and not at its
 * cap; then a real collector process gets oversized enrollments with a bogus bearer and answers
 * 413 before the body is sent (so it cannot have read it), and its memory does not grow.
 */

import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bodyCaps, DEFAULT_CAP, type RouteKey } from '../../collector/body-caps.ts'
import { CollectorProcess, freePort, tmp } from '../e2e/harness.ts'
import { errorBody, type Harness, openHarness } from './harness.ts'

const CHUNK = 64 * 1024

/** A body of `size` bytes, streamed in chunks, with no Content-Length. */
function chunked(size: number, onRead?: () => void): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(CHUNK).fill(0x20)
  let sent = 0
  return new ReadableStream({
    pull(controller) {
      onRead?.()
      if (sent >= size) {
        controller.close()
        return
      }
      const n = Math.min(CHUNK, size - sent)
      controller.enqueue(n === CHUNK ? chunk : chunk.subarray(0, n))
      sent += n
    },
  })
}

const concrete = (key: RouteKey): { method: string; path: string } => {
  const [method = '', path = ''] = key.split(' ')
  return {
    method,
    path: path
      .replace('{id}', 'c-0000')
      .replace('{register}', 'itsd')
      .replace('{size}', '1')
      .replace('{export_id}', 'x'),
  }
}

describe('every route of the table, in-process', () => {
  let h: Harness
  beforeAll(async () => {
    h = await openHarness()
  })
  afterAll(async () => {
    await h?.close()
  })

  it('answers 413 one byte over the cap of each route, chunked, with no credentials', async () => {
    const caps = bodyCaps(h.config)
    for (const [key, cap] of Object.entries(caps) as [RouteKey, number][]) {
      const { method, path } = concrete(key)
      const res = await h.app.request(path, {
        method,
        headers: { 'content-type': 'application/json' },
        body: chunked(cap + 1),
        duplex: 'half',
      } as RequestInit)
      expect(res.status, key).toBe(413)
      const body = await errorBody(res)
      expect(body.error).toBe('body_too_large')
      expect(body.message).toContain(String(cap))
    }
  })

  it('answers 413 to a Content-Length over the cap without reading a byte', async () => {
    const caps = bodyCaps(h.config)
    for (const [key, cap] of Object.entries(caps) as [RouteKey, number][]) {
      const { method, path } = concrete(key)
      let read = 0
      const res = await h.app.request(path, {
        method,
        headers: {
          'content-type': 'application/json',
          'content-length': String(cap + 1),
          authorization: 'Bearer tly_a_bogus',
        },
        body: chunked(cap + 1, () => {
          read++
        }),
        duplex: 'half',
      } as RequestInit)
      expect(res.status, key).toBe(413)
      expect(read, `${key}: chunks pulled`).toBeLessThanOrEqual(1)
    }
  })

  it('lets a body at the cap through to authentication', async () => {
    const caps = bodyCaps(h.config)
    for (const [key, cap] of Object.entries(caps) as [RouteKey, number][]) {
      const { method, path } = concrete(key)
      const res = await h.app.request(path, {
        method,
        headers: { 'content-type': 'application/json', 'content-length': String(cap) },
        body: chunked(Math.min(cap, CHUNK)),
        duplex: 'half',
      } as RequestInit)
      expect(res.status, key).not.toBe(413)
      expect([400, 401], key).toContain(res.status)
    }
  })

  it('caps a route the table does not name at the default', async () => {
    const over = await h.app.request('/v1/admin/users/u-1/revoke', {
      method: 'POST',
      body: chunked(DEFAULT_CAP + 1),
      duplex: 'half',
    } as RequestInit)
    expect(over.status).toBe(413)
  })
})

describe('a real collector and oversized enrollments with a bogus bearer', () => {
  let collector: CollectorProcess
  beforeAll(async () => {
    collector = await new CollectorProcess(`${tmp('body-caps')}/data`, await freePort()).ready()
  })
  afterAll(async () => {
    await collector?.stop()
  })

  /**
   * Sends the headers and `first` bytes, then holds the body open: the answer must come while
   * the client has not sent the rest, so the collector cannot have waited for it.
   */
  function postHeld(
    headers: Record<string, string>,
    first: number,
  ): Promise<{ status: number; body: string }> {
    const url = new URL('/v1/agents/enroll', collector.url)
    return new Promise((resolve, reject) => {
      const req = httpRequest(url, {
        method: 'POST',
        headers: {
          authorization: 'Bearer tly_e_bogus',
          'content-type': 'application/json',
          ...headers,
        },
      })
      req.on('response', (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk
        })
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body })
          req.destroy()
        })
      })
      req.on('error', reject)
      // Far inside the test's timeout: without the cap the collector waits for the body forever.
      setTimeout(() => {
        req.destroy()
        reject(new Error('no answer while the body was held open'))
      }, 15_000).unref()
      req.write(Buffer.alloc(first, 0x20))
      // No end(): the rest never comes.
    })
  }

  it('answers 413 to a 1 MiB Content-Length before the body is sent', async () => {
    const answer = await postHeld({ 'content-length': String(1024 * 1024) }, 1024)
    expect(answer.status).toBe(413)
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'body_too_large' })
  })

  it('answers 413 to a chunked body once it passes the cap, with the stream still open', async () => {
    const answer = await postHeld({ 'transfer-encoding': 'chunked' }, 64 * 1024)
    expect(answer.status).toBe(413)
  })

  it('does not grow when large bodies are posted whole', async () => {
    const pid = collector.child.pid ?? 0
    const rss = () =>
      Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024
    const before = rss()
    const payload = Buffer.alloc(32 * 1024 * 1024, 0x20)
    for (let i = 0; i < 4; i++) {
      const status = await new Promise<number>((resolve) => {
        const req = httpRequest(new URL('/v1/agents/enroll', collector.url), {
          method: 'POST',
          headers: {
            authorization: 'Bearer tly_e_bogus',
            'content-type': 'application/json',
            'content-length': String(payload.length),
          },
        })
        req.on('response', (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        })
        // The collector may close the connection while the body is still going out.
        req.on('error', () => resolve(-1))
        req.end(payload)
      })
      expect([413, -1]).toContain(status)
    }
    // Four 32 MiB bodies read whole would add well over 32 MiB; refused unread, almost nothing.
    expect(rss() - before).toBeLessThan(24 * 1024 * 1024)
  })
})
