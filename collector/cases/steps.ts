/**
 * What every case step shares: the dependencies, the register entry written first (fail closed),
 * the table of transitions applied to the caller, and the moves time makes on its own (an
 * overdue emergency is suspended, an ended window expires). The steps themselves are in
 * request-steps.ts, notice-steps.ts and opening-steps.ts; workflow.ts puts them behind one lock
 * per case.
 */
import type { Logger } from 'pino'
import type { Role } from '../../protocol/api/names.ts'
import type { User } from '../auth/users.ts'
import { DomainError } from '../errors.ts'
import type { CaseOnRecord } from '../register/model.ts'
import type { Store } from '../store/client.ts'
import { DesignationsRepository } from './designations-repository.ts'
import { CaseNotOnRecord } from './errors.ts'
import type { GrantIssuer } from './grants.ts'
import type { Case } from './model.ts'
import type { Outbox } from './outbox.ts'
import { recordMismatch } from './record-check.ts'
import { CaseRepository } from './repository.ts'
import {
  type Authorized,
  authorize,
  mayTake,
  type Step,
  type StepActor,
  systemStep,
} from './transitions.ts'

export interface CasePolicy {
  /** The longest a grant may run, request or extension (8.5f). */
  max_grant_days: number
  /** Technical cases (8.2) run at most this long. */
  technical_max_hours: number
  /** After a verbal request (8.4b), the written one must follow within this time. */
  emergency_written_hours: number
}

/** The register as the workflow needs it: append, and fail if it cannot. */
export interface RegisterWriter {
  append(input: {
    register: 'itsd' | 'oios'
    kind: string
    actor: string
    case_id?: string | undefined
    details: Record<string, unknown>
  }): Promise<unknown>
}

/**
 * What the register's signed entries say of a case (Register.caseOnRecord): the case document in
 * the store is writable by whoever holds the data directory, the register's entries are not
 * (each carries the register key's signature), so nothing reaches tier I on the document alone.
 */
export interface CaseRecords {
  caseOnRecord(register: 'itsd' | 'oios', caseId: string): Promise<CaseOnRecord | undefined>
}

/** Called when a case's tier I data must go (closing, expiry, receipt). */
export type Purger = (caseId: string) => Promise<void>

export interface CaseServiceDeps {
  store: Store
  register: RegisterWriter
  /** The register's record of each case, checked before anything reaches tier I. */
  records: CaseRecords
  grants: GrantIssuer
  outbox: Outbox
  policy: CasePolicy
  log: Logger
  purge?: Purger
  /** Resolves a user id to its roles (for the people a request names). */
  rolesOf: (userId: string) => Promise<Role[] | undefined>
  now?: () => number
}

export const HOUR = 3_600_000
export const DAY = 24 * HOUR

export const iso = (ms: number): string => new Date(ms).toISOString()

export class CaseSteps {
  readonly deps: CaseServiceDeps
  readonly cases: CaseRepository
  readonly designations: DesignationsRepository
  readonly now: () => number

  constructor(deps: CaseServiceDeps) {
    this.deps = deps
    this.now = deps.now ?? Date.now
    this.cases = new CaseRepository(deps.store)
    this.designations = new DesignationsRepository(deps.store)
  }

  /** The longest window the policy allows a grant, in milliseconds. */
  get maxGrantMs(): number {
    return this.deps.policy.max_grant_days * DAY
  }

  registerOf(doc: Pick<Case, 'kind'>): 'itsd' | 'oios' {
    return doc.kind === 'oios' ? 'oios' : 'itsd'
  }

  /** Writes the step's register entry, which records the state it leaves the case in. */
  async record(
    doc: Case,
    user: User | string,
    kind: string,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    await this.deps.register.append({
      register: this.registerOf(doc),
      kind,
      actor: typeof user === 'string' ? user : user.user_id,
      case_id: doc.case_id,
      // Through JSON: an optional field left undefined is simply absent from the entry.
      details: JSON.parse(JSON.stringify({ state: doc.state, ...details })) as Record<
        string,
        unknown
      >,
    })
  }

  /**
   * Records a step's register entry (first: fail closed), then stores the case it leaves; the
   * stored case is the step's answer.
   */
  async commit(
    doc: Case,
    user: User | string,
    kind: string,
    details: Record<string, unknown> = {},
  ): Promise<Case> {
    await this.record(doc, user, kind, details)
    await this.cases.save(doc)
    return doc
  }

  /** What a step on a stored case starts from: the user as the table sees them, and the case. */
  async open(user: User, caseId: string): Promise<{ actor: StepActor; doc: Case }> {
    const actor = await this.actor(user)
    return { actor, doc: await this.load(actor, caseId) }
  }

  /** The user as the table sees them: roles, and the 9.2e designations a designee holds. */
  async actor(user: User): Promise<StepActor> {
    if (!user.roles.includes('oios_designee')) return user
    return { ...user, designations: await this.designations.categoriesOf(user.user_id) }
  }

