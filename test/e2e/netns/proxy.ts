/**
 * A recording HTTP proxy for end-to-end tests: put between an agent and a collector (the agent's
 * collector URL points at it), it forwards every request unchanged and keeps a copy of every
 * request, its body gunzipped when it was sent gzip'd.
 */
import { createServer, request as httpRequest, type Server } from 'node:http'
import { gunzipSync } from 'node:zlib'

export interface RecordedRequest {
  method: string
  url: string
  /** The request body as the collector reads it (gunzipped), as text. */
  body: string
}

export class RecordingProxy {
  readonly records: RecordedRequest[] = []
  readonly #server: Server
  readonly #target: URL
  url = ''

  private constructor(target: string) {
    this.#target = new URL(target)
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const raw = Buffer.concat(chunks)
        const gzipped = /gzip/i.test(String(req.headers['content-encoding'] ?? ''))
        let body: string
        try {
          body = (gzipped ? gunzipSync(raw) : raw).toString('utf8')
        } catch {
          body = raw.toString('utf8')
        }
        this.records.push({ method: req.method ?? '', url: req.url ?? '', body })
        const headers = { ...req.headers, host: this.#target.host }
        const upstream = httpRequest(
          {
            host: this.#target.hostname,
            port: this.#target.port,
            method: req.method,
            path: req.url,
            headers,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers)
            answer.pipe(res)
          },
        )
        upstream.on('error', (error) => {
          res.writeHead(502, { 'content-type': 'text/plain' })
          res.end(`proxy: ${error.message}`)
        })
        upstream.end(raw)
      })
    })
  }

  static async start(target: string): Promise<RecordingProxy> {
    const proxy = new RecordingProxy(target)
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve))
    const address = proxy.#server.address()
    if (typeof address !== 'object' || address === null) throw new Error('proxy has no port')
    proxy.url = `http://127.0.0.1:${address.port}`
    return proxy
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
