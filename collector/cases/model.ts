/**
 * An investigation case and the requests that move it, step for step as bulletin sections 8 and
 * 9 describe them. The schemas are the API's request bodies; `Case` is the stored document.
 */
import { z } from 'zod'
import { CATEGORIES, type Category } from '../../protocol/grants.ts'

export const CASE_KINDS = ['standard', 'technical', 'oios'] as const
export type CaseKind = (typeof CASE_KINDS)[number]

/**
 * requested: filed (8.4a), or recorded verbally in an emergency (8.4b); nothing may happen yet.
 * approved: approved (8.4c), waiting for the notice to the staff member (8.5a).
 * active: notice on record and grants issued; capture and drill-down may happen inside the window.
 * denied, suspended (the written request did not follow an emergency in time), closed (8.5f),
 * expired (the window ended), purged (tier I data deleted after delivery or end, 8.5e).
 */
export const CASE_STATES = [
  'requested',
  'approved',
  'active',
  'denied',
  'suspended',
  'closed',
  'expired',
  'purged',
] as const
export type CaseState = (typeof CASE_STATES)[number]

const person = z.strictObject({
  name: z.string().min(1).max(200),
  email: z.email().optional(),
})
export type Person = z.infer<typeof person>

const subject = z.strictObject({
  /** The agent that captures: on the subject's host (host mode) or on the site's mirror port. */
  agent_id: z.string().regex(/^a-[a-z0-9]{16}$/, 'must be an agent id'),
  /** Gateway mode: the subject's addresses; empty in host mode (the host itself). */
  addresses: z
    .array(z.union([z.ipv4(), z.ipv6()]))
    .max(64)
    .default([]),
})
export type CaseSubject = z.infer<typeof subject>

const userId = z.string().regex(/^u-[a-z0-9]{16}$/, 'must be a user id')
const instant = z.iso.datetime({ offset: true })

/** 8.4a: the written request, with exactly the fields the bulletin asks for. */
export const CaseRequest = z.strictObject({
  data_required: z.string().min(1).max(2000),
  categories: z.array(z.enum(CATEGORIES)).min(1),
  staff_member: person,
  supervisor: person,
  receiving_official: userId,
  requesting_office: z.string().min(1).max(200),
  justification: z.string().min(1).max(5000),
  subjects: z.array(subject).min(1).max(16),
  window: z.strictObject({ start: instant, end: instant }),
})
export type CaseRequest = z.infer<typeof CaseRequest>

/** 8.4b: a verbal request, recorded by the approver side, naming who asked. */
export const EmergencyRequest = CaseRequest.extend({
  verbal_requester: userId,
  received_at: instant,
})
export type EmergencyRequest = z.infer<typeof EmergencyRequest>

export const Consultation = z.strictObject({ summary: z.string().min(1).max(5000) })
/** 8.4b: someone other than the recorder confirms the emergency before it can be approved. */
export const EmergencyConfirmation = z.strictObject({
  /** How the emergency was confirmed (with whom, on what grounds), for the register. */
  statement: z.string().min(1).max(5000),
})
export const Approval = z.strictObject({
  investigator: userId,
  /** An earlier end than requested: the approved window lies inside the requested one. */
  until: instant.optional(),
  comment: z.string().max(5000).optional(),
})
export const Denial = z.strictObject({ reason: z.string().min(1).max(5000) })
export const Notice = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('outbox') }),
  z.strictObject({
    method: z.literal('in_person'),
    given_by: z.string().min(1).max(200),
    /** Someone other than who gave it, present when it was given: the notice's evidence. */
    witness: z.string().min(1).max(200),
    /** Not in the future, and not before the approval. */
    given_at: instant,
    to: z.array(z.enum(['staff_member', 'supervisor'])).min(1),
  }),
])
export const Extension = z.strictObject({
  until: instant,
  justification: z.string().min(1).max(5000),
})
export const Closing = z.strictObject({ outcome: z.string().min(1).max(5000) })
export const TechnicalOpening = z.strictObject({
  description: z.string().min(1).max(5000),
  subjects: z.array(subject).min(1).max(16),
  investigator: userId,
  hours: z.number().positive().max(72),
  /** Who is told (8.2: "registered and notified"): the delegation's contact, say. */
  notify: z.array(person).min(1),
})
export const OiosOpening = z.strictObject({
  description: z.string().min(1).max(5000),
  categories: z.array(z.enum(CATEGORIES)).min(1),
  subjects: z.array(subject).min(1).max(16),
  window: z.strictObject({ start: instant, end: instant }),
  receiving_official: userId,
})
export const Designation = z.strictObject({
  category: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/),
  user_id: userId,
  position: z.enum(['designee', 'alternate']),
})

export interface NoticeRecord {
  method: 'outbox' | 'in_person'
  by: string
  at: string
  to: string[]
  given_by?: string
  witness?: string
  message_ids?: string[]
}

export interface Case {
  case_id: string
  kind: CaseKind
  state: CaseState
  created_at: string
  /** Who filed it (standard), opened it (technical, OIOS) or asked verbally (emergency). */
  requester: string
  recorded_by: string
  emergency: boolean
  written_request_due?: string
  written_request_at?: string
  description: string
  categories: Category[]
  staff_member?: Person
  supervisor?: Person
  receiving_official?: string
  requesting_office?: string
  justification?: string
  subjects: CaseSubject[]
  window: { start: string; end: string }
  consultation?: { by: string; at: string; summary: string }
  /** 8.4b: an emergency confirmed by someone other than who recorded it. */
  emergency_confirmation?: { by: string; at: string; statement: string }
  approvals: {
    by: string
    at: string
    until: string
    comment?: string
    kind: 'approval' | 'extension'
  }[]
  denial?: { by: string; at: string; reason: string }
  investigator?: string
  notice?: NoticeRecord
  closing?: { by: string; at: string; outcome: string }
  purged_at?: string
  notify?: Person[]
}

export class CaseError extends Error {
  override name = 'CaseError'
  readonly status: 400 | 403 | 404 | 409
  readonly code: string
  constructor(status: 400 | 403 | 404 | 409, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}
