/**
 * The agent's HTTP client (agent/http.ts) against a real server on loopback: what it sends, what
 * it answers, that it never follows a redirect, that a signal stops it, and that using it loads
 * no undici (the global fetch's 15-18 MB of resident memory in a running agent).
 */
import { execFile } from 'node:child_process'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentFetch } from '../../agent/http.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const execFileAsync = promisify(execFile)

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: Buffer
}

describe('agentFetch', () => {
  let server: Server
  let base = ''
  const seen: Seen[] = []

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks),
        })
        if (req.url === '/redirect') {
          res.writeHead(307, { location: '/elsewhere' }).end('moved')
        } else if (req.url === '/slow') {
          // Never answers: the caller's signal must end the wait.
        } else if (req.url === '/cut') {
          res.writeHead(200, { 'content-length': '100' })
          res.write('{"partial":')
          setTimeout(() => res.socket?.destroy(), 20)
        } else {
          res.writeHead(201, { 'content-type': 'application/json', 'retry-after': '7' })
          res.end(JSON.stringify({ ok: true, path: req.url }))
        }
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })

  it('sends the method, headers and body, and gives the status, headers and text', async () => {
    const body = gzipSync(JSON.stringify({ seq: 1 }))
    const response = await agentFetch(`${base}/v1/ingest?x=1`, {
      method: 'POST',
      headers: { authorization: 'Bearer t', 'content-encoding': 'gzip' },
      body,
    })
    expect(response.status).toBe(201)
    expect(response.ok).toBe(true)
    expect(response.headers.get('Retry-After')).toBe('7')
    expect(response.headers.get('x-absent')).toBeNull()
    expect(await response.json()).toEqual({ ok: true, path: '/v1/ingest?x=1' })
    const request = seen.at(-1) as Seen
    expect(request).toMatchObject({ method: 'POST', url: '/v1/ingest?x=1' })
    expect(request.headers).toMatchObject({
      authorization: 'Bearer t',
      'content-encoding': 'gzip',
      'content-length': String(body.length),
    })
    expect(JSON.parse(gunzipSync(request.body).toString())).toEqual({ seq: 1 })
  })

  it('does not follow a redirect: the caller sees it', async () => {
    const before = seen.length
    const response = await agentFetch(new URL('/redirect', base), { redirect: 'manual' })
    expect(response.status).toBe(307)
    expect(response.ok).toBe(false)
    expect(response.headers.get('location')).toBe('/elsewhere')
    expect(seen.slice(before).map((s) => s.url)).toEqual(['/redirect'])
  })

  it("fails with the signal's reason when it times out", async () => {
    await expect(
      agentFetch(`${base}/slow`, { signal: AbortSignal.timeout(200) }),
    ).rejects.toMatchObject({ name: 'TimeoutError' })
  })

  it('fails on an answer cut off half way, and on a refused connection', async () => {
    await expect(agentFetch(`${base}/cut`)).rejects.toThrow()
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const port = (closed.address() as AddressInfo).port
    await new Promise((r) => closed.close(r))
    await expect(agentFetch(`http://127.0.0.1:${port}/`)).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    })
  })

  it('refuses a URL that is not http or https', async () => {
    await expect(agentFetch('ftp://127.0.0.1/')).rejects.toThrow(/only http: and https:/)
  })

  it('loads no undici (the global fetch) in the process that uses it', async () => {
    // A process of its own: vitest itself may have loaded undici in this one.
    const script = [
      `import { agentFetch } from ${JSON.stringify(`${ROOT}agent/http.ts`)}`,
      `const r = await agentFetch(${JSON.stringify(`${base}/probe`)}, { method: 'POST', body: 'x' })`,
      'await r.text()',
      "const undici = process.moduleLoadList.filter((m) => m.includes('undici'))",
      'console.log(JSON.stringify({ status: r.status, undici }))',
    ].join('\n')
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script])
    expect(JSON.parse(stdout)).toEqual({ status: 201, undici: [] })
  })
})
