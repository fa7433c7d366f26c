/**
 * The agent's grants: which subject captures run, and nothing else.
 *
 * The collector lists the grants this agent must run now (GET /v1/agents/grants); anything not
 * listed must stop. `reconcile` applies one listing:
 *
 * - a listed token not running yet is verified (verifyGrant: pinned key, EdDSA, issuer,
 *   audience, type, strict claims, this agent, window not over) and its `jti` must equal the
 *   listed grant_id; then a subject capture starts for it (it waits for the window's start by
 *   itself). A token refused for good is logged once and not verified again; one refused only
 *   because its `nbf` is still ahead is tried again at the next listing;
 * - a running grant that is no longer listed (revoked, case closed), or listed with another
 *   token, is stopped at once and what it held but had not handed out is discarded: nothing is
 *   sent for a grant the collector withdrew;
 * - a grant whose window ended is stopped and drained one last time (its records up to the
 *   window's end are legitimate), also when the collector still lists it.
 *
 * If the listing cannot be fetched (`refresh`), the current grants go on unchanged (each still
 * ends with its window) and the failure is reported.
 */
import { AgentGrants } from '../../protocol/grants.ts'
import { AgentGrantsPoll } from '../../protocol/v1.ts'
import { type AgentFetch, type AgentResponse, agentFetch } from '../http.ts'
import type { HeadObservation, RegisterHeadWatch } from '../register-head.ts'
import { recordCount, type SubjectRecords } from '../subject/records.ts'
import type { SubjectCaptureHandle } from '../subject/subject-capture.ts'
import {
  GrantRejected,
  type GrantRejectionReason,
  type VerifiedGrant,
  verifyGrant,
} from './verify.ts'

/** The subset of a pino logger used here. */
export interface GrantLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export type CaptureFactory = (grant: VerifiedGrant) => SubjectCaptureHandle

export interface GrantManagerOptions {
  agentId: string
  /** The collector's grant public key (JWK), pinned at enrollment. */
  pinnedKey: Record<string, string>
  /** Makes (but does not start) the capture for a grant. */
  createCapture: CaptureFactory
  log?: GrantLog
  /**
   * Keeps ITSD's register head: each poll asks for the head and the proof that it extends the
   * kept one. Without it the poll asks for grants alone.
   */
  registerHead?: RegisterHeadWatch
}

export interface GrantDrain {
  grant_id: string
  case_id: string
  records: SubjectRecords
}

export interface ReconcileReport {
  started: string[]
  /** Stopped because they are no longer listed (or listed with another token). */
  revoked: string[]
  /** Stopped because their window ended. */
  ended: string[]
  rejected: { grant_id: string; reason: GrantRejectionReason | 'grant-id-mismatch' | 'capture' }[]
  /** Valid signatures whose `nbf` is still ahead: tried again at the next reconcile. */
  waiting: string[]
}

export class GrantFetchError extends Error {
  override name = 'GrantFetchError'
  /** HTTP status, when the collector answered. */
  readonly status: number | undefined
  constructor(message: string, status?: number) {
    super(message)
    this.status = status
  }
}

const silent: GrantLog = { info() {}, warn() {}, error() {} }
const MAX_REMEMBERED = 1_024

interface Closing {
  capture: SubjectCaptureHandle
  stopped: boolean
  /** Settles when tcpdump has exited (never rejects). */
  done: Promise<void>
}

export class GrantManager {
  readonly #agentId: string
  readonly #pinnedKey: Record<string, string>
  readonly #createCapture: CaptureFactory
  readonly #log: GrantLog
  readonly #registerHead: RegisterHeadWatch | undefined
  readonly #running = new Map<string, SubjectCaptureHandle>()
  /** Captures whose window ended (or stopAll): drained once more after tcpdump has exited. */
  readonly #closing: Closing[] = []
  /** Tokens refused for good, so that they are verified and logged once. */
  readonly #refused = new Map<string, string>()
  /** Tokens whose capture could not be made: logged once, tried again. */
  readonly #failed = new Set<string>()
  #queue: Promise<unknown> = Promise.resolve()

  constructor(options: GrantManagerOptions) {
    this.#agentId = options.agentId
    this.#pinnedKey = options.pinnedKey
    this.#createCapture = options.createCapture
    this.#log = options.log ?? silent
    this.#registerHead = options.registerHead
  }

