/**
 * Investigations (bulletin sections 8 and 9): the requests that open a case and move it, step
 * for step, the case as the collector answers it, and the agents' side of an active case: the
 * capture grants they poll.
 */
import { z } from 'zod'
import { AgentGrants, CATEGORIES } from '../grants.ts'
import { AgentGrantsPoll } from '../v1.ts'
import { AUTH_ERRORS, idParameter, type Parameter, route } from './contract.ts'
import { CASE_KINDS, CASE_STATES, ROLES } from './names.ts'

export const Person = z.strictObject({
  name: z.string().min(1).max(200),
  email: z.email().optional(),
})
export type Person = z.infer<typeof Person>

export const CaseSubject = z.strictObject({
  /** The agent that captures: on the subject's host (host mode) or on the site's mirror port. */
  agent_id: z.string().regex(/^a-[a-z0-9]{16}$/, 'must be an agent id'),
  /** Gateway mode: the subject's addresses; empty in host mode (the host itself). */
  addresses: z
    .array(z.union([z.ipv4(), z.ipv6()]))
    .max(64)
    .default([]),
})
export type CaseSubject = z.infer<typeof CaseSubject>

const userId = z.string().regex(/^u-[a-z0-9]{16}$/, 'must be a user id')
const instant = z.iso.datetime({ offset: true })

/** 8.4a: the written request, with exactly the fields the bulletin asks for. */
export const CaseRequest = z.strictObject({
  data_required: z.string().min(1).max(2000),
  categories: z.array(z.enum(CATEGORIES)).min(1),
  staff_member: Person,
  supervisor: Person,
  receiving_official: userId,
  requesting_office: z.string().min(1).max(200),
  justification: z.string().min(1).max(5000),
  subjects: z.array(CaseSubject).min(1).max(16),
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
  subjects: z.array(CaseSubject).min(1).max(16),
  investigator: userId,
  hours: z.number().positive().max(72),
  /** Who is told (8.2: "registered and notified"): the delegation's contact, say. */
  notify: z.array(Person).min(1),
})
export const OiosOpening = z.strictObject({
  description: z.string().min(1).max(5000),
  categories: z.array(z.enum(CATEGORIES)).min(1),
  subjects: z.array(CaseSubject).min(1).max(16),
  window: z.strictObject({ start: instant, end: instant }),
  receiving_official: userId,
})
export const Designation = z.strictObject({
  category: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/),
  user_id: userId,
  position: z.enum(['designee', 'alternate']),
})

// --- Answers ---

export const PersonRecord = z.strictObject({ name: z.string(), email: z.string().optional() })
export const Case = z
  .strictObject({
    case_id: z.string(),
    kind: z.enum(CASE_KINDS),
    state: z.enum(CASE_STATES),
    created_at: z.string(),
    requester: z
      .string()
      .describe('who filed it (standard), opened it (technical, OIOS) or asked verbally'),
    recorded_by: z.string(),
    emergency: z.boolean(),
    written_request_due: z.string().optional(),
    written_request_at: z.string().optional(),
    description: z.string(),
    categories: z.array(z.enum(CATEGORIES)),
    staff_member: PersonRecord.optional(),
    supervisor: PersonRecord.optional(),
    receiving_official: z.string().optional(),
    requesting_office: z.string().optional(),
    justification: z.string().optional(),
    subjects: z.array(z.strictObject({ agent_id: z.string(), addresses: z.array(z.string()) })),
    window: z.strictObject({ start: z.string(), end: z.string() }),
    consultation: z
      .strictObject({ by: z.string(), at: z.string(), summary: z.string() })
      .optional(),
    emergency_confirmation: z
      .strictObject({ by: z.string(), at: z.string(), statement: z.string() })
      .optional(),
    approvals: z.array(
      z.strictObject({
        by: z.string(),
        at: z.string(),
        until: z.string(),
        comment: z.string().optional(),
        kind: z.enum(['approval', 'extension']),
      }),
    ),
    denial: z.strictObject({ by: z.string(), at: z.string(), reason: z.string() }).optional(),
    investigator: z.string().optional(),
    notice: z
      .strictObject({
        method: z.enum(['outbox', 'in_person']),
        by: z.string(),
        at: z.string(),
        to: z.array(z.string()),
        given_by: z.string().optional(),
        witness: z.string().optional(),
        message_ids: z.array(z.string()).optional(),
      })
      .optional(),
    closing: z.strictObject({ by: z.string(), at: z.string(), outcome: z.string() }).optional(),
    purged_at: z.string().optional(),
    notify: z.array(PersonRecord).optional(),
  })
  .describe('an investigation case as stored: every step it went through, and by whom')
