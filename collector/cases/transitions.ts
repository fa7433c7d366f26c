/**
 * The case workflow as one table: for each kind of case and each step, the states it may be
 * taken from, the state it leads to, who may take it, who may not (separation of duties), the
 * people its body names and what they must be, and the facts that must hold. The case service
 * applies it generically (`authorize`); docs/cases.md shows it (`renderTransitions`), and a test
 * fails when the two differ.
 *
 * Kinds: a written request (8.4a), an emergency recorded from a verbal request (8.4b), a
 * technical case (8.2) and an OIOS case (section 9).
 */

import type { CaseState, Role } from '../../protocol/api/names.ts'
import { CATEGORIES, type Category } from '../../protocol/grants.ts'
import { DomainError } from '../errors.ts'
import type { Case } from './model.ts'

export const WORKFLOW_KINDS = ['written', 'emergency', 'technical', 'oios'] as const
export type WorkflowKind = (typeof WORKFLOW_KINDS)[number]

export const kindOf = (doc: Pick<Case, 'kind' | 'emergency'>): WorkflowKind =>
  doc.kind === 'standard' ? (doc.emergency ? 'emergency' : 'written') : doc.kind

export const STEPS = [
  'view',
  'file',
  'record_emergency',
  'open_technical',
  'open_oios',
  'written_request',
  'consult',
  'confirm_emergency',
  'approve',
  'deny',
  'notice',
  'access_grant',
  'extend',
  'close',
  'expire',
  'suspend',
] as const
export type Step = (typeof STEPS)[number]

/**
 * How a person stands to one case. `designee`: an ITSD officer designated (9.2e) for resource
 * categories that cover every category of the OIOS case.
 */
export const RELATIONS = [
  'requester',
  'recorder',
  'confirmer',
  'approver',
  'investigator',
  'receiving_official',
  'designee',
] as const
export type Relation = (typeof RELATIONS)[number]

/** Who may take a step: a role, a relation to the case, or both; `system` is the timer. */
export type Actor = { role: Role; as?: Relation } | { as: Relation } | 'system'

/** A person the step's body names (an investigator, a verbal requester, a receiving official). */
export interface Named {
  party: 'investigator' | 'requester' | 'receiving_official'
  role: Role
  /** Relations the named person must not hold to the case as the step leaves it. */
  notAs: readonly Relation[]
}

/** Facts about the case, beyond its state, that a step needs. */
export const CONDITIONS = {
  consulted: {
    means: 'the OIOS consultation is on record',
    holds: (doc: Case) => doc.consultation !== undefined,
    refusal: 'OIOS must be consulted before approval, except in an emergency (8.4d)',
  },
  not_consulted: {
    means: 'no OIOS consultation is on record yet',
    holds: (doc: Case) => doc.consultation === undefined,
    refusal: 'OIOS was already consulted on this case',
  },
  confirmed: {
    means: "the emergency's confirmation is on record",
    holds: (doc: Case) => doc.emergency_confirmation !== undefined,
    refusal: 'an emergency is approved only once someone other than its recorder confirmed it',
  },
  not_confirmed: {
    means: 'no confirmation is on record yet',
    holds: (doc: Case) => doc.emergency_confirmation === undefined,
    refusal: 'the emergency was already confirmed',
  },
  written_request_pending: {
    means: 'the written request has not been filed yet',
    holds: (doc: Case) => doc.written_request_at === undefined,
    refusal: 'the written request was already filed',
  },
  written_request_overdue: {
    means: 'the written request is past due and not filed',
    holds: (doc: Case, now: number) =>
      doc.written_request_at === undefined &&
      doc.written_request_due !== undefined &&
      now > Date.parse(doc.written_request_due),
    refusal: 'the written request is not overdue',
  },
  window_open: {
    means: 'the approved window has not ended',
    holds: (doc: Case, now: number) => now < Date.parse(doc.window.end),
    refusal: 'the approved window has already ended',
  },
  window_ended: {
    means: 'the window has ended',
    holds: (doc: Case, now: number) => now >= Date.parse(doc.window.end),
    refusal: 'the window has not ended',
  },
} as const satisfies Record<
  string,
  { means: string; holds: (doc: Case, now: number) => boolean; refusal: string }
