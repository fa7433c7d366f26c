/**
 * The bulletin's case workflow behind one facade, CaseService, for the routes and the tier I
 * service. Who may take each step, in which state, and what it leads to is one table
 * (transitions.ts); the steps apply it in families: request-steps.ts (8.4a request, 8.4b
 * emergency, 8.4d consultation, 8.4c approval or denial), notice-steps.ts (8.5a notice and
 * grants, 8.5f extension and closing), opening-steps.ts (8.2 technical, 9 OIOS cases, 9.2e
 * designations), and steps.ts for what they share, including the moves time makes (suspension,
 * expiry). Each step on a case runs under that case's lock: it reads, checks and writes the case
 * without another step on the same case in between, while other cases go on.
 */
import type { z } from 'zod'
import { KeyedMutex } from '../../common/mutex.ts'
import type {
  Approval,
  CaseRequest,
  Closing,
  Consultation,
  Denial,
  Designation,
  EmergencyConfirmation,
  EmergencyRequest,
  Extension,
  Notice,
  OiosOpening,
  TechnicalOpening,
} from '../../protocol/api/cases.ts'
import type { User } from '../auth/users.ts'
import { DomainError } from '../errors.ts'
import { CaseNotOnRecord } from './errors.ts'
import type { Case } from './model.ts'
import { close, extend, notice } from './notice-steps.ts'
import { checkDesignation, designate, openOios, openTechnical } from './opening-steps.ts'
import {
  approve,
  confirmEmergency,
  consult,
  deny,
  file,
  recordEmergency,
  writtenRequest,
} from './request-steps.ts'
import { type CaseServiceDeps, CaseSteps } from './steps.ts'
import { mayTake } from './transitions.ts'

export { CaseNotOnRecord } from './errors.ts'
export { recordMismatch } from './record-check.ts'
export type {
  CasePolicy,
  CaseRecords,
  CaseServiceDeps,
  Purger,
  RegisterWriter,
} from './steps.ts'

/** What the investigator receives: the signed access grant and what it covers. */
export interface AccessGrantAnswer {
  case_id: string
  token: string
  window: Case['window']
  categories: Case['categories']
}

const KINDS = ['standard', 'technical', 'oios'] as const
const LIVE_STATES = new Set(['requested', 'approved', 'active'])

export class CaseService {
  readonly #steps: CaseSteps
  /** One lock per case: a step reads, checks and writes its case. */
  readonly #caseLocks = new KeyedMutex<string>()
  /** One lock per category: a designation reads, checks and writes the category's designees. */
  readonly #categoryLocks = new KeyedMutex<string>()

  constructor(deps: CaseServiceDeps) {
    this.#steps = new CaseSteps(deps)
  }

