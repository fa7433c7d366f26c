/**
 * The bulletin's case workflow, step for step. Every step checks who may take it (roles and
 * separation of duties) and in which state, writes its register entry first (fail closed: a step
 * whose entry cannot be written does not happen), then changes the case.
 *
 * 8.4a request · 8.4b emergency · 8.4d consultation · 8.4c approval · 8.5a notice · grants ·
 * 8.5f extension, closing, expiry · 8.2 technical cases · 9 OIOS cases · 9.2e designations.
 */
import type { Logger } from 'pino'
import type { z } from 'zod'
import type { Role } from '../auth/roles.ts'
import type { User } from '../auth/users.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import type { GrantIssuer } from './grants.ts'
import {
  type Approval,
  type Case,
  CaseError,
  type CaseKind,
  type CaseRequest,
  type Closing,
  type Consultation,
  type Denial,
  type Designation,
  type EmergencyRequest,
  type Extension,
  type Notice,
  type OiosOpening,
  type TechnicalOpening,
} from './model.ts'
import { type Outbox, OutboxUnavailable } from './outbox.ts'
import { listCases, loadCase, newCaseId, saveCase } from './store.ts'

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

/** Called when a case's tier I data must go (closing, expiry, receipt). */
export type Purger = (caseId: string) => Promise<void>

export interface CaseServiceDeps {
  store: Store
  register: RegisterWriter
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
const ITSD_READERS: Role[] = ['approver', 'auditor', 'admin']

const has = (user: User, ...roles: Role[]) => user.roles.some((r) => roles.includes(r))
const iso = (ms: number) => new Date(ms).toISOString()

function forbid(message: string): never {
  throw new CaseError(403, 'forbidden', message)
}
function conflict(message: string): never {
  throw new CaseError(409, 'wrong_state', message)
}

export class CaseService {
  readonly #deps: CaseServiceDeps
  readonly #now: () => number
  /** One step at a time: a step reads, checks and writes the case. */
  #tail: Promise<unknown> = Promise.resolve()

  constructor(deps: CaseServiceDeps) {
    this.#deps = deps
    this.#now = deps.now ?? Date.now
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

  /** Whether `user` may see the case at all. OIOS cases do not exist for ITSD roles. */
  #canSee(user: User, doc: Case): boolean {
    if (doc.kind === 'oios')
      return has(user, 'oios_investigator', 'oios_chief') || has(user, 'oios_designee')
    if (has(user, ...ITSD_READERS)) return true
    if (doc.kind === 'technical' && has(user, 'itsd_lead')) return true
    if (has(user, 'oios_chief') && doc.kind === 'standard') return true
    return [doc.requester, doc.investigator, doc.receiving_official].includes(user.user_id)
  }

  async #load(user: User, caseId: string): Promise<Case> {
    const doc = await loadCase(this.#deps.store, caseId)
    if (doc === undefined || !this.#canSee(user, doc))
      throw new CaseError(404, 'not_found', `no case ${caseId}`)
    return this.#refresh(doc)
  }

  /**
   * Time moves cases on: an emergency whose written request is overdue is suspended; a case
   * whose window has ended expires. Both revoke grants and purge tier I data.
   */
  async #refresh(doc: Case): Promise<Case> {
    const now = this.#now()
    if (
      doc.emergency &&
      doc.written_request_at === undefined &&
      doc.written_request_due !== undefined
    ) {
      if (now > Date.parse(doc.written_request_due) && LIVE_STATES.has(doc.state)) {
        return this.#end(
          doc,
          'suspended',
          'system',
          'the written request did not follow the verbal one in time',
        )
      }
    }
    if ((doc.state === 'active' || doc.state === 'approved') && now >= Date.parse(doc.window.end)) {
      return this.#end(doc, 'expired', 'system', 'the grant window ended')
    }
    return doc
  }

