/**
 * Sends tier I batches to the collector (POST /v1/restricted/ingest), oldest first. Nothing tier
 * I touches the disk: a batch that cannot be sent waits in memory, at most MAX_PENDING of them,
 * and is lost if the agent stops.
 *
 * The collector's answer is read by the same rules as the spool's sender (answer.ts): a refusal
 * (grant revoked, case closed, outside the window) is final and the batch goes; a 401 keeps the
 * batch, since an operator may restore the credential; a Retry-After holds every upload back
 * until it has passed; anything else is tried again at the next send.
 */
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'
import type { Logger } from 'pino'
import type { RestrictedBatch } from '../../protocol/grants.ts'
import { agentFetch } from '../http.ts'
import { classifyAnswer, describeError } from './answer.ts'

const compress = promisify(gzip)
/** Batches kept for a retry when the collector cannot take them. */
export const MAX_PENDING = 32

export interface RestrictedUploaderOptions {
  collectorUrl: string
  /** The agent's bearer credential. */
  credential: string
  timeoutMs: number
  log: Pick<Logger, 'warn'>
  /** Wall clock, for Retry-After; injectable so tests need not wait. */
  now?: () => number
}

/** What to do with a batch after one attempt. */
type Attempt = 'sent' | 'kept' | 'held-back'

export class RestrictedUploader {
  readonly #options: RestrictedUploaderOptions
  readonly #now: () => number
  #pending: RestrictedBatch[] = []
  /** No upload before this time (ms): the collector's last Retry-After. */
  #notBefore = 0

  constructor(options: RestrictedUploaderOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
  }

  /** Batches waiting for a retry. */
  get pending(): number {
    return this.#pending.length
  }

  /** Queues `batches` after those waiting, then sends what the collector lets it send now. */
  async send(batches: readonly RestrictedBatch[]): Promise<void> {
    this.#pending.push(...batches)
    if (this.#pending.length > MAX_PENDING) {
      const dropped = this.#pending.splice(0, this.#pending.length - MAX_PENDING)
      this.#options.log.warn(
        { dropped: dropped.length },
        'tier I batches dropped: the collector did not take them in time',
      )
    }
    const left: RestrictedBatch[] = []
    for (const [i, batch] of this.#pending.entries()) {
      const attempt = this.#now() < this.#notBefore ? 'held-back' : await this.#post(batch)
      if (attempt === 'held-back') {
        left.push(...this.#pending.slice(i))
        break
      }
      if (attempt === 'kept') left.push(batch)
    }
    this.#pending = left
  }

  async #post(batch: RestrictedBatch): Promise<Attempt> {
    const { collectorUrl, credential, timeoutMs, log } = this.#options
    let status: number
    let answer: ReturnType<typeof classifyAnswer>
    let text: string
    try {
      const response = await agentFetch(new URL('/v1/restricted/ingest', collectorUrl), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${credential}`,
          'content-type': 'application/json',
          'content-encoding': 'gzip',
        },
        body: await compress(JSON.stringify(batch)),
        // Following a redirect would resend the credential somewhere the operator did not name.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      })
      status = response.status
      answer = classifyAnswer(status, response.headers)
      text = await response.text()
    } catch (err) {
      log.warn(
        { err: describeError(err), grant_id: batch.grant_id },
        'tier I batch not sent; will retry',
      )
      return 'kept'
    }
    const said = { status, grant_id: batch.grant_id, answer: text.slice(0, 300) }
    switch (answer.kind) {
      case 'accepted':
        return 'sent'
      case 'refused':
        log.warn(said, 'tier I batch refused; discarded')
        return 'sent'
      case 'credential-rejected':
        log.warn(said, 'tier I batch not taken: the credential was refused; will retry')
        return 'kept'
      case 'redirected':
        log.warn(said, 'tier I batch redirected: check the collector URL; will retry')
        return 'kept'
      case 'retry':
        if (answer.retryAfterMs === undefined) return 'kept'
        this.#notBefore = this.#now() + answer.retryAfterMs
        return 'held-back'
    }
  }
}