  /** Runs a step on one case under its lock. */
  #onCase<T>(caseId: string, step: (steps: CaseSteps) => Promise<T>): Promise<T> {
    return this.#caseLocks.run(caseId, () => step(this.#steps))
  }

  /**
   * Deletes the case's tier I data; the register keeps what was done. Safe to repeat: a case
   * still active after a receipt may have captured more since, and that goes at its end too.
   */
  purge(doc: Case, actor: User | string): Promise<void> {
    return this.#steps.purge(doc, actor)
  }

  /** Applies time to every live case (expiry, overdue written requests), for the server's timer. */
  async sweep(): Promise<number> {
    const live = (await this.#steps.cases.list(KINDS)).filter((c) => LIVE_STATES.has(c.state))
    let moved = 0
    for (const doc of live) {
      const after = await this.#onCase(doc.case_id, (steps) => steps.refresh(doc))
      if (after.state !== doc.state) moved += 1
    }
    return moved
  }

  async get(user: User, caseId: string): Promise<Case> {
    return this.#onCase(caseId, async (steps) => steps.load(await steps.actor(user), caseId))
  }

  /** The case for a drill-down or an ingest: re-read and refreshed on every call. */
  current(caseId: string): Promise<Case | undefined> {
    return this.#onCase(caseId, (steps) => steps.current(caseId))
  }

  /** The capture grants an agent must run now: those of its cases that are active right now. */
  grantsForAgent(agentId: string): Promise<{ grant_id: string; token: string }[]> {
    return this.#steps.deps.grants.forAgent(agentId, async (caseId) => {
      const doc = await this.current(caseId)
      if (doc?.state !== 'active') return false
      try {
        await this.onRecord(doc)
        return true
      } catch (err) {
        if (err instanceof CaseNotOnRecord) return false
        throw err
      }
    })
  }

  async list(user: User): Promise<Case[]> {
    const actor = await this.#steps.actor(user)
    const all = await this.#steps.cases.list(KINDS)
    return all.filter((c) => mayTake('view', c, actor))
  }

  /**
   * The investigator's access grant for a case: only its investigator, only while active (the
   * table's `access_grant` step), and only while a grant is in force.
   */
  async accessGrant(user: User, caseId: string): Promise<AccessGrantAnswer> {
    const doc = await this.#onCase(caseId, async (steps) => {
      const actor = await steps.actor(user)
      const found = await steps.load(actor, caseId)
      await steps.authorize('access_grant', actor, found)
      await steps.onRecord(found)
      return found
    })
    const token = await this.#steps.deps.grants.accessToken(doc.case_id, user.user_id)
    if (token === undefined)
      throw new DomainError('conflict', 'wrong_state', 'no access grant is in force')
    return { case_id: doc.case_id, token, window: doc.window, categories: doc.categories }
  }

  /**
   * Throws CaseNotOnRecord (409, one error logged) unless the register's signed entries bear the
   * stored document out: the latest entry recording a state gives the document's state and, for
   * an active case, the latest grants issued cover the same agents up to the same end. Asked
   * before anything that reaches tier I: issuing grants (notice, extension), the agents' grants
   * poll, the access grant, and every tier I ingest, drill-down, export and download.
   */
  onRecord(doc: Case): Promise<void> {
    return this.#steps.onRecord(doc)
  }

  // --- Opening a case: a new id, so no other step can be on it yet. ---

  file(user: User, request: z.infer<typeof CaseRequest>): Promise<Case> {
    return file(this.#steps, user, request)
  }

  recordEmergency(user: User, request: z.infer<typeof EmergencyRequest>): Promise<Case> {
    return recordEmergency(this.#steps, user, request)
  }

  openTechnical(user: User, opening: z.infer<typeof TechnicalOpening>): Promise<Case> {
    return openTechnical(this.#steps, user, opening)
  }

  openOios(user: User, opening: z.infer<typeof OiosOpening>): Promise<Case> {
    return openOios(this.#steps, user, opening)
  }

  // --- Steps on a case, under its lock. ---

  writtenRequest(user: User, caseId: string, request: z.infer<typeof CaseRequest>) {
    return this.#onCase(caseId, (steps) => writtenRequest(steps, user, caseId, request))
  }

  consult(user: User, caseId: string, consultation: z.infer<typeof Consultation>) {
    return this.#onCase(caseId, (steps) => consult(steps, user, caseId, consultation))
  }

  confirmEmergency(
    user: User,
    caseId: string,
    confirmation: z.infer<typeof EmergencyConfirmation>,
  ): Promise<Case> {
    return this.#onCase(caseId, (steps) => confirmEmergency(steps, user, caseId, confirmation))
  }

  approve(user: User, caseId: string, approval: z.infer<typeof Approval>): Promise<Case> {
    return this.#onCase(caseId, (steps) => approve(steps, user, caseId, approval))
  }

  deny(user: User, caseId: string, denial: z.infer<typeof Denial>): Promise<Case> {
    return this.#onCase(caseId, (steps) => deny(steps, user, caseId, denial))
  }

  notice(user: User, caseId: string, body: z.infer<typeof Notice>): Promise<Case> {
    return this.#onCase(caseId, (steps) => notice(steps, user, caseId, body))
  }

  extend(user: User, caseId: string, extension: z.infer<typeof Extension>): Promise<Case> {
    return this.#onCase(caseId, (steps) => extend(steps, user, caseId, extension))
  }

  close(user: User, caseId: string, closing: z.infer<typeof Closing>): Promise<Case> {
    return this.#onCase(caseId, (steps) => close(steps, user, caseId, closing))
  }

  /** 9.2e: ITSD designates one officer and at most two alternates per resource category. */
  async designate(
    user: User,
    designation: z.infer<typeof Designation>,
  ): Promise<{ category: string; designees: { user_id: string; position: string }[] }> {
    await checkDesignation(this.#steps, user, designation)
    return this.#categoryLocks.run(designation.category, () =>
      designate(this.#steps, user, designation),
    )
  }
}