>
export type Condition = keyof typeof CONDITIONS

export interface Transition {
  kind: WorkflowKind
  step: Step
  /** The states the step is taken from; `new` for a step that opens a case. */
  from: readonly (CaseState | 'new')[]
  /** The state it leads to; `same` leaves the state as it was. */
  to: CaseState | 'same'
  /** Any one of these may take it. */
  by: readonly Actor[]
  /** The one who takes it must not hold any of these relations to the case. */
  notAs: readonly Relation[]
  names?: readonly Named[]
  when?: readonly Condition[]
}

const LIVE = ['requested', 'approved', 'active'] as const
const ALL_STATES = [
  'requested',
  'approved',
  'active',
  'denied',
  'suspended',
  'closed',
  'expired',
] as const
const STANDARD_READERS: Actor[] = [
  { role: 'approver' },
  { role: 'auditor' },
  { role: 'admin' },
  { role: 'oios_chief' },
  { as: 'requester' },
  { as: 'investigator' },
  { as: 'receiving_official' },
]
const STANDARD_CLOSERS: Actor[] = [
  { role: 'approver' },
  { as: 'requester' },
  { as: 'investigator' },
]
const RECEIVING: Named = { party: 'receiving_official', role: 'receiving_official', notAs: [] }

/** What both standard kinds share after the request: notice, access, extension, end. */
function standardTail(kind: 'written' | 'emergency', approvers: Relation[]): Transition[] {
  return [
    {
      kind,
      step: 'deny',
      from: ['requested'],
      to: 'denied',
      by: [{ role: 'approver' }],
      notAs: ['requester'],
    },
    {
      kind,
      step: 'notice',
      from: ['approved'],
      to: 'active',
      by: [{ role: 'approver' }],
      notAs: ['requester', 'investigator'],
      when: ['window_open'],
    },
    {
      kind,
      step: 'access_grant',
      from: ['active'],
      to: 'same',
      by: [{ as: 'investigator' }],
      notAs: [],
    },
    {
      kind,
      step: 'extend',
      from: ['active'],
      to: 'same',
      by: [{ role: 'approver' }],
      notAs: ['requester', 'investigator', ...approvers.filter((r) => r !== 'approver')],
    },
    { kind, step: 'close', from: LIVE, to: 'closed', by: STANDARD_CLOSERS, notAs: [] },
    { kind, step: 'view', from: ALL_STATES, to: 'same', by: STANDARD_READERS, notAs: [] },
    {
      kind,
      step: 'expire',
      from: ['approved', 'active'],
      to: 'expired',
      by: ['system'],
      notAs: [],
      when: ['window_ended'],
    },
  ]
}