  /** The grants with a capture (running, or waiting for their window's start). */
  get grants(): VerifiedGrant[] {
    return [...this.#running.values()].map((c) => c.grant)
  }

  /** Applies one listing of the grants to run now. Calls are serialised. */
  reconcile(
    tokens: readonly AgentGrants['grants'][number][],
    nowMs: number,
  ): Promise<ReconcileReport> {
    const next = this.#queue.then(() => this.#reconcile(tokens, nowMs))
    this.#queue = next.catch(() => {})
    return next
  }

  async #reconcile(
    tokens: readonly AgentGrants['grants'][number][],
    nowMs: number,
  ): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      started: [],
      revoked: [],
      ended: [],
      rejected: [],
      waiting: [],
    }
    const listed = new Map<string, string>()
    for (const { grant_id, token } of tokens) if (!listed.has(grant_id)) listed.set(grant_id, token)
    this.#followRunning(listed, nowMs, report)
    for (const [grantId, token] of listed) {
      if (this.#running.has(grantId) || this.#refused.has(token)) continue
      const grant = await this.#verify(grantId, token, nowMs, report)
      if (grant !== undefined) this.#start(grantId, token, grant, report)
    }
    return report
  }

  /** Stops the captures whose grant is no longer listed (or listed anew) or whose window ended. */
  #followRunning(
    listed: ReadonlyMap<string, string>,
    nowMs: number,
    report: ReconcileReport,
  ): void {
    for (const [id, capture] of this.#running) {
      if (listed.get(id) !== capture.grant.token) {
        this.#running.delete(id)
        capture.stop().catch(() => {})
        report.revoked.push(id)
        this.#log.info(
          { grant_id: id, case_id: capture.grant.caseId },
          'grant withdrawn: subject capture stopped, its undelivered records discarded',
        )
      } else if (nowMs >= capture.grant.window.end) {
        this.#end(id, capture)
        report.ended.push(id)
      }
    }
  }

  /** The listed token as a verified grant, or undefined (refused for good, or not yet valid). */
  async #verify(
    grantId: string,
    token: string,
    nowMs: number,
    report: ReconcileReport,
  ): Promise<VerifiedGrant | undefined> {
    let grant: VerifiedGrant
    try {
      grant = await verifyGrant(token, this.#pinnedKey, this.#agentId, nowMs)
    } catch (error) {
      const rejection =
        error instanceof GrantRejected ? error : new GrantRejected('malformed', String(error))
      if (rejection.reason === 'not-yet-valid') {
        report.waiting.push(grantId)
        return undefined
      }
      this.#refuse(token, grantId, rejection.reason, rejection.message)
      report.rejected.push({ grant_id: grantId, reason: rejection.reason })
      return undefined
    }
    if (grant.grantId !== grantId) {
      const message = `the token's id (jti) ${grant.grantId} is not the listed grant_id`
      this.#refuse(token, grantId, 'grant-id-mismatch', message)
      report.rejected.push({ grant_id: grantId, reason: 'grant-id-mismatch' })
      return undefined
    }
    return grant
  }

  /** Starts the grant's subject capture; a failure is logged once and tried again next time. */
  #start(grantId: string, token: string, grant: VerifiedGrant, report: ReconcileReport): void {
    let capture: SubjectCaptureHandle
    try {
      capture = this.#createCapture(grant)
      capture.start()
    } catch (error) {
      if (!this.#failed.has(token)) {
        this.#failed.add(token)
        this.#log.error(
          { grant_id: grantId, case_id: grant.caseId, err: (error as Error).message },
          'subject capture could not be started; will try again',
        )
      }
      report.rejected.push({ grant_id: grantId, reason: 'capture' })
      return
    }
    this.#failed.delete(token)
    this.#running.set(grantId, capture)
    report.started.push(grantId)
    this.#log.info(
      {
        grant_id: grantId,
        case_id: grant.caseId,
        categories: grant.categories,
        mode: grant.hostMode ? 'host' : 'gateway',
        window: grant.window,
      },
      'grant verified: subject capture started',
    )
  }

  #refuse(token: string, grantId: string, reason: string, message: string): void {
    if (this.#refused.size >= MAX_REMEMBERED) this.#refused.clear()
    this.#refused.set(token, reason)
    this.#log.warn({ grant_id: grantId, reason, err: message }, 'grant rejected; not acted on')
  }

  #end(id: string, capture: SubjectCaptureHandle, why = 'grant window ended'): void {
    this.#running.delete(id)
    const closing: Closing = { capture, stopped: false, done: Promise.resolve() }
    closing.done = capture
      .stop()
      .catch(() => {})
      .finally(() => {
        closing.stopped = true
      })
    this.#closing.push(closing)
    this.#log.info(
      { grant_id: id, case_id: capture.grant.caseId },
      `${why}: subject capture stopped`,
    )
  }

  /**
   * One interval's tier I records, per grant that has any. Grants whose window is over are
   * stopped here (and drained one last time once their tcpdump has exited).
   */
  drain(nowMs: number): GrantDrain[] {
    const out: GrantDrain[] = []
    const take = (capture: SubjectCaptureHandle) => {
      const records = capture.drain(nowMs)
      if (recordCount(records) > 0) {
        out.push({ grant_id: capture.grant.grantId, case_id: capture.grant.caseId, records })
      }
    }
    for (const [id, capture] of this.#running) {
      take(capture)
      if (nowMs >= capture.grant.window.end) this.#end(id, capture)
    }
    for (let i = this.#closing.length - 1; i >= 0; i--) {
      const closing = this.#closing[i] as Closing
      if (!closing.stopped) continue
      take(closing.capture)
      this.#closing.splice(i, 1)
    }
    return out
  }

  /** Stops every capture; a drain() afterwards hands out what they still held. */
  async stopAll(): Promise<void> {
    for (const [id, capture] of this.#running) this.#end(id, capture, 'agent stopping')
    await Promise.all(this.#closing.map((c) => c.done))
  }

  /**
   * Fetches the listing and reconciles it. When the listing cannot be had, the current grants
   * go on (each still ends with its window) and the error is returned and logged.
   */
  async refresh(
    collectorUrl: string,
    credential: string,
    nowMs: number,
    options: FetchGrantsOptions = {},
  ): Promise<
    { ok: true; report: ReconcileReport; register?: HeadObservation } | { ok: false; error: string }
  > {
    let listing: AgentGrantsPoll
    const watch = this.#registerHead
    try {
      listing = await fetchGrants(collectorUrl, credential, {
        ...options,
        ...(watch === undefined ? {} : { registerSize: watch.keptSize }),
      })
    } catch (error) {
      const message = (error as Error).message
      this.#log.warn({ err: message }, 'cannot fetch grants; current grants go on unchanged')
      return { ok: false, error: message }
    }
    let register: HeadObservation | undefined
    if (watch !== undefined) {
      try {
        register = await watch.observe(listing.register)
      } catch (error) {
        // The head could not be kept (a full state dir): the next poll proves from the old one.
        this.#log.warn({ err: (error as Error).message }, 'the register head was not kept')
      }
    }
    const report = await this.reconcile(listing.grants, nowMs)
    return { ok: true, report, ...(register === undefined ? {} : { register }) }
  }
}

export interface FetchGrantsOptions {
  timeoutMs?: number
  /** The size of the register head the agent kept (0: none): asks for the head with the grants. */
  registerSize?: number
  /** For tests; defaults to the agent's HTTP client. */
  fetch?: AgentFetch
}

/**
 * GET /v1/agents/grants with the agent's bearer credential. Rejects with GrantFetchError when
 * the collector cannot be reached, answers with an error, or answers something that is not an
 * AgentGrants listing.
 */
export async function fetchGrants(
  collectorUrl: string,
  credential: string,
  options: FetchGrantsOptions = {},
): Promise<AgentGrantsPoll> {
  const url = new URL('/v1/agents/grants', collectorUrl)
  if (options.registerSize !== undefined) {
    url.searchParams.set('register_size', String(options.registerSize))
  }
  const doFetch = options.fetch ?? agentFetch
  let response: AgentResponse
  try {
    response = await doFetch(url, {
      method: 'GET',
      headers: { authorization: `Bearer ${credential}`, accept: 'application/json' },
      signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    })
  } catch (error) {
    throw new GrantFetchError(`cannot reach the collector at ${url}: ${(error as Error).message}`)
  }
  const text = await response.text().catch(() => '')
  if (!response.ok) {
    throw new GrantFetchError(
      `the collector answered ${response.status} to ${url}: ${text.slice(0, 300)}`,
      response.status,
    )
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new GrantFetchError(`the collector's grant listing is not JSON`, response.status)
  }
  // An agent that did not ask for the register head accepts no field beyond the grants.
  const parsed = (options.registerSize === undefined ? AgentGrants : AgentGrantsPoll).safeParse(
    body,
  )
  if (!parsed.success) {
    throw new GrantFetchError(
      `the collector's grant listing is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      response.status,
    )
  }
  return parsed.data
}