export const CaseList = z.strictObject({ cases: z.array(Case) })
export const AccessGrant = z.strictObject({
  case_id: z.string(),
  token: z
    .string()
    .describe("the investigator's access grant (EdDSA JWS), presented with each drill-down"),
  window: z.strictObject({ start: z.string(), end: z.string() }),
  categories: z.array(z.enum(CATEGORIES)),
})
export const Designations = z.strictObject({
  category: z.string(),
  designees: z.array(
    z.strictObject({ user_id: z.string(), position: z.enum(['designee', 'alternate']) }),
  ),
})

export type Case = z.output<typeof Case>

/** The errors of a case step (collector/cases/workflow.ts), beside 500. */
const CASE_ERRORS = {
  '400':
    'the body is not JSON or does not match the schema (`malformed_json`, `invalid_request`), ' +
    'or a rule on its values refused it (`invalid_window`, `window_too_long`, `unknown_user`, ' +
    '`wrong_role`)',
  '401': AUTH_ERRORS['401'],
  '403':
    "the step is not this user's to take: their roles, or separation of duties (requester, " +
    'approver and investigator are three different people) (`forbidden`)',
  '404':
    'no such case, or one this user may not see (`not_found`); OIOS cases do not exist for ITSD roles',
  '409':
    'the case is not in a state that takes this step (`wrong_state`), or no outbox channel is ' +
    'configured for the notice (`no_outbox`)',
  '503': 'the register could not be written, so nothing was done (`register_unavailable`)',
}
const { '404': _notFound, ...OPENING_ERRORS } = CASE_ERRORS

const caseId: Parameter = idParameter('case')

/** POST /v1/cases/<kind>: opens a case, answered with it. */
const opening = <const P extends string, const B extends z.ZodType>(
  path: P,
  operationId: string,
  summary: string,
  body: B,
  description: string,
) =>
  route({
    method: 'POST',
    path,
    operationId,
    summary,
    description,
    security: 'user',
    roles: ROLES,
    body,
    status: 201,
    answer: { description: 'the case', schema: Case },
    errors: OPENING_ERRORS,
  })

/** POST /v1/cases/{id}/<step>: one step of a case's workflow, answered with the case after it. */
const step = <const S extends string, const B extends z.ZodType>(
  name: S,
  operationId: string,
  summary: string,
  body: B,
  description: string,
) =>
  route({
    method: 'POST',
    path: `/v1/cases/{id}/${name}`,
    operationId,
    summary,
    description,
    security: 'user',
    roles: ROLES,
    parameters: [caseId],
    body,
    status: 200,
    answer: { description: 'the case after the step', schema: Case },
    errors: CASE_ERRORS,
  })

export const listCases = route({
  method: 'GET',
  path: '/v1/cases',
  operationId: 'listCases',
  summary: 'The cases this user may see',
  description:
    'Approvers, auditors and admins see ITSD cases (standard and technical); the OIOS ' +
    'Chief of Investigations also sees standard cases; an ITSD lead, technical cases; ' +
    'anyone else, the cases they requested, investigate or receive. OIOS cases are listed ' +
    'to OIOS investigators, the OIOS Chief, and ITSD designees whose 9.2e designations ' +
    'cover every category of the case.',
  security: 'user',
  roles: ROLES,
  status: 200,
  answer: { description: 'the cases, most recently changed first', schema: CaseList },
  errors: { '401': AUTH_ERRORS['401'] },
})