export const TRANSITIONS: readonly Transition[] = [
  // 8.4a: a written request.
  {
    kind: 'written',
    step: 'file',
    from: ['new'],
    to: 'requested',
    by: [{ role: 'requester' }],
    notAs: [],
    names: [RECEIVING],
  },
  {
    kind: 'written',
    step: 'consult',
    from: ['requested'],
    to: 'same',
    by: [{ role: 'oios_chief' }],
    notAs: ['requester'],
    when: ['not_consulted'],
  },
  {
    kind: 'written',
    step: 'approve',
    from: ['requested'],
    to: 'approved',
    by: [{ role: 'approver' }],
    notAs: ['requester'],
    names: [{ party: 'investigator', role: 'itsd_investigator', notAs: ['requester', 'approver'] }],
    when: ['consulted'],
  },
  ...standardTail('written', ['approver']),

  // 8.4b: a verbal request in an emergency, recorded by one approver, confirmed by another person,
  // approved by a third; the written request follows in time or the case is suspended.
  {
    kind: 'emergency',
    step: 'record_emergency',
    from: ['new'],
    to: 'requested',
    by: [{ role: 'approver' }],
    notAs: ['requester'],
    names: [{ party: 'requester', role: 'requester', notAs: ['recorder'] }, RECEIVING],
  },
  {
    kind: 'emergency',
    step: 'written_request',
    from: LIVE,
    to: 'same',
    by: [{ as: 'requester' }],
    notAs: [],
    when: ['written_request_pending'],
  },
  {
    kind: 'emergency',
    step: 'consult',
    from: ['requested'],
    to: 'same',
    by: [{ role: 'oios_chief' }],
    notAs: ['requester'],
    when: ['not_consulted'],
  },
  {
    kind: 'emergency',
    step: 'confirm_emergency',
    from: ['requested'],
    to: 'same',
    by: [{ role: 'approver' }, { role: 'oios_chief' }],
    notAs: ['requester', 'recorder'],
    when: ['not_confirmed'],
  },
  {
    kind: 'emergency',
    step: 'approve',
    from: ['requested'],
    to: 'approved',
    by: [{ role: 'approver' }],
    notAs: ['requester', 'recorder', 'confirmer'],
    names: [
      {
        party: 'investigator',
        role: 'itsd_investigator',
        notAs: ['requester', 'recorder', 'confirmer', 'approver'],
      },
    ],
    when: ['confirmed'],
  },
  ...standardTail('emergency', ['approver', 'recorder', 'confirmer']),
  {
    kind: 'emergency',
    step: 'suspend',
    from: LIVE,
    to: 'suspended',
    by: ['system'],
    notAs: [],
    when: ['written_request_overdue'],
  },

  // 8.2: a technical disruption; notified through the outbox as it opens.
  {
    kind: 'technical',
    step: 'open_technical',
    from: ['new'],
    to: 'active',
    by: [{ role: 'itsd_lead' }],
    notAs: [],
    names: [{ party: 'investigator', role: 'itsd_investigator', notAs: ['requester'] }],
  },
  {
    kind: 'technical',
    step: 'access_grant',
    from: ['active'],
    to: 'same',
    by: [{ as: 'investigator' }],
    notAs: [],
  },
  {
    kind: 'technical',
    step: 'close',
    from: LIVE,
    to: 'closed',
    by: [...STANDARD_CLOSERS, { role: 'itsd_lead' }],
    notAs: [],
  },
  {
    kind: 'technical',
    step: 'view',
    from: ALL_STATES,
    to: 'same',
    by: [
      { role: 'approver' },
      { role: 'auditor' },
      { role: 'admin' },
      { role: 'itsd_lead' },
      { as: 'requester' },
      { as: 'investigator' },
      { as: 'receiving_official' },
    ],
    notAs: [],
  },
  {
    kind: 'technical',
    step: 'expire',
    from: ['approved', 'active'],
    to: 'expired',
    by: ['system'],
    notAs: [],
    when: ['window_ended'],
  },

  // Section 9: OIOS opens its own case; no approval, no notice; ITSD roles never see it.
  {
    kind: 'oios',
    step: 'open_oios',
    from: ['new'],
    to: 'active',
    by: [{ role: 'oios_investigator' }],
    notAs: [],
    names: [RECEIVING],
  },
  {
    kind: 'oios',
    step: 'access_grant',
    from: ['active'],
    to: 'same',
    by: [{ as: 'investigator' }],
    notAs: [],
  },
  {
    kind: 'oios',
    step: 'close',
    from: LIVE,
    to: 'closed',
    by: [{ role: 'oios_investigator' }, { role: 'oios_chief' }],
    notAs: [],
  },
  {
    kind: 'oios',
    step: 'view',
    from: ALL_STATES,
    to: 'same',
    by: [
      { role: 'oios_investigator' },
      { role: 'oios_chief' },
      { role: 'oios_designee', as: 'designee' },
    ],
    notAs: [],
  },
  {
    kind: 'oios',
    step: 'expire',
    from: ['approved', 'active'],
    to: 'expired',
    by: ['system'],
    notAs: [],
    when: ['window_ended'],
  },
]

// --- Designations (9.2e) -----------------------------------------------------------------------

/**
 * ITSD designates officers per ICT resource category (9.2e). Tally holds data of one resource,
 * the network: a designation for `network` covers every tier I category, one named after a tier I
 * category covers that category alone, any other (mail, telephony) covers nothing held here.
 */
export function coveredCategories(designations: Iterable<string>): Set<Category> {
  const covered = new Set<Category>()
  for (const d of designations) {
    if (d === 'network') for (const c of CATEGORIES) covered.add(c)
    else if ((CATEGORIES as readonly string[]).includes(d)) covered.add(d as Category)
  }
  return covered
}

// --- Applying the table ------------------------------------------------------------------------

