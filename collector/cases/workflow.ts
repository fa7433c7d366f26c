/**
 * The bulletin's case workflow, step for step. Who may take each step, in which state, and
 * what it leads to is one table (transitions.ts), applied here to every step; each step then
 * checks its body, writes its register entry first (fail closed: a step whose entry cannot be
 * written does not happen), then changes the case.
 *
 * 8.4a request · 8.4b emergency · 8.4d consultation · 8.4c approval · 8.5a notice · grants ·
 * 8.5f extension, closing, expiry · 8.2 technical cases · 9 OIOS cases · 9.2e designations.
 */
import type { Logger } from 'pino'
import type { z } from 'zod'
import type { Role } from '../auth/roles.ts'
import type { User } from '../auth/users.ts'
import { DomainError } from '../errors.ts'
import type { CaseOnRecord } from '../register/register.ts'
import type { Store } from '../store/client.ts'
import { DesignationsRepository } from './designations-repository.ts'
import { CaseNotOnRecord } from './errors.ts'
import type { GrantIssuer } from './grants.ts'
import type {
  Approval,
  Case,
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
} from './model.ts'
import { type Outbox, OutboxUnavailable } from './outbox.ts'
import { CaseRepository, newCaseId } from './repository.ts'
import {
  type Authorized,
  authorize,
  mayTake,
  type Step,
  type StepActor,
  systemStep,
} from './transitions.ts'

export { CaseNotOnRecord } from './errors.ts'

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
    case_id?: string
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

/** What the investigator receives: the signed access grant and what it covers. */
export interface AccessGrantAnswer {
  case_id: string
  token: string
  window: Case['window']
  categories: Case['categories']
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

const HOUR = 3_600_000
const DAY = 24 * HOUR
const LIVE_STATES = new Set(['requested', 'approved', 'active'])
/** How far an in-person notice's time may run ahead of the collector's clock. */
const CLOCK_SKEW_MS = 60_000

const iso = (ms: number) => new Date(ms).toISOString()

export class CaseService {
  readonly #deps: CaseServiceDeps
  readonly #now: () => number
  readonly #cases: CaseRepository
  readonly #designations: DesignationsRepository
  /** One step at a time: a step reads, checks and writes the case. */
  #tail: Promise<unknown> = Promise.resolve()

  constructor(deps: CaseServiceDeps) {
    this.#deps = deps
    this.#now = deps.now ?? Date.now
    this.#cases = new CaseRepository(deps.store)
    this.#designations = new DesignationsRepository(deps.store)
  }

  #serial<T>(step: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(step)
    this.#tail = result.catch(() => undefined)
    return result
  }

