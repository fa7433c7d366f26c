/**
 * The steps from a request to its approval (the workflow table's first rows): 8.4a the written
 * request, 8.4b the emergency (recorded verbally, confirmed, followed by its written request),
 * 8.4d the OIOS consultation, 8.4c approval or denial. Each checks the table, writes its
 * register entry first (fail closed), then stores the case.
 */
import type { z } from 'zod'
import type {
  Approval,
  CaseRequest,
  Consultation,
  Denial,
  EmergencyConfirmation,
  EmergencyRequest,
} from '../../protocol/api/cases.ts'
import type { User } from '../auth/users.ts'
import { DomainError } from '../errors.ts'
import type { Case } from './model.ts'
import { newCaseId } from './repository.ts'
import { type CaseSteps, HOUR, iso } from './steps.ts'

function fromRequest(
  steps: CaseSteps,
  request: z.infer<typeof CaseRequest>,
  requester: string,
  recordedBy: string,
): Omit<Case, 'case_id' | 'state' | 'emergency'> {
  return {
    kind: 'standard',
    created_at: iso(steps.now()),
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

/** A new request's draft as the table leaves it, its window within the policy. */
async function opened(
  steps: CaseSteps,
  step: 'file' | 'record_emergency',
  user: User,
  draft: Case,
): Promise<Case> {
  const { next } = await steps.authorize(step, user, draft, draft, true)
  steps.checkWindow(draft.window, steps.maxGrantMs)
  return { ...draft, state: next }
}

/** 8.4a: a written request, filed by a requester. */
export async function file(
  steps: CaseSteps,
  user: User,
  request: z.infer<typeof CaseRequest>,
): Promise<Case> {
  const draft: Case = {
    case_id: newCaseId(),
    state: 'requested',
    emergency: false,
    ...fromRequest(steps, request, user.user_id, user.user_id),
  }
  const doc = await opened(steps, 'file', user, draft)
  return steps.commit(doc, user, 'case_requested', {
    data_required: request.data_required,
    categories: request.categories,
    staff_member: request.staff_member.name,
    receiving_official: request.receiving_official,
    requesting_office: request.requesting_office,
  })
}

/** 8.4b: a verbal request in an emergency, recorded by the approver side. */
export async function recordEmergency(
  steps: CaseSteps,
  user: User,
  request: z.infer<typeof EmergencyRequest>,
): Promise<Case> {
  const due = steps.now() + steps.deps.policy.emergency_written_hours * HOUR
  const draft: Case = {
    case_id: newCaseId(),
    state: 'requested',
    emergency: true,
    written_request_due: iso(due),
    ...fromRequest(steps, request, request.verbal_requester, user.user_id),
  }
  const doc = await opened(steps, 'record_emergency', user, draft)
  return steps.commit(doc, user, 'emergency_recorded', {
    verbal_requester: request.verbal_requester,
    received_at: request.received_at,
    written_request_due: iso(due),
    categories: request.categories,
  })
}

/** 8.4b: the written request that must follow a verbal one. */
export async function writtenRequest(
  steps: CaseSteps,
  user: User,
  caseId: string,
  request: z.infer<typeof CaseRequest>,
): Promise<Case> {
  const { actor, doc } = await steps.open(user, caseId)
  await steps.authorize('written_request', actor, doc)
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
    written_request_at: iso(steps.now()),
    description: request.data_required,
    justification: request.justification,
  }
  return steps.commit(updated, user, 'written_request_filed', {
    data_required: request.data_required,
  })
}

/** 8.4d: the OIOS consultation, recorded by the OIOS Chief of Investigations. */
export async function consult(
  steps: CaseSteps,
  user: User,
  caseId: string,
  consultation: z.infer<typeof Consultation>,
): Promise<Case> {
  return decide(steps, user, caseId, 'consult', 'oios_consulted', (signed) => ({
    consultation: { ...signed, summary: consultation.summary },
  }))
}

/**
 * 8.4b: one person records an emergency; someone else (another approver, or the OIOS Chief)
 * confirms it; a third approves it. No one reaches a grant on a verbal request alone.
 */
export async function confirmEmergency(
  steps: CaseSteps,
  user: User,
  caseId: string,
  confirmation: z.infer<typeof EmergencyConfirmation>,
): Promise<Case> {
  const { actor, doc } = await steps.open(user, caseId)
  const confirmed: Case = {
    ...doc,
    emergency_confirmation: {
      by: user.user_id,
      at: iso(steps.now()),
      statement: confirmation.statement,
    },
  }
  const { next } = await steps.authorize('confirm_emergency', actor, doc, confirmed)
  const updated: Case = { ...confirmed, state: next }
  return steps.commit(updated, user, 'emergency_confirmed', {
    statement: confirmation.statement,
  })
}

/**
 * 8.4c: approval, after consultation (or, in an emergency, its confirmation); names the
 * investigator. The approved window lies inside the requested one: `until` may only end it
 * earlier.
 */
export async function approve(
  steps: CaseSteps,
  user: User,
  caseId: string,
  approval: z.infer<typeof Approval>,
): Promise<Case> {
  const { actor, doc } = await steps.open(user, caseId)
  const requestedEnd = Date.parse(doc.window.end)
  const end = Math.min(
    Date.parse(approval.until ?? doc.window.end),
    Date.parse(doc.window.start) + steps.maxGrantMs,
  )
  const approved: Case = {
    ...doc,
    investigator: approval.investigator,
    window: { start: doc.window.start, end: iso(end) },
    approvals: [
      ...doc.approvals,
      {
        by: user.user_id,
        at: iso(steps.now()),
        until: iso(end),
        kind: 'approval',
        ...(approval.comment ? { comment: approval.comment } : {}),
      },
    ],
  }
  const { next } = await steps.authorize('approve', actor, doc, approved)
  if (end > requestedEnd) {
    throw new DomainError(
      'invalid',
      'invalid_window',
      `the approved window lies inside the requested one: until may not be after ${doc.window.end}`,
    )
  }
  if (end <= Math.max(Date.parse(doc.window.start), steps.now())) {
    throw new DomainError(
      'invalid',
      'invalid_window',
      'the approved window must end after it starts and after now',
    )
  }
  const updated: Case = { ...approved, state: next }
  return steps.commit(updated, user, 'case_approved', {
    investigator: approval.investigator,
    until: iso(end),
  })
}

export async function deny(
  steps: CaseSteps,
  user: User,
  caseId: string,
  denial: z.infer<typeof Denial>,
): Promise<Case> {
  return decide(
    steps,
    user,
    caseId,
    'deny',
    'case_denied',
    (signed) => ({ denial: { ...signed, reason: denial.reason } }),
    { reason: denial.reason },
  )
}

/**
 * A decision the table allows on the case as it stands (consultation, denial): the case moves to
 * the table's next state with the decision signed by who took it and when, and is committed.
 */
async function decide(
  steps: CaseSteps,
  user: User,
  caseId: string,
  step: 'consult' | 'deny',
  kind: string,
  decision: (signed: { by: string; at: string }) => Partial<Case>,
  details: Record<string, unknown> = {},
): Promise<Case> {
  const { actor, doc } = await steps.open(user, caseId)
  const { next } = await steps.authorize(step, actor, doc)
  const signed = { by: user.user_id, at: iso(steps.now()) }
  return steps.commit({ ...doc, state: next, ...decision(signed) }, user, kind, details)
}
