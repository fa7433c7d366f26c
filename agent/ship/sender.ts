/**
 * Drains the spool to the collector: oldest record first, removed only once acknowledged.
 *
 * A `seq_conflict` answer (409: the collector holds other batches under these numbers, after a
 * lost next-seq file) renumbers every waiting record after the collector's last seq and sends
 * again; nothing is discarded. A batch whose interval a backwards clock step broke is repaired
 * before it is sent (see batch-body.ts). A batch the collector refuses for good (another 4xx,
 * such as 422 `implausible_time`) is removed and counted as rejected.
 *
 * Failures back off exponentially with full jitter (the wait is uniform in [0, cap], cap doubling
 * from `baseDelayMs` up to `maxDelayMs`) so that agents cut off by the same outage do not all come
 * back at the same instant; the cap resets after the collector answers.
 */
import { ErrorBody, IngestAck, SeqConflict } from '../../protocol/v1.ts'
import { type AgentResponse, agentFetch } from '../http.ts'
import { classifyAnswer, describeError, type UploadAnswer } from './answer.ts'
import { repairInterval, withSeq } from './batch-body.ts'
import type { Spool, SpoolRecord } from './spool.ts'

export type DeliveryOutcome =
  | { kind: 'acknowledged' }
  /** A 4xx other than 401/408/429 and seq_conflict: sending it again will never succeed. */
  | { kind: 'rejected'; status: number; message: string }
  /** 409 seq_conflict: the collector's numbering for this agent ends at `lastSeq`. */
  | { kind: 'conflict'; lastSeq: number; message: string }
  /** 401: the credential is revoked or unknown; an operator may fix it, so keep retrying slowly. */
  | { kind: 'unauthorized'; message: string }
  /** Network error, timeout, 5xx, 408, 429, or an answer that is not a matching IngestAck. */
  | { kind: 'retry'; message: string; retryAfterMs?: number }

export type Deliver = (record: SpoolRecord) => Promise<DeliveryOutcome>

export interface HttpDeliverOptions {
  ingestUrl: string
  credential: string
  timeoutMs?: number
}

const DEFAULT_TIMEOUT_MS = 30_000
const MAX_MESSAGE_CHARS = 500

/** Delivers a record over HTTP; never throws, every failure is an outcome. */
export function httpDeliver(options: HttpDeliverOptions): Deliver {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  return async (record) => {
    let status: number
    let headers: AgentResponse['headers']
    let text: string
    try {
      const response = await agentFetch(options.ingestUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          authorization: `Bearer ${options.credential}`,
        },
        body: record.body,
        // Following a redirect would resend the credential somewhere the operator did not name.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      })
      status = response.status
      headers = response.headers
      text = await response.text()
    } catch (error) {
      return { kind: 'retry', message: describeError(error) }
    }

    const answer = classifyAnswer(status, headers)
    if (answer.kind === 'accepted') return acknowledgement(status, text, record.seq)
    if (status === 409) {
      const conflict = SeqConflict.safeParse(parseJson(text))
      if (conflict.success) {
        const { error, message: said, last_seq } = conflict.data
        return { kind: 'conflict', lastSeq: last_seq, message: clip(`HTTP 409 ${error}: ${said}`) }
      }
    }
    return failureOutcome(status, errorMessage(status, text), answer)
  }
}

/** A 2xx counts only with an IngestAck for this very record. */
function acknowledgement(status: number, text: string, seq: number): DeliveryOutcome {
  const ack = IngestAck.safeParse(parseJson(text))
  if (!ack.success) {
    return { kind: 'retry', message: `HTTP ${status} without an IngestAck: ${clip(text)}` }
  }
  if (ack.data.seq !== seq) {
    return {
      kind: 'retry',
      message: `HTTP ${status} acknowledged seq ${ack.data.seq} instead of ${seq}`,
    }
  }
  return { kind: 'acknowledged' }
}