  /** Applies the workflow table to one step (see transitions.ts). */
  authorize(
    step: Step,
    actor: StepActor,
    before: Case,
    after: Case = before,
    opening = false,
  ): Promise<Authorized> {
    return authorize({
      step,
      before,
      after,
      opening,
      actor,
      now: this.now(),
      rolesOf: this.deps.rolesOf,
    })
  }

  /** The case, if `actor` may see it; to anyone else it does not exist (404). */
  async load(actor: StepActor, caseId: string): Promise<Case> {
    const doc = await this.cases.find(caseId)
    if (doc === undefined || !mayTake('view', doc, actor))
      throw new DomainError('not_found', 'not_found', `no case ${caseId}`)
    return this.refresh(doc)
  }

  /** The case as time has left it, for anyone (drill-down, ingest, the grants poll). */
  async current(caseId: string): Promise<Case | undefined> {
    const doc = await this.cases.find(caseId)
    return doc === undefined ? undefined : this.refresh(doc)
  }

  /**
   * Time moves cases on (the table's `system` steps): an emergency whose written request is
   * overdue is suspended; a case whose window has ended expires. Both revoke grants and purge.
   */
  async refresh(doc: Case): Promise<Case> {
    const due = systemStep(doc, this.now())
    if (due === undefined) return doc
    const reason =
      due.step === 'suspend'
        ? 'the written request did not follow the verbal one in time'
        : 'the grant window ended'
    return this.end(doc, due.next as 'suspended' | 'expired', 'system', reason)
  }

  /** Ends a case: recorded, stored, its grants revoked, its tier I data purged. */
  async end(
    doc: Case,
    state: 'suspended' | 'expired' | 'closed',
    actor: User | string,
    reason: string,
  ): Promise<Case> {
    const ended = await this.commit({ ...doc, state }, actor, `case_${state}`, { reason })
    await this.deps.grants.revokeCase(doc.case_id)
    if (this.deps.purge !== undefined) await this.purge(ended, actor)
    return (await this.cases.find(doc.case_id)) ?? ended
  }

  /**
   * Deletes the case's tier I data; the register keeps what was done. Safe to repeat: a case
   * still active after a receipt may have captured more since, and that goes at its end too.
   * Closing or expiry also deletes export bundles not yet received: deliver before closing.
   */
  async purge(doc: Case, actor: User | string): Promise<void> {
    if (this.deps.purge === undefined) return
    await this.record(doc, actor, 'tier_i_purged')
    await this.deps.purge(doc.case_id)
    await this.cases.save({ ...doc, purged_at: iso(this.now()) })
  }

  /** Issues the case's grants for what is left of its window: the case is active. */
  async activate(doc: Case, user: User | string): Promise<Case> {
    const start = Math.max(Date.parse(doc.window.start), this.now())
    const end = Date.parse(doc.window.end)
    const active: Case = { ...doc, state: 'active' }
    await this.record(active, user, 'grants_issued', {
      window: { start: iso(start), end: iso(end) },
      agents: doc.subjects.map((s) => s.agent_id),
    })
    // Not logged: the log is the ITSD side's to read, and a line for ITSD's grants alone would
    // tell by its absence when OIOS's were issued. The register holds both, each in its own.
    await this.deps.grants.issue(active, start, end)
    await this.cases.save(active)
    return active
  }

  /**
   * Throws CaseNotOnRecord (409, one error logged) unless the register's signed entries bear the
   * stored document out (record-check.ts). Asked before anything that reaches tier I.
   */
  async onRecord(doc: Case): Promise<void> {
    const record = await this.deps.records.caseOnRecord(this.registerOf(doc), doc.case_id)
    const reason = recordMismatch(doc, record)
    if (reason === undefined) return
    // No case id: the log is the ITSD side's to read, and OIOS's cases do not show there.
    this.deps.log.error({ reason }, 'a case document does not match the register: refused')
    throw new CaseNotOnRecord(reason)
  }

  checkWindow(window: { start: string; end: string }, maxMs: number): void {
    const start = Date.parse(window.start)
    const end = Date.parse(window.end)
    if (!(end > start))
      throw new DomainError('invalid', 'invalid_window', 'window.end must be after window.start')
    if (end - start > maxMs) {
      throw new DomainError(
        'invalid',
        'window_too_long',
        `the window is longer than the policy allows (${maxMs / HOUR} h)`,
      )
    }
    if (end <= this.now())
      throw new DomainError('invalid', 'invalid_window', 'the window has already ended')
  }

  async requireRole(userId: string, role: Role, what: string): Promise<void> {
    const roles = await this.deps.rolesOf(userId)
    if (roles === undefined)
      throw new DomainError('invalid', 'unknown_user', `${what} ${userId} is not a user`)
    if (!roles.includes(role))
      throw new DomainError(
        'invalid',
        'wrong_role',
        `${what} ${userId} does not hold the ${role} role`,
      )
  }
}