  async #end(
    doc: Case,
    state: 'suspended' | 'expired' | 'closed',
    actor: User | string,
    reason: string,
  ): Promise<Case> {
    const ended: Case = { ...doc, state }
    await this.#record(ended, actor, `case_${state}`, { reason })
    await saveCase(this.#deps.store, ended)
    await this.#deps.grants.revokeCase(doc.case_id)
    if (this.#deps.purge !== undefined) await this.purge(ended, actor)
    return (await loadCase(this.#deps.store, doc.case_id)) ?? ended
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
    await saveCase(this.#deps.store, { ...doc, purged_at: iso(this.#now()) })
  }

  /** Applies time to every live case (expiry, overdue written requests), for the server's timer. */
  async sweep(): Promise<number> {
    const live = (await listCases(this.#deps.store, ['standard', 'technical', 'oios'])).filter(
      (c) => LIVE_STATES.has(c.state),
    )
    let moved = 0
    for (const doc of live) {
      const after = await this.#serial(() => this.#refresh(doc))
      if (after.state !== doc.state) moved += 1
    }
    return moved
  }

  async get(user: User, caseId: string): Promise<Case> {
    return this.#serial(() => this.#load(user, caseId))
  }

  /** The case for a drill-down or an ingest: re-read and refreshed on every call. */
  async current(caseId: string): Promise<Case | undefined> {
    return this.#serial(async () => {
      const doc = await loadCase(this.#deps.store, caseId)
      return doc === undefined ? undefined : this.#refresh(doc)
    })
  }

  async list(user: User): Promise<Case[]> {
    const kinds: CaseKind[] = has(user, 'oios_investigator', 'oios_chief', 'oios_designee')
      ? ['standard', 'technical', 'oios']
      : ['standard', 'technical']
    const all = await listCases(this.#deps.store, kinds)
    return all.filter((c) => this.#canSee(user, c))
  }

  #checkWindow(window: { start: string; end: string }, maxMs: number): void {
    const start = Date.parse(window.start)
    const end = Date.parse(window.end)
    if (!(end > start))
      throw new CaseError(400, 'invalid_window', 'window.end must be after window.start')
    if (end - start > maxMs) {
      throw new CaseError(
        400,
        'window_too_long',
        `the window is longer than the policy allows (${maxMs / HOUR} h)`,
      )
    }
    if (end <= this.#now())
      throw new CaseError(400, 'invalid_window', 'the window has already ended')
  }

  async #requireRole(userId: string, role: Role, what: string): Promise<void> {
    const roles = await this.#deps.rolesOf(userId)
    if (roles === undefined)
      throw new CaseError(400, 'unknown_user', `${what} ${userId} is not a user`)
    if (!roles.includes(role))
      throw new CaseError(400, 'wrong_role', `${what} ${userId} does not hold the ${role} role`)
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
    if (!has(user, 'requester')) forbid('filing a request needs the requester role (8.4a)')
    this.#checkWindow(request.window, this.#deps.policy.max_grant_days * DAY)
    await this.#requireRole(
      request.receiving_official,
      'receiving_official',
      'the receiving official',
    )
    return this.#serial(async () => {
      const doc: Case = {
        case_id: newCaseId(),
        state: 'requested',
        emergency: false,
        ...this.#fromRequest(request, user.user_id, user.user_id),
      }
      await this.#record(doc, user, 'case_requested', {
        data_required: request.data_required,
        categories: request.categories,
        staff_member: request.staff_member.name,
        receiving_official: request.receiving_official,
        requesting_office: request.requesting_office,
      })
      await saveCase(this.#deps.store, doc)
      return doc
    })
  }

  /** 8.4b: a verbal request in an emergency, recorded by the approver side. */
  async recordEmergency(user: User, request: z.infer<typeof EmergencyRequest>): Promise<Case> {
    if (!has(user, 'approver')) forbid('recording a verbal request needs the approver role (8.4b)')
    if (request.verbal_requester === user.user_id)
      forbid('the approver cannot be the one who asked')
    await this.#requireRole(request.verbal_requester, 'requester', 'the verbal requester')
    await this.#requireRole(
      request.receiving_official,
      'receiving_official',
      'the receiving official',
    )
    this.#checkWindow(request.window, this.#deps.policy.max_grant_days * DAY)
    return this.#serial(async () => {
      const due = this.#now() + this.#deps.policy.emergency_written_hours * HOUR
      const doc: Case = {
        case_id: newCaseId(),
        state: 'requested',
        emergency: true,
        written_request_due: iso(due),
        ...this.#fromRequest(request, request.verbal_requester, user.user_id),
      }
      await this.#record(doc, user, 'emergency_recorded', {
        verbal_requester: request.verbal_requester,
        received_at: request.received_at,
        written_request_due: iso(due),
        categories: request.categories,
      })
      await saveCase(this.#deps.store, doc)
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
      const doc = await this.#load(user, caseId)
      if (!doc.emergency) conflict('only an emergency case takes a written request afterwards')
      if (user.user_id !== doc.requester)
        forbid('the written request comes from who asked verbally')
      if (!LIVE_STATES.has(doc.state)) conflict(`the case is ${doc.state}`)
      if (doc.written_request_at !== undefined) conflict('the written request was already filed')
      const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)
      const subjects = (list: Case['subjects']) =>
        list.map((x) => `${x.agent_id}:${[...x.addresses].sort().join(',')}`).sort()
      if (
        !same(subjects(request.subjects), subjects(doc.subjects)) ||
        !same([...request.categories].sort(), [...doc.categories].sort()) ||
        !same(request.staff_member, doc.staff_member) ||
        request.receiving_official !== doc.receiving_official
      ) {
        throw new CaseError(
          400,
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
      await saveCase(this.#deps.store, updated)
      return updated
    })
  }

  /** 8.4d: the OIOS consultation, recorded by the OIOS Chief of Investigations. */
  async consult(
    user: User,
    caseId: string,
    consultation: z.infer<typeof Consultation>,
  ): Promise<Case> {
    if (!has(user, 'oios_chief'))
      forbid('the consultation is recorded by the OIOS Chief of Investigations (8.4d)')
    return this.#serial(async () => {
      const doc = await this.#load(user, caseId)
      if (doc.kind !== 'standard') conflict('only a standard case is consulted on')
      if (doc.consultation !== undefined) conflict('OIOS was already consulted on this case')
      if (doc.state !== 'requested') conflict(`the case is ${doc.state}`)
      const updated: Case = {
        ...doc,
        consultation: { by: user.user_id, at: iso(this.#now()), summary: consultation.summary },
      }
      await this.#record(updated, user, 'oios_consulted')
      await saveCase(this.#deps.store, updated)
      return updated
    })
  }

  /** 8.4c: approval, after consultation unless an emergency; names the investigator. */
  async approve(user: User, caseId: string, approval: z.infer<typeof Approval>): Promise<Case> {
    if (!has(user, 'approver')) forbid('approval needs the approver role (8.4c)')
    return this.#serial(async () => {
      const doc = await this.#load(user, caseId)
      if (doc.kind !== 'standard') conflict('only a standard case is approved')
      if (doc.state !== 'requested') conflict(`the case is ${doc.state}`)
      if (doc.requester === user.user_id) forbid('the requester cannot approve their own request')
      if (!doc.emergency && doc.consultation === undefined) {
        conflict('OIOS must be consulted before approval, except in an emergency (8.4d)')
      }
      if (approval.investigator === doc.requester || approval.investigator === user.user_id) {
        forbid('requester, approver and investigator must be three different people')
      }
      await this.#requireRole(approval.investigator, 'itsd_investigator', 'the investigator')
      const end = Math.min(
        Date.parse(approval.until ?? doc.window.end),
        Date.parse(doc.window.start) + this.#deps.policy.max_grant_days * DAY,
      )
      if (end <= Math.max(Date.parse(doc.window.start), this.#now())) {
        throw new CaseError(
          400,
          'invalid_window',
          'the approved window must end after it starts and after now',
        )
      }
      const updated: Case = {
        ...doc,
        state: 'approved',
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
      await this.#record(updated, user, 'case_approved', {
        investigator: approval.investigator,
        until: iso(end),
      })
      await saveCase(this.#deps.store, updated)
      return updated
    })
  }

  async deny(user: User, caseId: string, denial: z.infer<typeof Denial>): Promise<Case> {
    if (!has(user, 'approver')) forbid('denial needs the approver role')
    return this.#serial(async () => {
      const doc = await this.#load(user, caseId)
      if (doc.requester === user.user_id) forbid('the requester cannot decide on their own request')
      if (doc.state !== 'requested') conflict(`the case is ${doc.state}`)
      const updated: Case = {
        ...doc,
        state: 'denied',
        denial: { by: user.user_id, at: iso(this.#now()), reason: denial.reason },
      }
      await this.#record(updated, user, 'case_denied', { reason: denial.reason })
      await saveCase(this.#deps.store, updated)
      return updated
    })
  }

  /**
   * 8.5a: the staff member and supervisor are informed immediately before access. On record
   * means delivered (outbox) or given in person; then the grants are issued.
   */
  async notice(user: User, caseId: string, notice: z.infer<typeof Notice>): Promise<Case> {
    return this.#serial(async () => {
      const doc = await this.#load(user, caseId)
      if (!has(user, 'approver') && user.user_id !== doc.investigator) {
        forbid('the notice is recorded by an approver or the case investigator')
      }
      if (doc.state !== 'approved') conflict(`the case is ${doc.state}; a notice follows approval`)
      if (Date.parse(doc.window.end) <= this.#now())
        conflict('the approved window has already ended')
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
            throw new CaseError(
              409,
              'no_outbox',
              `${err.message}; record an in-person notice instead`,
            )
          throw err
        }
        const undelivered = sent.filter((m) => m.delivered_at === null)
        if (undelivered.length > 0) {
          conflict(
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
        record = {
          method: 'in_person',
          by: user.user_id,
          at: notice.given_at,
          to: notice.to,
          given_by: notice.given_by,
        }
      }
      const noticed: Case = { ...doc, notice: record }
      await this.#record(noticed, user, 'notice_given', {
        method: record.method,
        to: record.to,
        at: record.at,
      })
      return this.#activate(noticed, user)
    })
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
    await saveCase(this.#deps.store, active)
    this.#deps.log.info({ case_id: doc.case_id, grants: ids.length }, 'grants issued')
    return active
  }

  /** 8.5f: a longer window needs a new approval, within the policy's maximum. */
  async extend(user: User, caseId: string, extension: z.infer<typeof Extension>): Promise<Case> {
    if (!has(user, 'approver')) forbid('an extension is a new approval (approver role)')
    return this.#serial(async () => {
      const doc = await this.#load(user, caseId)
      if (doc.kind !== 'standard') conflict('only a standard case is extended')
      if (doc.state !== 'active') conflict(`the case is ${doc.state}`)
      if (user.user_id === doc.requester || user.user_id === doc.investigator) {
        forbid('requester, approver and investigator must be three different people')
      }
      const until = Date.parse(extension.until)
      if (until <= Date.parse(doc.window.end))
        throw new CaseError(
          400,
          'invalid_window',
          'an extension must end later than the current window',
        )
      if (until - this.#now() > this.#deps.policy.max_grant_days * DAY) {
        throw new CaseError(
          400,
          'window_too_long',
          `an extension may run at most ${this.#deps.policy.max_grant_days} days from now`,
        )
      }
      const extended: Case = {
        ...doc,
        window: { start: doc.window.start, end: iso(until) },
        approvals: [
          ...doc.approvals,
          { by: user.user_id, at: iso(this.#now()), until: iso(until), kind: 'extension' },
        ],
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
      const doc = await this.#load(user, caseId)
      const mayClose =
        has(user, 'approver') ||
        [doc.requester, doc.investigator].includes(user.user_id) ||
        (doc.kind === 'technical' && has(user, 'itsd_lead')) ||
        (doc.kind === 'oios' && has(user, 'oios_investigator', 'oios_chief'))
      if (!mayClose) forbid('the case is closed by its approver, requester or investigator')
      if (!LIVE_STATES.has(doc.state)) conflict(`the case is ${doc.state}`)
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
    if (!has(user, 'itsd_lead')) forbid('a technical case is opened by the ITSD lead (8.2)')
    if (opening.investigator === user.user_id)
      forbid('the lead who opens names another person to investigate')
    if (!this.#deps.outbox.configured) {
      throw new CaseError(
        409,
        'no_outbox',
        'a technical case is notified when it starts (8.2): configure cases.outbox first',
      )
    }
    await this.#requireRole(opening.investigator, 'itsd_investigator', 'the investigator')
    const hours = Math.min(opening.hours, this.#deps.policy.technical_max_hours)
    return this.#serial(async () => {
      const now = this.#now()
      const doc: Case = {
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
      await this.#record(doc, user, 'technical_case_opened', {
        description: opening.description,
        hours,
        agents: opening.subjects.map((s) => s.agent_id),
      })
      const sent = await this.#deps.outbox.send(
        doc.case_id,
        opening.notify,
        'Technical monitoring started (ST/SGB/2004/15, 8.2)',
        technicalText(doc),
      )
      const notified: Case = {
        ...doc,
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
    if (!has(user, 'oios_investigator'))
      forbid('an OIOS case is opened by an OIOS investigator (9.1)')
    this.#checkWindow(opening.window, this.#deps.policy.max_grant_days * DAY)
    await this.#requireRole(
      opening.receiving_official,
      'receiving_official',
      'the receiving official',
    )
    return this.#serial(async () => {
      const doc: Case = {
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
      await this.#record(doc, user, 'oios_case_opened', {
        categories: opening.categories,
        agents: opening.subjects.map((s) => s.agent_id),
      })
      return this.#activate(doc, user)
    })
  }

  /** 9.2e: ITSD designates one officer and at most two alternates per resource category. */
  async designate(
    user: User,
    designation: z.infer<typeof Designation>,
  ): Promise<{ category: string; designees: { user_id: string; position: string }[] }> {
    if (!has(user, 'admin')) forbid('designations are made by an ITSD admin (9.2e)')
    await this.#requireRole(designation.user_id, 'oios_designee', 'the designated officer')
    return this.#serial(async () => {
      const current = await selectRows<{ user_id: string; position: string }>(
        this.#deps.store,
        `SELECT user_id, position FROM tally.oios_designations FINAL
         WHERE category = {category:String} AND revoked_at IS NULL`,
        { category: designation.category },
      )
      if (current.some((d) => d.user_id === designation.user_id)) {
        throw new CaseError(
          409,
          'already_designated',
          `${designation.user_id} is already designated for ${designation.category}`,
        )
      }
      const limit = designation.position === 'designee' ? 1 : 2
      if (current.filter((d) => d.position === designation.position).length >= limit) {
        throw new CaseError(
          409,
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
      await insertRows(this.#deps.store, 'tally.oios_designations', [
        {
          ...designation,
          designated_by: user.user_id,
          designated_at: now,
          revoked_at: null,
          version: now,
        },
      ])
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