/** The outcome of an answer other than a 2xx or a seq_conflict. */
function failureOutcome(
  status: number,
  message: string,
  answer: Exclude<UploadAnswer, { kind: 'accepted' }>,
): DeliveryOutcome {
  switch (answer.kind) {
    case 'credential-rejected':
      return { kind: 'unauthorized', message }
    case 'refused':
      return { kind: 'rejected', status, message }
    case 'redirected': {
      const to = answer.location ? ` to ${clip(answer.location)}` : ''
      return { kind: 'retry', message: `HTTP ${status} redirect${to}: check the ingest URL` }
    }
    case 'retry':
      return answer.retryAfterMs === undefined
        ? { kind: 'retry', message }
        : { kind: 'retry', message, retryAfterMs: answer.retryAfterMs }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS)}…` : text
}

function errorMessage(status: number, text: string): string {
  const body = ErrorBody.safeParse(parseJson(text))
  if (body.success) {
    const issues = body.data.issues?.map((issue) => `${issue.path}: ${issue.message}`) ?? []
    const detail = issues.length > 0 ? ` (${issues.join('; ')})` : ''
    return clip(`HTTP ${status} ${body.data.error}: ${body.data.message}${detail}`)
  }
  return clip(`HTTP ${status}${text ? `: ${text}` : ''}`)
}

export type SenderEvent =
  | { kind: 'acknowledged'; seq: number }
  /** The waiting records now carry `first`..`last`, after the collector's `lastSeq`. */
  | { kind: 'renumbered'; seq: number; lastSeq: number; count: number; first: number; last: number }
  /** Said once per record: its interval ended before it started, and was rebuilt. */
  | {
      kind: 'repaired'
      seq: number
      was: { start: number; end: number }
      now: { start: number; end: number }
    }
  | { kind: 'rejected'; seq: number; status: number; message: string }
  | { kind: 'failure'; seq: number; message: string; delayMs: number }

export interface SenderOptions {
  spool: Spool
  deliver: Deliver
  baseDelayMs?: number
  maxDelayMs?: number
  onEvent?: (event: SenderEvent) => void
  /** Uniform in [0, 1); injectable so tests can pin the jitter. */
  random?: () => number
  /**
   * The agent's interval: a record whose interval is broken (end not after start) is sent with
   * its start set to end minus this. Without it records are sent as they are.
   */
  nominalIntervalMs?: number
}

const DEFAULT_BASE_DELAY_MS = 500
const DEFAULT_MAX_DELAY_MS = 60_000

/** Resolves after `ms`, or as soon as `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

export class Sender {
  readonly #spool: Spool
  readonly #deliver: Deliver
  readonly #baseDelayMs: number
  readonly #maxDelayMs: number
  readonly #onEvent: (event: SenderEvent) => void
  readonly #random: () => number
  readonly #nominalIntervalMs: number | undefined
  /** Records whose repair was already reported, so each is logged once. */
  readonly #repairsNoted = new Set<number>()
  #failures = 0
  #rejected = 0
  /** Failures since the collector last answered; sets the backoff cap. */
  #consecutiveFailures = 0
  /** Only one loop may deliver at a time, or records would be sent twice concurrently. */
  #active = false
  /** Set by wake() so a wake between "spool is empty" and "go idle" is not lost. */
  #wakePending = false
  #endIdle: (() => void) | undefined

  constructor(options: SenderOptions) {
    this.#spool = options.spool
    this.#deliver = options.deliver
    this.#baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS
    this.#maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS
    this.#onEvent = options.onEvent ?? (() => {})
    this.#random = options.random ?? Math.random
    this.#nominalIntervalMs = options.nominalIntervalMs
  }

  /** Delivery failures since start: network errors, retryable answers, 401s. */
  get failures(): number {
    return this.#failures
  }

  /** Batches the collector refused for good since start (the spool keeps the lasting count). */
  get rejected(): number {
    return this.#rejected
  }

  /** A record was appended: start sending now if idle. Does not cut a backoff short. */
  wake(): void {
    this.#wakePending = true
    this.#endIdle?.()
  }