  #registerOf(doc: Pick<Case, 'kind'>): 'itsd' | 'oios' {
    return doc.kind === 'oios' ? 'oios' : 'itsd'
  }

  async #record(
    doc: Case,
    user: User | string,
    kind: string,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    await this.#deps.register.append({
      register: this.#registerOf(doc),
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

  /** The user as the table sees them: roles, and the 9.2e designations a designee holds. */
  async #actor(user: User): Promise<StepActor> {
    if (!user.roles.includes('oios_designee')) return user
    return { ...user, designations: await this.#designations.categoriesOf(user.user_id) }
  }

  /** Applies the workflow table to one step (see transitions.ts). */
  #authorize(
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
      now: this.#now(),
      rolesOf: this.#deps.rolesOf,
    })
  }

  /** The case, if `actor` may see it; to anyone else it does not exist (404). */
  async #load(actor: StepActor, caseId: string): Promise<Case> {
    const doc = await this.#cases.find(caseId)
    if (doc === undefined || !mayTake('view', doc, actor))
      throw new DomainError('not_found', 'not_found', `no case ${caseId}`)
    return this.#refresh(doc)
  }

  /**
   * Time moves cases on (the table's `system` steps): an emergency whose written request is
   * overdue is suspended; a case whose window has ended expires. Both revoke grants and purge.
   */
  async #refresh(doc: Case): Promise<Case> {
    const due = systemStep(doc, this.#now())
    if (due === undefined) return doc
    const reason =
      due.step === 'suspend'
        ? 'the written request did not follow the verbal one in time'
        : 'the grant window ended'
    return this.#end(doc, due.next as 'suspended' | 'expired', 'system', reason)
  }

  async #end(
    doc: Case,
    state: 'suspended' | 'expired' | 'closed',
    actor: User | string,
    reason: string,
  ): Promise<Case> {
    const ended: Case = { ...doc, state }
    await this.#record(ended, actor, `case_${state}`, { reason })
    await this.#cases.save(ended)
    await this.#deps.grants.revokeCase(doc.case_id)
    if (this.#deps.purge !== undefined) await this.purge(ended, actor)
    return (await this.#cases.find(doc.case_id)) ?? ended
  }

  /**
   * Deletes the case's tier I data; the register keeps what was done. Safe to repeat: a case
   * still active after a receipt may have captured more since, and that goes at its end too.
   * Closing or expiry also deletes export bundles not yet received: deliver before closing.
   */
  async purge(doc: Case, actor: User | string): Promise<void> {
    if (this.#deps.purge === undefined) return
    await this.#record(doc, actor, 'tier_i_purged')
    await this.#deps.purge(doc.case_id)
    await this.#cases.save({ ...doc, purged_at: iso(this.#now()) })
  }

  /** Applies time to every live case (expiry, overdue written requests), for the server's timer. */
  async sweep(): Promise<number> {
    const live = (await this.#cases.list(['standard', 'technical', 'oios'])).filter((c) =>
      LIVE_STATES.has(c.state),
    )
    let moved = 0
    for (const doc of live) {
      const after = await this.#serial(() => this.#refresh(doc))
      if (after.state !== doc.state) moved += 1
    }
    return moved
  }

  async get(user: User, caseId: string): Promise<Case> {
    return this.#serial(async () => this.#load(await this.#actor(user), caseId))
  }

  /** The case for a drill-down or an ingest: re-read and refreshed on every call. */
  async current(caseId: string): Promise<Case | undefined> {
    return this.#serial(async () => {
      const doc = await this.#cases.find(caseId)
      return doc === undefined ? undefined : this.#refresh(doc)
    })
  }

  /** The capture grants an agent must run now: those of its cases that are active right now. */
  grantsForAgent(agentId: string): Promise<{ grant_id: string; token: string }[]> {
    return this.#deps.grants.forAgent(agentId, async (caseId) => {
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
    const actor = await this.#actor(user)
    const all = await this.#cases.list(['standard', 'technical', 'oios'])
    return all.filter((c) => mayTake('view', c, actor))
  }

  /**
   * The investigator's access grant for a case: only its investigator, only while active (the
   * table's `access_grant` step), and only while a grant is in force.
   */
  async accessGrant(user: User, caseId: string): Promise<AccessGrantAnswer> {
    const doc = await this.#serial(async () => {
      const actor = await this.#actor(user)
      const found = await this.#load(actor, caseId)
      await this.#authorize('access_grant', actor, found)
      await this.onRecord(found)
      return found
    })
    const token = await this.#deps.grants.accessToken(doc.case_id, user.user_id)
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
  async onRecord(doc: Case): Promise<void> {
    const record = await this.#deps.records.caseOnRecord(this.#registerOf(doc), doc.case_id)
    const reason = recordMismatch(doc, record)
    if (reason === undefined) return
    // No case id: the log is the ITSD side's to read, and OIOS's cases do not show there.
    this.#deps.log.error({ reason }, 'a case document does not match the register: refused')
    throw new CaseNotOnRecord(reason)
  }

  #checkWindow(window: { start: string; end: string }, maxMs: number): void {
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
    if (end <= this.#now())
      throw new DomainError('invalid', 'invalid_window', 'the window has already ended')
  }

  async #requireRole(userId: string, role: Role, what: string): Promise<void> {
    const roles = await this.#deps.rolesOf(userId)
    if (roles === undefined)
      throw new DomainError('invalid', 'unknown_user', `${what} ${userId} is not a user`)
    if (!roles.includes(role))
      throw new DomainError(
        'invalid',
        'wrong_role',
        `${what} ${userId} does not hold the ${role} role`,
      )
  }

  #fromRequest(
    request: z.infer<typeof CaseRequest>,
    requester: string,
    recordedBy: string,
  ): Omit<Case, 'case_id' | 'state' | 'emergency'> {
    return {
      kind: 'standard',
      created_at: iso(this.#now()),
      requester,
      recorded_by: recordedBy,
      description: request.data_required,
      categories: request.categories,
      staff_member: request.staff_member,
      supervisor: request.supervisor,
      receiving_official: request.receiving_official,
      requesting_office: request.requesting_office,
      justification: request.justification,
      subjects: request.subjects,
      window: request.window,
      approvals: [],
    }
  }

  /** 8.4a: a written request, filed by a requester. */
  async file(user: User, request: z.infer<typeof CaseRequest>): Promise<Case> {
    return this.#serial(async () => {
      const draft: Case = {
        case_id: newCaseId(),
        state: 'requested',
        emergency: false,
        ...this.#fromRequest(request, user.user_id, user.user_id),
      }
      const { next } = await this.#authorize('file', user, draft, draft, true)
      this.#checkWindow(request.window, this.#deps.policy.max_grant_days * DAY)
      const doc: Case = { ...draft, state: next }
      await this.#record(doc, user, 'case_requested', {
        data_required: request.data_required,
        categories: request.categories,
        staff_member: request.staff_member.name,
        receiving_official: request.receiving_official,
        requesting_office: request.requesting_office,
      })
      await this.#cases.save(doc)
      return doc
    })
  }

  /** 8.4b: a verbal request in an emergency, recorded by the approver side. */
  async recordEmergency(user: User, request: z.infer<typeof EmergencyRequest>): Promise<Case> {
    return this.#serial(async () => {
      const due = this.#now() + this.#deps.policy.emergency_written_hours * HOUR
      const draft: Case = {
        case_id: newCaseId(),
        state: 'requested',
        emergency: true,
        written_request_due: iso(due),
        ...this.#fromRequest(request, request.verbal_requester, user.user_id),
      }
      const { next } = await this.#authorize('record_emergency', user, draft, draft, true)
      this.#checkWindow(request.window, this.#deps.policy.max_grant_days * DAY)
      const doc: Case = { ...draft, state: next }
      await this.#record(doc, user, 'emergency_recorded', {
        verbal_requester: request.verbal_requester,
        received_at: request.received_at,
        written_request_due: iso(due),
        categories: request.categories,
      })
      await this.#cases.save(doc)
      return doc
    })
  }

  /** 8.4b: the written request that must follow a verbal one. */
  async writtenRequest(
    user: User,
    caseId: string,
    request: z.infer<typeof CaseRequest>,
  ): Promise<Case> {
    return this.#serial(async () => {
      const actor = await this.#actor(user)
      const doc = await this.#load(actor, caseId)
      await this.#authorize('written_request', actor, doc)
      const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)
      const subjects = (list: Case['subjects']) =>
        list.map((x) => `${x.agent_id}:${[...x.addresses].sort().join(',')}`).sort()
      if (
        !same(subjects(request.subjects), subjects(doc.subjects)) ||
        !same([...request.categories].sort(), [...doc.categories].sort()) ||
        !same(request.staff_member, doc.staff_member) ||
        request.receiving_official !== doc.receiving_official
      ) {
        throw new DomainError(
          'invalid',
          'written_request_differs',
          'the written request must confirm the verbal one: same staff member, subjects, categories and receiving official',
        )
      }
      const updated: Case = {
        ...doc,
        written_request_at: iso(this.#now()),
        description: request.data_required,
        justification: request.justification,
      }
      await this.#record(updated, user, 'written_request_filed', {
        data_required: request.data_required,
      })
      await this.#cases.save(updated)
      return updated
    })
  }

  /** 8.4d: the OIOS consultation, recorded by the OIOS Chief of Investigations. */
  async consult(
    user: User,
    caseId: string,
    consultation: z.infer<typeof Consultation>,
  ): Promise<Case> {
    return this.#serial(async () => {
      const actor = await this.#actor(user)
      const doc = await this.#load(actor, caseId)
      const { next } = await this.#authorize('consult', actor, doc)
      const updated: Case = {
        ...doc,
        state: next,
        consultation: { by: user.user_id, at: iso(this.#now()), summary: consultation.summary },
      }
      await this.#record(updated, user, 'oios_consulted')
      await this.#cases.save(updated)
      return updated
    })
  }

  /**
   * 8.4b: one person records an emergency; someone else (another approver, or the OIOS Chief)
   * confirms it; a third approves it. No one reaches a grant on a verbal request alone.
   */
  async confirmEmergency(
    user: User,
    caseId: string,
    confirmation: z.infer<typeof EmergencyConfirmation>,
  ): Promise<Case> {
    return this.#serial(async () => {
      const actor = await this.#actor(user)
      const doc = await this.#load(actor, caseId)
      const confirmed: Case = {
        ...doc,
        emergency_confirmation: {
          by: user.user_id,
          at: iso(this.#now()),
          statement: confirmation.statement,
        },
      }
      const { next } = await this.#authorize('confirm_emergency', actor, doc, confirmed)
      const updated: Case = { ...confirmed, state: next }
      await this.#record(updated, user, 'emergency_confirmed', {
        statement: confirmation.statement,
      })
      await this.#cases.save(updated)
      return updated
    })
  }

  /**
   * 8.4c: approval, after consultation (or, in an emergency, its confirmation); names the
   * investigator. The approved window lies inside the requested one: `until` may only end it
   * earlier.
   */
  async approve(user: User, caseId: string, approval: z.infer<typeof Approval>): Promise<Case> {
    return this.#serial(async () => {
      const actor = await this.#actor(user)
      const doc = await this.#load(actor, caseId)
      const requestedEnd = Date.parse(doc.window.end)
      const end = Math.min(
        Date.parse(approval.until ?? doc.window.end),
        Date.parse(doc.window.start) + this.#deps.policy.max_grant_days * DAY,
      )
      const approved: Case = {
        ...doc,
        investigator: approval.investigator,
        window: { start: doc.window.start, end: iso(end) },
        approvals: [
          ...doc.approvals,
          {
            by: user.user_id,
            at: iso(this.#now()),
            until: iso(end),
            kind: 'approval',
            ...(approval.comment ? { comment: approval.comment } : {}),
          },
        ],
      }
      const { next } = await this.#authorize('approve', actor, doc, approved)
      if (end > requestedEnd) {
        throw new DomainError(
          'invalid',
          'invalid_window',
          `the approved window lies inside the requested one: until may not be after ${doc.window.end}`,
        )
      }
      if (end <= Math.max(Date.parse(doc.window.start), this.#now())) {
        throw new DomainError(
          'invalid',
          'invalid_window',
          'the approved window must end after it starts and after now',
        )
      }
      const updated: Case = { ...approved, state: next }
      await this.#record(updated, user, 'case_approved', {
        investigator: approval.investigator,
        until: iso(end),
      })
      await this.#cases.save(updated)
      return updated
    })
  }

  async deny(user: User, caseId: string, denial: z.infer<typeof Denial>): Promise<Case> {
    return this.#serial(async () => {
      const actor = await this.#actor(user)
      const doc = await this.#load(actor, caseId)
      const { next } = await this.#authorize('deny', actor, doc)
      const updated: Case = {
        ...doc,
        state: next,
        denial: { by: user.user_id, at: iso(this.#now()), reason: denial.reason },
      }
      await this.#record(updated, user, 'case_denied', { reason: denial.reason })
      await this.#cases.save(updated)
      return updated
    })
  }

  /**
   * 8.5a: the staff member and supervisor are informed immediately before access. Recorded by
   * an approver who is neither the requester nor the investigator, with its evidence: the
   * outbox's delivery, or a named witness of the notice given in person, at a time that is
   * neither in the future nor before the approval. Then the grants are issued.
   */
  async notice(user: User, caseId: string, notice: z.infer<typeof Notice>): Promise<Case> {
    return this.#serial(async () => {
      const actor = await this.#actor(user)
      const doc = await this.#load(actor, caseId)
      const { next } = await this.#authorize('notice', actor, doc)
      // The notice issues the grants: only for a case the register records as approved.
      await this.onRecord(doc)
      const people = [doc.staff_member, doc.supervisor].filter((p) => p !== undefined)
      let record: Case['notice']
      if (notice.method === 'outbox') {
        let sent: Awaited<ReturnType<Outbox['send']>>
        try {
          sent = await this.#deps.outbox.send(
            doc.case_id,
            people,
            'Notice of access to your ICT records (ST/SGB/2004/15, 8.5a)',
            noticeText(doc),
          )
        } catch (err) {
          if (err instanceof OutboxUnavailable)
            throw new DomainError(
              'conflict',
              'no_outbox',
              `${err.message}; record an in-person notice instead`,
            )
          throw err
        }
        const undelivered = sent.filter((m) => m.delivered_at === null)
        if (undelivered.length > 0) {
          throw new DomainError(
            'conflict',
            'wrong_state',
            `the notice was not delivered (${undelivered.map((m) => m.last_error).join('; ')}); retry or record it in person`,
          )
        }
        record = {
          method: 'outbox',
          by: user.user_id,
          at: iso(this.#now()),
          to: people.map((p) => p.email ?? p.name),
          message_ids: sent.map((m) => m.message_id),
        }
      } else {
        this.#checkInPerson(doc, notice)
        record = {
          method: 'in_person',
          by: user.user_id,
          at: notice.given_at,
          to: notice.to,
          given_by: notice.given_by,
          witness: notice.witness,
        }
      }
      const noticed: Case = { ...doc, notice: record }
      await this.#record(noticed, user, 'notice_given', {
        method: record.method,
        to: record.to,
        at: record.at,
        given_by: record.given_by,
        witness: record.witness,
      })
      return this.#activate({ ...noticed, state: next }, user)
    })
  }

  /** An in-person notice's evidence: a witness who is not the giver, a time that can be true. */
  #checkInPerson(doc: Case, notice: Extract<z.infer<typeof Notice>, { method: 'in_person' }>) {
    const name = (s: string) => s.trim().replace(/\s+/g, ' ').toLowerCase()
    if (name(notice.witness) === name(notice.given_by)) {
      throw new DomainError(
        'invalid',
        'invalid_notice',
        'the witness of an in-person notice is someone other than who gave it',
      )
    }
    const at = Date.parse(notice.given_at)
    if (at > this.#now() + CLOCK_SKEW_MS) {
      throw new DomainError('invalid', 'invalid_notice', 'given_at is in the future')
    }
    const approvedAt = doc.approvals.findLast((a) => a.kind === 'approval')?.at
    if (approvedAt !== undefined && at < Date.parse(approvedAt)) {
      throw new DomainError(
        'invalid',
        'invalid_notice',
        `given_at is before the approval (${approvedAt}); the notice follows approval`,
      )
    }
  }

  async #activate(doc: Case, user: User | string): Promise<Case> {
    const start = Math.max(Date.parse(doc.window.start), this.#now())
    const end = Date.parse(doc.window.end)
    const active: Case = { ...doc, state: 'active' }
    await this.#record(active, user, 'grants_issued', {
      window: { start: iso(start), end: iso(end) },
      agents: doc.subjects.map((s) => s.agent_id),
    })
    const ids = await this.#deps.grants.issue(active, start, end)
    await this.#cases.save(active)
    // Not logged: the log is the ITSD side's to read, and a line for ITSD's grants alone would
    // tell by its absence when OIOS's were issued. The register holds both, each in its own.
    void ids
    return active
  }

  /** 8.5f: a longer window needs a new approval, within the policy's maximum. */
  async extend(user: User, caseId: string, extension: z.infer<typeof Extension>): Promise<Case> {
    return this.#serial(async () => {
      const actor = await this.#actor(user)
      const doc = await this.#load(actor, caseId)
      const until = Date.parse(extension.until)
      const extended: Case = {
        ...doc,
        window: { start: doc.window.start, end: iso(until) },
        approvals: [
          ...doc.approvals,
          { by: user.user_id, at: iso(this.#now()), until: iso(until), kind: 'extension' },
        ],
      }
      await this.#authorize('extend', actor, doc, extended)
      await this.onRecord(doc)
      if (until <= Date.parse(doc.window.end))
        throw new DomainError(
          'invalid',
          'invalid_window',
          'an extension must end later than the current window',
        )
      if (until - this.#now() > this.#deps.policy.max_grant_days * DAY) {
        throw new DomainError(
          'invalid',
          'window_too_long',
          `an extension may run at most ${this.#deps.policy.max_grant_days} days from now`,
        )
      }
      await this.#record(extended, user, 'case_extended', {
        until: iso(until),
        justification: extension.justification,
      })
      await this.#deps.grants.revokeCase(doc.case_id)
      return this.#activate(extended, user)
    })
  }

  /** 8.5f: closing informs the staff member; grants end at once and tier I data is purged. */
  async close(user: User, caseId: string, closing: z.infer<typeof Closing>): Promise<Case> {
    return this.#serial(async () => {
      const actor = await this.#actor(user)
      const doc = await this.#load(actor, caseId)
      await this.#authorize('close', actor, doc)
      const closed: Case = {
        ...doc,
        closing: { by: user.user_id, at: iso(this.#now()), outcome: closing.outcome },
      }
      // Registered and closed first; then the staff member is told (a failed delivery is
      // retried from the outbox).
      const ended = await this.#end(closed, 'closed', user, closing.outcome)
      // Only someone who was told of the access is told of its end (8.5a, 8.5f): a request
      // withdrawn before any notice stays unknown to them.
      if (
        doc.kind === 'standard' &&
        doc.notice !== undefined &&
        doc.staff_member !== undefined &&
        this.#deps.outbox.configured
      ) {
        await this.#deps.outbox
          .send(
            doc.case_id,
            [doc.staff_member],
            'Closing of the access to your ICT records (8.5f)',
            closingText(doc, closing.outcome),
          )
          .catch((err: unknown) =>
            this.#deps.log.error({ err, case_id: doc.case_id }, 'closing notice not queued'),
          )
      }
      return ended
    })
  }

  /** 8.2: ITSD starts monitoring on a technical disruption: flows only, 72 hours at most. */
  async openTechnical(user: User, opening: z.infer<typeof TechnicalOpening>): Promise<Case> {
    return this.#serial(async () => {
      const now = this.#now()
      const hours = Math.min(opening.hours, this.#deps.policy.technical_max_hours)
      const draft: Case = {
        case_id: newCaseId(),
        kind: 'technical',
        state: 'approved',
        emergency: false,
        created_at: iso(now),
        requester: user.user_id,
        recorded_by: user.user_id,
        description: opening.description,
        categories: ['flows'],
        subjects: opening.subjects,
        window: { start: iso(now), end: iso(now + hours * HOUR) },
        approvals: [],
        investigator: opening.investigator,
        notify: opening.notify,
      }
      await this.#authorize('open_technical', user, draft, draft, true)
      if (!this.#deps.outbox.configured) {
        throw new DomainError(
          'conflict',
          'no_outbox',
          'a technical case is notified when it starts (8.2): configure cases.outbox first',
        )
      }
      await this.#record(draft, user, 'technical_case_opened', {
        description: opening.description,
        hours,
        agents: opening.subjects.map((s) => s.agent_id),
      })
      const sent = await this.#deps.outbox.send(
        draft.case_id,
        opening.notify,
        'Technical monitoring started (ST/SGB/2004/15, 8.2)',
        technicalText(draft),
      )
      const notified: Case = {
        ...draft,
        notice: {
          method: 'outbox',
          by: user.user_id,
          at: iso(now),
          to: opening.notify.map((p) => p.email ?? p.name),
          message_ids: sent.map((m) => m.message_id),
        },
      }
      await this.#record(notified, user, 'notice_given', {
        method: 'outbox',
        delivered: sent.filter((m) => m.delivered_at !== null).length,
        queued: sent.length,
      })
      return this.#activate(notified, user)
    })
  }

  /** Section 9: OIOS opens its own case, with no approval and no notice; its record is its own. */
  async openOios(user: User, opening: z.infer<typeof OiosOpening>): Promise<Case> {
    return this.#serial(async () => {
      const draft: Case = {
        case_id: newCaseId(),
        kind: 'oios',
        state: 'approved',
        emergency: false,
        created_at: iso(this.#now()),
        requester: user.user_id,
        recorded_by: user.user_id,
        description: opening.description,
        categories: opening.categories,
        subjects: opening.subjects,
        window: opening.window,
        approvals: [],
        investigator: user.user_id,
        receiving_official: opening.receiving_official,
      }
      await this.#authorize('open_oios', user, draft, draft, true)
      this.#checkWindow(opening.window, this.#deps.policy.max_grant_days * DAY)
      await this.#record(draft, user, 'oios_case_opened', {
        categories: opening.categories,
        agents: opening.subjects.map((s) => s.agent_id),
      })
      return this.#activate(draft, user)
    })
  }

  /** 9.2e: ITSD designates one officer and at most two alternates per resource category. */
  async designate(
    user: User,
    designation: z.infer<typeof Designation>,
  ): Promise<{ category: string; designees: { user_id: string; position: string }[] }> {
    if (!user.roles.includes('admin'))
      throw new DomainError(
        'forbidden',
        'forbidden',
        'designations are made by an ITSD admin (9.2e)',
      )
    await this.#requireRole(designation.user_id, 'oios_designee', 'the designated officer')
    return this.#serial(async () => {
      const current = await this.#designations.designees(designation.category)
      if (current.some((d) => d.user_id === designation.user_id)) {
        throw new DomainError(
          'conflict',
          'already_designated',
          `${designation.user_id} is already designated for ${designation.category}`,
        )
      }
      const limit = designation.position === 'designee' ? 1 : 2
      if (current.filter((d) => d.position === designation.position).length >= limit) {
        throw new DomainError(
          'conflict',
          'designation_limit',
          `${designation.category} already has ${limit === 1 ? 'its officer' : 'two alternates'}: one officer and at most two alternates per category (9.2e)`,
        )
      }
      await this.#deps.register.append({
        register: 'itsd',
        kind: 'oios_designation',
        actor: user.user_id,
        details: {
          category: designation.category,
          user_id: designation.user_id,
          position: designation.position,
        },
      })
      const now = this.#now()
      await this.#designations.insert({
        ...designation,
        designated_by: user.user_id,
        designated_at: now,
      })
      return {
        category: designation.category,
        designees: [...current, { user_id: designation.user_id, position: designation.position }],
      }
    })
  }
}

