/**
 * Cases that open without a request: 8.2 technical monitoring (ITSD, notified through the
 * outbox) and section 9 OIOS cases (no approval, no notice, their own register); and 9.2e, the
 * designation of OIOS officers per resource category.
 */
import type { z } from 'zod'
import type { Designation, OiosOpening, TechnicalOpening } from '../../protocol/api/cases.ts'
import type { User } from '../auth/users.ts'
import { DomainError } from '../errors.ts'
import type { Case } from './model.ts'
import { newCaseId } from './repository.ts'
import { type CaseSteps, HOUR, iso } from './steps.ts'

/** What a case opened without a request is: approved at once, by and for the one who opens it. */
function openedCase(
  user: User,
  now: number,
  opening: Pick<Case, 'kind' | 'description' | 'categories' | 'subjects' | 'window'> &
    Partial<Pick<Case, 'investigator' | 'notify' | 'receiving_official'>>,
): Case {
  const { kind, description, categories, subjects, window, ...rest } = opening
  // In the order a stored case has always had its fields.
  return {
    case_id: newCaseId(),
    kind,
    state: 'approved',
    emergency: false,
    created_at: iso(now),
    requester: user.user_id,
    recorded_by: user.user_id,
    description,
    categories,
    subjects,
    window,
    approvals: [],
    ...rest,
  }
}

/** 8.2: ITSD starts monitoring on a technical disruption: flows only, 72 hours at most. */
export async function openTechnical(
  steps: CaseSteps,
  user: User,
  opening: z.infer<typeof TechnicalOpening>,
): Promise<Case> {
  const now = steps.now()
  const hours = Math.min(opening.hours, steps.deps.policy.technical_max_hours)
  const draft = openedCase(user, now, {
    kind: 'technical',
    description: opening.description,
    categories: ['flows'],
    subjects: opening.subjects,
    window: { start: iso(now), end: iso(now + hours * HOUR) },
    investigator: opening.investigator,
    notify: opening.notify,
  })
  await steps.authorize('open_technical', user, draft, draft, true)
  if (!steps.deps.outbox.configured) {
    throw new DomainError(
      'conflict',
      'no_outbox',
      'a technical case is notified when it starts (8.2): configure cases.outbox first',
    )
  }
  await steps.record(draft, user, 'technical_case_opened', {
    description: opening.description,
    hours,
    agents: opening.subjects.map((s) => s.agent_id),
  })
  const sent = await steps.deps.outbox.send(
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
  await steps.record(notified, user, 'notice_given', {
    method: 'outbox',
    delivered: sent.filter((m) => m.delivered_at !== null).length,
    queued: sent.length,
  })
  return steps.activate(notified, user)
}

/** Section 9: OIOS opens its own case, with no approval and no notice; its record is its own. */
export async function openOios(
  steps: CaseSteps,
  user: User,
  opening: z.infer<typeof OiosOpening>,
): Promise<Case> {
  const draft = openedCase(user, steps.now(), {
    kind: 'oios',
    description: opening.description,
    categories: opening.categories,
    subjects: opening.subjects,
    window: opening.window,
    investigator: user.user_id,
    receiving_official: opening.receiving_official,
  })
  await steps.authorize('open_oios', user, draft, draft, true)
  steps.checkWindow(opening.window, steps.maxGrantMs)
  await steps.record(draft, user, 'oios_case_opened', {
    categories: opening.categories,
    agents: opening.subjects.map((s) => s.agent_id),
  })
  return steps.activate(draft, user)
}

/** 9.2e: who may designate, and whom: an ITSD admin, an officer holding the designee role. */
export async function checkDesignation(
  steps: CaseSteps,
  user: User,
  designation: z.infer<typeof Designation>,
): Promise<void> {
  if (!user.roles.includes('admin'))
    throw new DomainError('forbidden', 'forbidden', 'designations are made by an ITSD admin (9.2e)')
  await steps.requireRole(designation.user_id, 'oios_designee', 'the designated officer')
}

/** 9.2e: one officer and at most two alternates per category (after checkDesignation). */
export async function designate(
  steps: CaseSteps,
  user: User,
  designation: z.infer<typeof Designation>,
): Promise<{ category: string; designees: { user_id: string; position: string }[] }> {
  const current = await steps.designations.designees(designation.category)
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
  await steps.deps.register.append({
    register: 'itsd',
    kind: 'oios_designation',
    actor: user.user_id,
    details: {
      category: designation.category,
      user_id: designation.user_id,
      position: designation.position,
    },
  })
  const now = steps.now()
  await steps.designations.insert({
    ...designation,
    designated_by: user.user_id,
    designated_at: now,
  })
  return {
    category: designation.category,
    designees: [...current, { user_id: designation.user_id, position: designation.position }],
  }
}

function technicalText(doc: Case): string {
  return [
    'ITSD has started technical monitoring under ST/SGB/2004/15, section 8.2.',
    `Case ${doc.case_id}: ${doc.description}`,
    `Flow records only, from ${doc.window.start} to ${doc.window.end}.`,
  ].join('\n')
}
