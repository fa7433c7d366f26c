/**
 * The steps of an approved case's life: 8.5a the notice that issues its grants, 8.5f the
 * extension (a new approval) and the closing that revokes them and purges tier I data.
 */
import type { z } from 'zod'
import type { Closing, Extension, Notice } from '../../protocol/api/cases.ts'
import type { User } from '../auth/users.ts'
import { DomainError } from '../errors.ts'
import type { Case } from './model.ts'
import { type Outbox, OutboxUnavailable } from './outbox.ts'
import { type CaseSteps, iso } from './steps.ts'

/** How far an in-person notice's time may run ahead of the collector's clock. */
const CLOCK_SKEW_MS = 60_000

/**
 * 8.5a: the staff member and supervisor are informed immediately before access. Recorded by
 * an approver who is neither the requester nor the investigator, with its evidence: the
 * outbox's delivery, or a named witness of the notice given in person, at a time that is
 * neither in the future nor before the approval. Then the grants are issued.
 */
export async function notice(
  steps: CaseSteps,
  user: User,
  caseId: string,
  notice: z.infer<typeof Notice>,
): Promise<Case> {
  const { actor, doc } = await steps.open(user, caseId)
  const { next } = await steps.authorize('notice', actor, doc)
  // The notice issues the grants: only for a case the register records as approved.
  await steps.onRecord(doc)
  const people = [doc.staff_member, doc.supervisor].filter((p) => p !== undefined)
  let record: Case['notice']
  if (notice.method === 'outbox') {
    let sent: Awaited<ReturnType<Outbox['send']>>
    try {
      sent = await steps.deps.outbox.send(
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
      at: iso(steps.now()),
      to: people.map((p) => p.email ?? p.name),
      message_ids: sent.map((m) => m.message_id),
    }
  } else {
    checkInPerson(steps, doc, notice)
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
  await steps.record(noticed, user, 'notice_given', {
    method: record.method,
    to: record.to,
    at: record.at,
    given_by: record.given_by,
    witness: record.witness,
  })
  return steps.activate({ ...noticed, state: next }, user)
}

/** An in-person notice's evidence: a witness who is not the giver, a time that can be true. */
function checkInPerson(
  steps: CaseSteps,
  doc: Case,
  notice: Extract<z.infer<typeof Notice>, { method: 'in_person' }>,
) {
  const name = (s: string) => s.trim().replace(/\s+/g, ' ').toLowerCase()
  if (name(notice.witness) === name(notice.given_by)) {
    throw new DomainError(
      'invalid',
      'invalid_notice',
      'the witness of an in-person notice is someone other than who gave it',
    )
  }
  const at = Date.parse(notice.given_at)
  if (at > steps.now() + CLOCK_SKEW_MS) {
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

/** 8.5f: a longer window needs a new approval, within the policy's maximum. */
export async function extend(
  steps: CaseSteps,
  user: User,
  caseId: string,
  extension: z.infer<typeof Extension>,
): Promise<Case> {
  const { actor, doc } = await steps.open(user, caseId)
  const until = Date.parse(extension.until)
  const extended: Case = {
    ...doc,
    window: { start: doc.window.start, end: iso(until) },
    approvals: [
      ...doc.approvals,
      { by: user.user_id, at: iso(steps.now()), until: iso(until), kind: 'extension' },
    ],
  }
  await steps.authorize('extend', actor, doc, extended)
  await steps.onRecord(doc)
  if (until <= Date.parse(doc.window.end))
    throw new DomainError(
      'invalid',
      'invalid_window',
      'an extension must end later than the current window',
    )
  if (until - steps.now() > steps.maxGrantMs) {
    throw new DomainError(
      'invalid',
      'window_too_long',
      `an extension may run at most ${steps.deps.policy.max_grant_days} days from now`,
    )
  }
  await steps.record(extended, user, 'case_extended', {
    until: iso(until),
    justification: extension.justification,
  })
  await steps.deps.grants.revokeCase(doc.case_id)
  return steps.activate(extended, user)
}

/** 8.5f: closing informs the staff member; grants end at once and tier I data is purged. */
export async function close(
  steps: CaseSteps,
  user: User,
  caseId: string,
  closing: z.infer<typeof Closing>,
): Promise<Case> {
  const { actor, doc } = await steps.open(user, caseId)
  await steps.authorize('close', actor, doc)
  const closed: Case = {
    ...doc,
    closing: { by: user.user_id, at: iso(steps.now()), outcome: closing.outcome },
  }
  // Registered and closed first; then the staff member is told (a failed delivery is
  // retried from the outbox).
  const ended = await steps.end(closed, 'closed', user, closing.outcome)
  // Only someone who was told of the access is told of its end (8.5a, 8.5f): a request
  // withdrawn before any notice stays unknown to them.
  if (
    doc.kind === 'standard' &&
    doc.notice !== undefined &&
    doc.staff_member !== undefined &&
    steps.deps.outbox.configured
  ) {
    await steps.deps.outbox
      .send(
        doc.case_id,
        [doc.staff_member],
        'Closing of the access to your ICT records (8.5f)',
        closingText(doc, closing.outcome),
      )
      .catch((err: unknown) =>
        steps.deps.log.error({ err, case_id: doc.case_id }, 'closing notice not queued'),
      )
  }
  return ended
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