  /**
   * Sends until `signal` aborts; resolves once the in-flight delivery has settled (an ack that
   * arrives then still removes its record). Rejects only if the spool itself fails (disk errors).
   */
  async run(signal: AbortSignal): Promise<void> {
    this.#claim('run()')
    try {
      while (!signal.aborted) {
        this.#wakePending = false
        const record = await this.#spool.oldest()
        if (!record) {
          if (!this.#wakePending) await this.#idle(signal)
          continue
        }
        const delayMs = await this.#attempt(record)
        if (delayMs > 0) await sleep(delayMs, signal)
      }
    } finally {
      this.#active = false
    }
  }

  /**
   * Sends everything it can within `deadlineMs` milliseconds from now, for shutdown: returns when
   * the spool is empty, or when the time is up or the next backoff would outlast it. Call it
   * after run() has resolved. A delivery still in flight at the deadline is left to finish.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.#claim('drain()')
    const deadline = Date.now() + deadlineMs
    try {
      for (;;) {
        const remaining = deadline - Date.now()
        if (remaining <= 0) return
        const record = await this.#spool.oldest()
        if (!record) return
        const delayMs = await this.#withinDeadline(this.#attempt(record), deadline)
        if (delayMs === undefined) return
        if (delayMs > 0) {
          if (Date.now() + delayMs >= deadline) return
          await sleep(delayMs)
        }
      }
    } finally {
      this.#active = false
    }
  }

  #claim(caller: string): void {
    if (this.#active) throw new Error(`${caller} while the sender is already sending`)
    this.#active = true
  }

  /** Delivers one record and acts on the outcome; returns how long to wait before the next. */
  async #attempt(record: SpoolRecord): Promise<number> {
    let outcome: DeliveryOutcome
    try {
      outcome = await this.#deliver(this.#repaired(record))
    } catch (error) {
      outcome = { kind: 'retry', message: error instanceof Error ? error.message : String(error) }
    }
    switch (outcome.kind) {
      case 'acknowledged':
        await this.#spool.remove(record.seq)
        this.#repairsNoted.delete(record.seq)
        this.#consecutiveFailures = 0
        this.#onEvent({ kind: 'acknowledged', seq: record.seq })
        return 0
      case 'rejected':
        // Out of the way, so one bad batch cannot block every later one.
        await this.#spool.reject(record.seq)
        this.#repairsNoted.delete(record.seq)
        this.#rejected += 1
        this.#consecutiveFailures = 0
        this.#onEvent({
          kind: 'rejected',
          seq: record.seq,
          status: outcome.status,
          message: outcome.message,
        })
        return 0
      case 'conflict':
        return this.#renumber(record.seq, outcome)
      case 'unauthorized':
        return this.#failed(record.seq, `unauthorized: ${outcome.message}`, 0)
      case 'retry':
        return this.#failed(record.seq, outcome.message, outcome.retryAfterMs ?? 0)
    }
  }

  /** The record as it should be sent: with its interval rebuilt if a clock step broke it. */
  #repaired(record: SpoolRecord): SpoolRecord {
    if (this.#nominalIntervalMs === undefined) return record
    const repair = repairInterval(record.body, this.#nominalIntervalMs)
    if (!repair) return record
    if (!this.#repairsNoted.has(record.seq)) {
      this.#repairsNoted.add(record.seq)
      this.#onEvent({ kind: 'repaired', seq: record.seq, was: repair.was, now: repair.now })
    }
    return { seq: record.seq, body: repair.body }
  }

  /** Resumes numbering after the collector's last seq; every waiting record is kept. */
  async #renumber(seq: number, conflict: { lastSeq: number; message: string }): Promise<number> {
    // A collector whose last seq is below the one it says conflicts contradicts itself:
    // renumbering could not help, so wait and ask again rather than loop.
    if (conflict.lastSeq < seq) {
      return this.#failed(seq, `${conflict.message} (last_seq ${conflict.lastSeq})`, 0)
    }
    let result: { count: number; first: number; last: number }
    try {
      result = await this.#spool.renumber(conflict.lastSeq + 1, withSeq)
    } catch (error) {
      return this.#failed(
        seq,
        `renumbering the spool failed: ${error instanceof Error ? error.message : String(error)}`,
        0,
      )
    }
    this.#repairsNoted.clear()
    this.#consecutiveFailures = 0
    this.#onEvent({ kind: 'renumbered', seq, lastSeq: conflict.lastSeq, ...result })
    return 0
  }

  #failed(seq: number, message: string, retryAfterMs: number): number {
    this.#failures += 1
    const cap = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** this.#consecutiveFailures)
    this.#consecutiveFailures += 1
    const delayMs = Math.max(Math.floor(this.#random() * cap), retryAfterMs)
    this.#onEvent({ kind: 'failure', seq, message, delayMs })
    return delayMs
  }

  #idle(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve()
      const done = (): void => {
        signal.removeEventListener('abort', done)
        if (this.#endIdle === done) this.#endIdle = undefined
        resolve()
      }
      this.#endIdle = done
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /** The attempt's delay, or undefined if the deadline came first. */
  async #withinDeadline(attempt: Promise<number>, deadline: number): Promise<number | undefined> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), undefined)
    })
    try {
      return await Promise.race([attempt, timeout])
    } finally {
      clearTimeout(timer)
    }
  }
}
