/**
 * The agent's part in investigations: each interval it asks the collector which grants to run,
 * runs a subject capture for each grant it can verify with its pinned key, stops those no longer
 * listed, and sends the interval's tier I records (ship/restricted-uploader.ts: in memory only).
 */
import type { Logger } from 'pino'
import type { AgentCredential } from './enroll.ts'
import { type GrantDrain, GrantManager } from './grants/manager.ts'
import { RegisterHeadWatch } from './register-head.ts'
import { SequenceCounter } from './sequence.ts'
import { RestrictedUploader } from './ship/restricted-uploader.ts'
import { hostAddresses, subjectCaptureFactory } from './subject/subject-capture.ts'

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
  readonly #uploader: RestrictedUploader

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
    this.#uploader = new RestrictedUploader({
      collectorUrl: options.collectorUrl,
      credential: options.credential.credential,
      timeoutMs: options.timeoutMs,
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
    await this.#uploader.send(
      drained.map(({ grant_id, records }) => ({
        version: 1,
        agent_id: this.#options.credential.agent_id,
        grant_id,
        seq: this.#sequence.take(),
        flows: records.flows,
        dns: records.dns,
        web: records.web,
        pcap: records.pcap,
      })),
    )
  }
}
