/**
 * The agent's part in investigations: each interval it asks the collector which grants to run,
 * runs a subject capture for each grant it can verify with its pinned key, stops those no longer
 * listed, and sends the interval's tier I records. Nothing tier I touches the disk: records that
 * cannot be sent wait in memory (a few intervals at most) and are lost if the agent stops.
 */
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'
import type { Logger } from 'pino'
import type { RestrictedBatch } from '../protocol/grants.ts'
import type { AgentCredential } from './enroll.ts'
import { type GrantDrain, GrantManager } from './grants/manager.ts'
import { agentFetch } from './http.ts'
import { RegisterHeadWatch } from './register-head.ts'
import { SequenceCounter } from './sequence.ts'
import { hostAddresses, subjectCaptureFactory } from './subject/subject-capture.ts'

const compress = promisify(gzip)
/** Batches kept for a retry when the collector cannot take them. */
const MAX_PENDING = 32

export interface InvestigationOptions {
  collectorUrl: string
  credential: AgentCredential
  stateDir: string
  /** Where subject captures listen: the aggregate capture's interface, or 'any'. */
  interface: string
  tcpdumpPath: string
  timeoutMs: number
  log: Logger
}

export class Investigations {
  readonly #options: InvestigationOptions
  readonly #manager: GrantManager
  readonly #sequence: SequenceCounter
  readonly #registerHead: RegisterHeadWatch
  #pending: RestrictedBatch[] = []

  constructor(options: InvestigationOptions) {
    this.#options = options
    this.#sequence = new SequenceCounter(options.stateDir, 1, 'next-restricted-seq')
    this.#registerHead = new RegisterHeadWatch(options.stateDir, options.log)
    this.#manager = new GrantManager({
      registerHead: this.#registerHead,
      agentId: options.credential.agent_id,
      pinnedKey: options.credential.grant_public_key,
      createCapture: subjectCaptureFactory({
        interface: options.interface,
        hostAddresses: hostAddresses(),
        tcpdumpPath: options.tcpdumpPath,
      }),
      log: options.log,
    })
  }

  /** 1 while the register head the collector gives does not extend the kept one (health). */
  get registerInconsistent(): number {
    return this.#registerHead.inconsistent ? 1 : 0
  }

  /** The grants being run now (for the agent's health and the tests). */
  get active(): number {
    return this.#manager.grants.length
  }

  /** One interval: follow the collector's listing, then send what the captures recorded. */
  async interval(nowMs: number): Promise<void> {
    const { collectorUrl, credential, timeoutMs } = this.#options
    const refreshed = await this.#manager.refresh(collectorUrl, credential.credential, nowMs, {
      timeoutMs,
    })
    if (refreshed.ok) {
      const { started, revoked, ended, rejected } = refreshed.report
      if (started.length + revoked.length + ended.length + rejected.length > 0) {
        this.#options.log.info({ started, revoked, ended, rejected }, 'grants reconciled')
      }
    }
    await this.#send(this.#manager.drain(nowMs))
  }

  /** Stops every subject capture and sends what they still held. */
  async stop(): Promise<void> {
    await this.#manager.stopAll()
    await this.#send(this.#manager.drain(Date.now()))
  }

  async #send(drained: GrantDrain[]): Promise<void> {
    for (const { grant_id, records } of drained) {
      this.#pending.push({
        version: 1,
        agent_id: this.#options.credential.agent_id,
        grant_id,
        seq: this.#sequence.take(),
        flows: records.flows,
        dns: records.dns,
        web: records.web,
        pcap: records.pcap,
      })
    }
    if (this.#pending.length > MAX_PENDING) {
      const dropped = this.#pending.splice(0, this.#pending.length - MAX_PENDING)
      this.#options.log.warn(
        { dropped: dropped.length },
        'tier I batches dropped: the collector did not take them in time',
      )
    }
    const left: RestrictedBatch[] = []
    for (const batch of this.#pending) {
      const outcome = await this.#post(batch)
      if (outcome === 'retry') left.push(batch)
    }
    this.#pending = left
  }

  async #post(batch: RestrictedBatch): Promise<'done' | 'retry'> {
    const { collectorUrl, credential, timeoutMs, log } = this.#options
    try {
      const response = await agentFetch(new URL('/v1/restricted/ingest', collectorUrl), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${credential.credential}`,
          'content-type': 'application/json',
          'content-encoding': 'gzip',
        },
        body: await compress(JSON.stringify(batch)),
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      })
      if (response.ok) return 'done'
      const text = await response.text()
      // A refusal (grant revoked, case closed, outside the window) is final: the records go.
      if (
        response.status >= 400 &&
        response.status < 500 &&
        response.status !== 408 &&
        response.status !== 429
      ) {
        log.warn(
          { status: response.status, grant_id: batch.grant_id, answer: text.slice(0, 300) },
          'tier I batch refused; discarded',
        )
        return 'done'
      }
      return 'retry'
    } catch (err) {
      log.warn(
        { err: (err as Error).message, grant_id: batch.grant_id },
        'tier I batch not sent; will retry',
      )
      return 'retry'
    }
  }
}