export const fileCase = opening(
  '/v1/cases',
  'fileCase',
  'File a written investigation request (requester; bulletin 8.4a)',
  CaseRequest,
  'The request names the data required, the staff member and their supervisor, the ' +
    'official who receives the records, the subjects (agents) and the window. The case ' +
    'starts `requested`: nothing may be captured or read before approval.',
)
export const recordEmergency = opening(
  '/v1/cases/emergency',
  'recordEmergency',
  'Record a verbal request in an emergency (approver; 8.4b)',
  EmergencyRequest,
  'The written request must follow (POST /v1/cases/{id}/written-request) within ' +
    '`cases.emergency_written_hours`, or the case is suspended and its grants revoked. ' +
    'An emergency case may be approved without the OIOS consultation (8.4d).',
)
export const openTechnicalCase = opening(
  '/v1/cases/technical',
  'openTechnicalCase',
  'Open a technical case on a disruption (ITSD lead; 8.2)',
  TechnicalOpening,
  'Active at once with no approval: flow records only, for at most ' +
    '`cases.technical_max_hours` (72 h at most); the people in `notify` are told through ' +
    'the outbox and the opening is registered.',
)
export const openOiosCase = opening(
  '/v1/cases/oios',
  'openOiosCase',
  'Open an OIOS investigation (OIOS investigator; section 9)',
  OiosOpening,
  'Active at once: no approval, no notice to the staff member (9.2b). Its record is ' +
    "OIOS's register alone; ITSD's register holds nothing of it and ITSD roles cannot see it.",
)

export const getCase = route({
  method: 'GET',
  path: '/v1/cases/{id}',
  operationId: 'getCase',
  summary: 'One case, if this user may see it',
  description:
    'Reading a case applies time to it: an ended window makes it `expired`, an overdue ' +
    'written request after an emergency makes it `suspended`; both revoke its grants.',
  security: 'user',
  roles: ROLES,
  parameters: [caseId],
  status: 200,
  answer: { description: 'the case', schema: Case },
  errors: {
    '401': AUTH_ERRORS['401'],
    '404': CASE_ERRORS['404'],
    '503': CASE_ERRORS['503'],
  },
})

export const fileWrittenRequest = step(
  'written-request',
  'fileWrittenRequest',
  'The written request after a verbal one (the verbal requester; 8.4b)',
  CaseRequest,
  'Only for an emergency case that is still requested, approved or active; it keeps the ' +
    'case from being suspended.',
)
export const recordConsultation = step(
  'consultation',
  'recordConsultation',
  'Record the OIOS consultation (OIOS Chief of Investigations; 8.4d)',
  Consultation,
  'A standard case in state `requested`. Approval is refused until it is on record, ' +
    'unless the case is an emergency.',
)
export const confirmEmergency = step(
  'emergency-confirmation',
  'confirmEmergency',
  'Confirm an emergency (another approver or the OIOS Chief; 8.4b)',
  EmergencyConfirmation,
  'An emergency case in state `requested`, confirmed once, by someone who neither ' +
    'recorded it nor asked for it. Approval is refused until it is on record, and its ' +
    'approver is neither the recorder nor the confirmer.',
)
export const approveCase = step(
  'approval',
  'approveCase',
  'Approve a request and name the investigator (approver; 8.4c)',
  Approval,
  'The approver is neither the requester nor the investigator (nor, in an emergency, ' +
    'its recorder or confirmer); the investigator holds the itsd_investigator role. The ' +
    'approved window lies inside the requested one: `until` may end it earlier, never ' +
    'later (400 `invalid_window`). A written request needs the OIOS consultation on record, ' +
    'an emergency its confirmation. The case becomes `approved`; grants follow the notice.',
)

export const denyCase = step(
  'denial',
  'denyCase',
  'Deny a request (approver)',
  Denial,
  'A case in state `requested`, by an approver who is not its requester.',
)