function noticeText(doc: Case): string {
  return [
    `Dear ${doc.staff_member?.name ?? 'colleague'},`,
    '',
    'In accordance with ST/SGB/2004/15, section 8.5 (a), you are informed that access to ICT data',
    `concerning you has been approved (case ${doc.case_id}).`,
    `Information to be retrieved: ${doc.description}`,
    `Categories: ${doc.categories.join(', ')}; period ${doc.window.start} to ${doc.window.end}.`,
  ].join('\n')
}

function closingText(doc: Case, outcome: string): string {
  return [
    `Dear ${doc.staff_member?.name ?? 'colleague'},`,
    '',
    `The access to ICT data concerning you (case ${doc.case_id}) has ended.`,
    `Outcome: ${outcome}`,
  ].join('\n')
}

function technicalText(doc: Case): string {
  return [
    'ITSD has started technical monitoring under ST/SGB/2004/15, section 8.2.',
    `Case ${doc.case_id}: ${doc.description}`,
    `Flow records only, from ${doc.window.start} to ${doc.window.end}.`,
  ].join('\n')
}

/**
 * Why the register's record does not bear the case document out, or undefined when it does.
 * Every workflow entry records the state it leaves the case in, so the latest one is the state;
 * an active case's latest grants name its agents and its window's end.
 */
export function recordMismatch(doc: Case, record: CaseOnRecord | undefined): string | undefined {
  if (record === undefined) return 'no signed register entry records the case'
  if (record.state !== doc.state) {
    return `the register records it ${record.state}, the stored document ${doc.state}`
  }
  if (doc.state !== 'active') return undefined
  const grants = record.grants
  if (grants === undefined) return 'the register records no grants issued for it'
  const agents = (list: string[]) => [...new Set(list)].sort().join('\n')
  if (agents(grants.agents) !== agents(doc.subjects.map((s) => s.agent_id))) {
    return 'its agents differ from those its grants were issued for'
  }
  if (Date.parse(grants.end) !== Date.parse(doc.window.end)) {
    return 'its window differs from the one its grants were issued for'
  }
  return undefined
}
