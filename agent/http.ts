/**
 * The agent's HTTP client: the part of `fetch` the agent uses (one request, its status, headers
 * and text), on node:http and node:https.
 *
 * Why not the global fetch: it is undici, which Node loads on first use with its WebAssembly HTTP
 * parser, its web streams and its own copy of most of the web platform. For an agent that sends
 * one small request every interval that costs 15-18 MB of resident memory, more than everything
 * else the agent loads together (bench/README.md, "Agent footprint"). Static `import ... from
 * 'node:http'` is avoided too: the ES module form of node:http reads every export, and one of them
 * loads undici all the same. `process.getBuiltinModule` gives the CommonJS module alone.
 *
 * Semantics kept from how the agent called fetch: redirects are never followed (the caller sees
 * the 3xx and its Location, as with `redirect: 'manual'`), `signal` aborts the request and the
 * reading of its answer, and a gzip'd body goes as given (the caller sets content-encoding).
 */
import type * as Http from 'node:http'

export interface AgentRequestInit {
  method?: string
  headers?: Record<string, string>
  body?: string | Uint8Array
  signal?: AbortSignal
  /** Accepted for compatibility with fetch's options: this client never follows a redirect. */
  redirect?: 'manual'
}

export interface AgentResponse {
  readonly status: number
  readonly ok: boolean
  readonly headers: { get(name: string): string | null }
  text(): Promise<string>
  json(): Promise<unknown>
}

/** What the agent needs of fetch; the global fetch satisfies it too (tests pass their own). */
export type AgentFetch = (url: string | URL, init?: AgentRequestInit) => Promise<AgentResponse>

/** An answer larger than this is cut off and fails: the collector's answers are small. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024

type HttpModule = Pick<typeof Http, 'request'>

function transport(protocol: string): HttpModule {
  if (protocol === 'http:') return process.getBuiltinModule('node:http')
  if (protocol === 'https:') return process.getBuiltinModule('node:https')
  throw new TypeError(`unsupported protocol ${protocol} (only http: and https:)`)
}

export const agentFetch: AgentFetch = (url, init = {}) => {
  const target = new URL(url)
  return new Promise<AgentResponse>((resolve, fail) => {
    const { signal } = init
    // As fetch does: an aborted request fails with the signal's reason (a TimeoutError for
    // AbortSignal.timeout), not with the socket's own error.
    const reject = (error: unknown) => fail(signal?.aborted ? signal.reason : error)
    if (signal?.aborted) {
      reject(undefined)
      return
    }
    const body = init.body === undefined ? undefined : Buffer.from(init.body)
    const headers: Record<string, string> = { ...init.headers }
    if (body !== undefined) headers['content-length'] = String(body.length)
    const request = transport(target.protocol).request(
      target,
      { method: init.method ?? 'GET', headers, ...(signal === undefined ? {} : { signal }) },
      (answer) => {
        const chunks: Buffer[] = []
        let size = 0
        answer.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_ANSWER_BYTES) {
            answer.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`))
            return
          }
          chunks.push(chunk)
        })
        answer.once('error', reject)
        // Cut off without an error (the connection closed mid-answer): not a whole answer.
        answer.once('close', () => {
          if (!answer.complete) reject(new Error('the answer was cut off'))
        })
        answer.once('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          const status = answer.statusCode ?? 0
          resolve({
            status,
            ok: status >= 200 && status < 300,
            headers: {
              get(name) {
                const value = answer.headers[name.toLowerCase()]
                if (value === undefined) return null
                return Array.isArray(value) ? value.join(', ') : value
              },
            },
            text: async () => text,
            json: async () => JSON.parse(text) as unknown,
          })
        })
      },
    )
    request.once('error', reject)
    request.end(body)
  })
}