/** The one who takes a step, and the designations they hold (for OIOS cases). */
export interface StepActor {
  user_id: string
  roles: readonly Role[]
  /** The 9.2e resource categories this person is designated for. */
  designations?: Iterable<string>
}

/** How `userId` stands to the case. */
export function relationsOf(
  doc: Case,
  userId: string,
  designations: Iterable<string> = [],
): Set<Relation> {
  const out = new Set<Relation>()
  if (doc.requester === userId) out.add('requester')
  if (doc.emergency && doc.recorded_by === userId) out.add('recorder')
  if (doc.emergency_confirmation?.by === userId) out.add('confirmer')
  if (doc.approvals.some((a) => a.by === userId)) out.add('approver')
  if (doc.investigator === userId) out.add('investigator')
  if (doc.receiving_official === userId) out.add('receiving_official')
  if (doc.kind === 'oios') {
    const covered = coveredCategories(designations)
    if (doc.categories.length > 0 && doc.categories.every((c) => covered.has(c)))
      out.add('designee')
  }
  return out
}

function actorMatches(actor: Actor, roles: readonly Role[], relations: Set<Relation>): boolean {
  if (actor === 'system') return false
  if ('role' in actor && !roles.includes(actor.role)) return false
  if (actor.as !== undefined && !relations.has(actor.as)) return false
  return true
}

export function transitionsFor(kind: WorkflowKind, step: Step): Transition[] {
  return TRANSITIONS.filter((t) => t.kind === kind && t.step === step)
}

/** Whether `actor` may take `step` on `doc` by who they are alone (the `view` step: may see it). */
export function mayTake(step: Step, doc: Case, actor: StepActor): boolean {
  const relations = relationsOf(doc, actor.user_id, actor.designations)
  return transitionsFor(kindOf(doc), step).some((t) =>
    t.by.some((a) => actorMatches(a, actor.roles, relations)),
  )
}

export interface Authorized {
  transition: Transition
  /** The state the case is in after the step. */
  next: CaseState
}

/**
 * Applies the table to one step. `before` is the case as stored (for an opening step, the case
 * the step would create, in no state yet); `after` is the case as the step would leave it,
 * before its state changes (the people the body names and the actor's own record in place).
 * `rolesOf` resolves the people the body names.
 *
 * Refusals, in order: no row for this kind and step (409), not among who may take it (403),
 * a relation separation of duties forbids (403), a named person who may not be (403) or lacks
 * the role (400), the wrong state (409), a condition that does not hold (409).
 */
export async function authorize(input: {
  step: Step
  before: Case
  after?: Case
  opening?: boolean
  actor: StepActor
  now: number
  rolesOf: (userId: string) => Promise<readonly Role[] | undefined>
}): Promise<Authorized> {
  const { step, before, actor, now } = input
  const after = input.after ?? before
  const separated = rowsForActor(step, before, after, actor)
  const state = input.opening === true ? 'new' : before.state
  const [transition] = separated.filter((t) => t.from.includes(state))
  if (transition === undefined) {
    throw new DomainError(
      'conflict',
      'wrong_state',
      `the case is ${state}; ${label(step)} is not taken now`,
    )
  }
  checkNamedRelations(transition, after)
  await checkNamedRoles(transition, after, input.rolesOf)
  for (const condition of transition.when ?? []) {
    if (!CONDITIONS[condition].holds(before, now))
      throw new DomainError('conflict', 'wrong_state', CONDITIONS[condition].refusal)
  }
  return { transition, next: transition.to === 'same' ? before.state : transition.to }
}

/** The kind's rows for the step that the actor may take, separation of duties applied. */
function rowsForActor(step: Step, before: Case, after: Case, actor: StepActor): Transition[] {
  const kind = kindOf(before)
  const rows = transitionsFor(kind, step)
  if (rows.length === 0)
    throw new DomainError('conflict', 'wrong_state', `a ${kind} case has no ${label(step)}`)
  const relationsBefore = relationsOf(before, actor.user_id, actor.designations)
  const permitted = rows.filter((t) =>
    t.by.some((a) => actorMatches(a, actor.roles, relationsBefore)),
  )
  if (permitted.length === 0)
    throw new DomainError('forbidden', 'forbidden', `${label(step)}: ${whoMay(rows)}`)
  const relationsAfter = relationsOf(after, actor.user_id, actor.designations)
  const separated = permitted.filter((t) => !t.notAs.some((r) => relationsAfter.has(r)))
  if (separated.length === 0) {
    const [row] = permitted
    throw new DomainError(
      'forbidden',
      'forbidden',
      `${label(step)}: not by the case's ${row?.notAs.filter((r) => relationsAfter.has(r)).join(' or ')} (separation of duties)`,
    )
  }
  return separated
}