export const recordNotice = step(
  'notice',
  'recordNotice',
  'Inform the staff member and supervisor before access (an approver, not the investigator; 8.5a)',
  Notice,
  'Recorded by an approver who is neither the requester nor the investigator. `outbox`: ' +
    'sent by webhook or mail and on record only once delivered; `in_person`: who gave it, ' +
    'a witness other than them, when (not in the future, not before the approval: 400 ' +
    '`invalid_notice`), to whom. The case becomes `active` and the grants are issued: one ' +
    "per subject agent, and the investigator's access grant.",
)

export const extendCase = step(
  'extension',
  'extendCase',
  'Extend an active case: a new approval (approver; 8.5f)',
  Extension,
  'The new end is later than the current one and at most `cases.max_grant_days` from ' +
    'now; the grants are revoked and issued again for the longer window.',
)

export const closeCase = step(
  'closing',
  'closeCase',
  'Close a case (approver, requester or investigator; 8.5f)',
  Closing,
  'The staff member is informed through the outbox (standard cases, when one is ' +
    'configured); the grants are revoked at once and tier I data is purged.',
)

export const getAccessGrant = route({
  method: 'GET',
  path: '/v1/cases/{id}/access-grant',
  operationId: 'getAccessGrant',
  summary: "The investigator's access grant for an active case (the investigator only)",
  security: 'user',
  roles: ROLES,
  parameters: [caseId],
  status: 200,
  answer: { description: 'the access grant', schema: AccessGrant },
  errors: {
    '401': AUTH_ERRORS['401'],
    '403': "the user is not the case's investigator (`forbidden`)",
    '404': CASE_ERRORS['404'],
    '409': 'the case is not active, or no access grant is in force (`wrong_state`)',
    '503': CASE_ERRORS['503'],
  },
})

export const designateForOios = route({
  method: 'POST',
  path: '/v1/oios/designations',
  operationId: 'designateForOios',
  summary: 'Designate an ITSD officer to assist OIOS (admin; 9.2e)',
  description:
    'One designee and at most two alternates per resource category; the designated ' +
    'user holds the oios_designee role.',
  security: 'user',
  roles: ROLES,
  body: Designation,
  status: 201,
  answer: { description: "the category's designees after this one", schema: Designations },
  errors: {
    '400': CASE_ERRORS['400'],
    ...AUTH_ERRORS,
    '409':
      'the category already has its designee or two alternates (`designation_limit`), ' +
      'or the user is already designated for it (`already_designated`)',
    '503': CASE_ERRORS['503'],
  },
})

/**
 * The grants poll's query: the size of the register head the agent kept (0: none yet). An agent
 * that sends it gets `register` in the answer; one that does not (older agents, whose strict
 * schema would refuse an unknown field) gets the grants alone.
 */
export const GrantsPollQuery = z.strictObject({
  register_size: z.coerce
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .describe(
      'the size of the ITSD register head the agent kept (0: none). With it the answer ' +
        'also carries `register`: the latest signed head, the RFC 6962 proof from that ' +
        'size, and the register key; without it (older agents), the grants alone',
    ),
})

export const agentGrants = route({
  method: 'GET',
  path: '/v1/agents/grants',
  operationId: 'agentGrants',
  summary: 'The grants this agent must run now; anything not listed must stop',
  description:
    'Signed capture grants (EdDSA JWS, verified with the key pinned at enrollment) of ' +
    'active cases naming this agent. A closed, expired or suspended case drops out at once.',
  security: 'agent',
  query: GrantsPollQuery,
  status: 200,
  answer: {
    description: 'the grants (and with register_size, the register head)',
    schema: AgentGrantsPoll,
  },
  errors: {
    '400': 'register_size is not an integer >= 0 (`invalid_request`)',
    '401': 'no credential, or an unknown, wrong or revoked one (`unauthenticated`)',
  },
})

export const CASE_REQUESTS = {
  CaseRequest,
  EmergencyRequest,
  Consultation,
  EmergencyConfirmation,
  Approval,
  Denial,
  Notice,
  Extension,
  Closing,
  TechnicalOpening,
  OiosOpening,
  Designation,
}
export const CASE_RESPONSES = {
  Case,
  CaseList,
  AccessGrant,
  Designations,
  AgentGrants,
  AgentGrantsPoll,
}