/** No person the step names may also hold a relation to the case the row forbids. */
function checkNamedRelations(transition: Transition, after: Case): void {
  for (const named of transition.names ?? []) {
    const person = after[named.party]
    if (person === undefined) continue
    const held = relationsOf(after, person)
    const clash = named.notAs.filter((r) => held.has(r))
    if (clash.length > 0) {
      throw new DomainError(
        'forbidden',
        'forbidden',
        `the ${named.party.replace('_', ' ')} named cannot also be the case's ${clash.join(' or ')} (separation of duties)`,
      )
    }
  }
}

/** Every person the step names is a user holding the role the row asks of them. */
async function checkNamedRoles(
  transition: Transition,
  after: Case,
  rolesOf: (userId: string) => Promise<readonly Role[] | undefined>,
): Promise<void> {
  for (const named of transition.names ?? []) {
    const person = after[named.party]
    if (person === undefined) continue
    const roles = await rolesOf(person)
    const what =
      named.party === 'requester' ? 'the verbal requester' : `the ${named.party.replace('_', ' ')}`
    if (roles === undefined)
      throw new DomainError('invalid', 'unknown_user', `${what} ${person} is not a user`)
    if (!roles.includes(named.role))
      throw new DomainError(
        'invalid',
        'wrong_role',
        `${what} ${person} does not hold the ${named.role} role`,
      )
  }
}

/** The timer's steps (expiry, suspension): the state they lead to, if one applies now. */
export function systemStep(doc: Case, now: number): { step: Step; next: CaseState } | undefined {
  for (const step of ['suspend', 'expire'] as const) {
    for (const t of transitionsFor(kindOf(doc), step)) {
      if (!t.by.includes('system') || !t.from.includes(doc.state)) continue
      if ((t.when ?? []).every((c) => CONDITIONS[c].holds(doc, now)))
        return { step, next: t.to === 'same' ? doc.state : t.to }
    }
  }
  return undefined
}

const label = (step: Step): string => step.replaceAll('_', ' ')

function describeActor(actor: Actor): string {
  if (actor === 'system') return 'the collector (time)'
  const parts: string[] = []
  if ('role' in actor) parts.push(`role ${actor.role}`)
  if (actor.as !== undefined) parts.push(`the case's ${actor.as.replace('_', ' ')}`)
  return parts.join(', as ')
}

const whoMay = (rows: Transition[]): string =>
  `only ${[...new Set(rows.flatMap((t) => t.by.map(describeActor)))].join(' or ')}`

// --- The table in the docs ---------------------------------------------------------------------

const code = (s: string) => `\`${s}\``

/** The table as docs/cases.md shows it, one row per kind and step. */
export function renderTransitions(): string {
  const header = ['kind', 'step', 'from', 'to', 'who may', 'who may not', 'names', 'needs']
  const rows = TRANSITIONS.map((t) => [
    t.kind,
    code(t.step),
    ALL_STATES.every((state) => t.from.includes(state)) ? 'any' : t.from.join(', '),
    t.to === 'same' ? '(same)' : t.to,
    t.by.map(describeActor).join('; '),
    t.notAs.length === 0 ? '' : t.notAs.map((r) => `the ${r.replace('_', ' ')}`).join(', '),
    (t.names ?? [])
      .map(
        (n) =>
          `${n.party.replace('_', ' ')} (${n.role}${n.notAs.length > 0 ? `; not the ${n.notAs.join(', ')}` : ''})`,
      )
      .join('; '),
    (t.when ?? []).map(code).join(', '),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`
  const conditions = (Object.keys(CONDITIONS) as Condition[]).map(
    (c) => `- ${code(c)}: ${CONDITIONS[c].means}`,
  )
  return [
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    ...conditions,
  ].join('\n')
}
