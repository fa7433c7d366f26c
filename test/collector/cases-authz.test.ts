/**
 * Who may take which step of an investigation, as a matrix: every case route × every role (plus
 * outsiders holding a participant's role, no token and a revoked token) × the case states where
 * it matters. Each combination either is in the exact allowed set and succeeds, or is refused
 * with 401/403/404/409 and an ErrorBody, changes nothing (the case document, the register and
 * every table a step writes are as they were) and shows nothing of the case.
 *
 * Then: separation of duties on one case, hostile strings in :id and in every string field of
 * every body, and unknown fields.
 *
 * Failures are collected per test and reported together, each naming its route, user and state.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Case } from '../../collector/cases/model.ts'
import { selectRows } from '../../collector/store/rows.ts'
import { ROLES, type Role } from '../../protocol/api/names.ts'
import { ErrorBody } from '../../protocol/v1.ts'
import {
  type Answer,
  type App,
  type CasesHarness,
  call,
  caseRequest,
  caseSecrets,
  fingerprint,
  iso,
  marker,
  openCasesHarness,
  registerSize,
  snapshot,
  storedCase,
  type TestAgent,
  type TestUser,
  writtenRequest,
} from './cases-harness.ts'

const HOUR = 3_600_000
const DAY = 24 * HOUR

// --- Who ---------------------------------------------------------------------------------------

/**
 * One user per role (ROLES: a new role joins the matrix), then users beside them. The fixture
 * cases' participants hold the plain role names: `requester` filed them, `approver` approved
 * them, `itsd_investigator` is named to investigate, `receiving_official` receives. The
 * `other_*` users hold the same roles but have nothing to do with these cases.
 */
const WHO = [
  ...ROLES,
  'other_requester',
  'other_investigator',
  'other_receiving_official',
  'no_token',
  'revoked_token',
] as const
type Who = (typeof WHO)[number]
type Person = Exclude<Who, 'no_token' | 'revoked_token'>

const ROLE_OF: Record<Person, Role> = {
  admin: 'admin',
  operator: 'operator',
  requester: 'requester',
  approver: 'approver',
  oios_chief: 'oios_chief',
  itsd_lead: 'itsd_lead',
  itsd_investigator: 'itsd_investigator',
  oios_investigator: 'oios_investigator',
  oios_designee: 'oios_designee',
  receiving_official: 'receiving_official',
  auditor: 'auditor',
  other_requester: 'requester',
  other_investigator: 'itsd_investigator',
  other_receiving_official: 'receiving_official',
}

const UNAUTHENTICATED: readonly Who[] = ['no_token', 'revoked_token']

// --- The fixtures: one case per state ----------------------------------------------------------

/** Standard cases by state ('consulted': requested with the OIOS consultation on record). */
const STANDARD = ['requested', 'consulted', 'approved', 'active', 'closed'] as const
type Standard = (typeof STANDARD)[number]
/** Plus an active technical case (8.2) and an active OIOS case (9). */
const FIXTURES = [...STANDARD, 'technical', 'oios'] as const
type Fixture = (typeof FIXTURES)[number]
const LIVE: readonly Fixture[] = ['requested', 'consulted', 'approved', 'active']

/** Who may see a case: GET answers it, the list holds it; to anyone else it does not exist. */
function sees(fixture: Fixture, who: Who): boolean {
  switch (fixture) {
    case 'technical':
      return ['admin', 'approver', 'auditor', 'itsd_lead', 'itsd_investigator'].includes(who)
    case 'oios':
      // The designee here holds no designation (9.2e): OIOS cases do not exist for them.
      return ['oios_investigator', 'oios_chief'].includes(who)
    default:
      return (
        ['admin', 'approver', 'auditor', 'oios_chief', 'requester', 'receiving_official'].includes(
          who,
        ) ||
        // The investigator is named at approval.
        (who === 'itsd_investigator' && !['requested', 'consulted'].includes(fixture))
      )
  }
}

interface CaseRoute {
  name: string
  method: 'GET' | 'POST'
  /** After /v1/cases/{id}. */
  suffix: string
  /** The standard fixtures of this route are emergencies (8.4b). */
  emergency?: boolean
  /** Whether the call changes the case (an allowed one needs a fresh case each time). */
  mutates: boolean
  body?: (doc: Case) => unknown
  allowed: (fixture: Fixture, who: Who) => boolean
  /** The same step taken again on the case it just changed: refused with this status. */
  again?: number
}

const inPerson = () => ({
  method: 'in_person',
  given_by: 'Head of unit',
  witness: 'Deputy head of unit',
  given_at: iso(Date.now()),
  to: ['staff_member', 'supervisor'],
})

let h: CasesHarness
let app: App
const users = {} as Record<Person, TestUser>
let revoked: TestUser
/** An approver outside WHO who records the emergencies, so that `approver` may approve them. */
let recorder: TestUser
let agent: TestAgent

const tokenOf = (who: Who): string | undefined =>
  who === 'no_token' ? undefined : who === 'revoked_token' ? revoked.token : users[who].token
const idOf = (who: Person): string => users[who].user_id

const CASE_ROUTES: CaseRoute[] = [
  {
    name: 'GET /v1/cases/{id}',
    method: 'GET',
    suffix: '',
    mutates: false,
    allowed: sees,
  },
  {
    name: 'POST /v1/cases/{id}/written-request',
    method: 'POST',
    suffix: '/written-request',
    emergency: true,
    mutates: true,
    // It confirms the verbal request; it is filed once (8.4b).
    body: (doc) => writtenFor(doc),
    allowed: (f, who) => who === 'requester' && LIVE.includes(f),
    again: 409,
  },
  {
    name: 'POST /v1/cases/{id}/consultation',
    method: 'POST',
    suffix: '/consultation',
    mutates: true,
    body: () => ({ summary: 'consulted' }),
    // OIOS is consulted once per case: the 'consulted' case already was.
    allowed: (f, who) => who === 'oios_chief' && f === 'requested',
    again: 409,
  },
  {
    name: 'POST /v1/cases/{id}/emergency-confirmation',
    method: 'POST',
    suffix: '/emergency-confirmation',
    emergency: true,
    mutates: true,
    body: () => ({ statement: 'confirmed with the requesting office' }),
    // Another approver or the OIOS Chief, once, before approval; `recorder` recorded them all.
    allowed: (f, who) =>
      (who === 'approver' || who === 'oios_chief') && (f === 'requested' || f === 'consulted'),
    again: 409,
  },
  {
    name: 'POST /v1/cases/{id}/approval',
    method: 'POST',
    suffix: '/approval',
    mutates: true,
    body: () => ({ investigator: idOf('itsd_investigator') }),
    allowed: (f, who) => who === 'approver' && f === 'consulted',
    again: 409,
  },
  {
    name: 'POST /v1/cases/{id}/denial',
    method: 'POST',
    suffix: '/denial',
    mutates: true,
    body: () => ({ reason: 'not proportionate' }),
    allowed: (f, who) => who === 'approver' && (f === 'requested' || f === 'consulted'),
    again: 409,
  },
  {
    name: 'POST /v1/cases/{id}/notice',
    method: 'POST',
    suffix: '/notice',
    mutates: true,
    body: inPerson,
    // Never by the investigator (who would gain access by it).
    allowed: (f, who) => who === 'approver' && f === 'approved',
    again: 409,
  },
  {
    name: 'POST /v1/cases/{id}/extension',
    method: 'POST',
    suffix: '/extension',
    mutates: true,
    body: (doc) => ({ until: iso(Date.parse(doc.window.end) + DAY), justification: 'more time' }),
    allowed: (f, who) => who === 'approver' && f === 'active',
  },
  {
    name: 'POST /v1/cases/{id}/closing',
    method: 'POST',
    suffix: '/closing',
    mutates: true,
    body: () => ({ outcome: 'no further action' }),
    allowed: (f, who) => {
      if (f === 'technical') return ['approver', 'itsd_lead', 'itsd_investigator'].includes(who)
      if (f === 'oios') return who === 'oios_investigator' || who === 'oios_chief'
      return (
        LIVE.includes(f) &&
        (who === 'approver' || who === 'requester' || (who === 'itsd_investigator' && sees(f, who)))
      )
    },
    again: 409,
  },
  {
    name: 'GET /v1/cases/{id}/access-grant',
    method: 'GET',
    suffix: '/access-grant',
    mutates: false,
    allowed: (f, who) =>
      (who === 'itsd_investigator' && (f === 'active' || f === 'technical')) ||
      (who === 'oios_investigator' && f === 'oios'),
  },
]

// --- Building cases ----------------------------------------------------------------------------

async function must(answer: Promise<Answer>, status: number, what: string): Promise<Case> {
  const a = await answer
  if (a.status !== status) throw new Error(`${what}: expected ${status}, got ${a.status} ${a.text}`)
  return a.body as Case
}

const post = (path: string, who: Person, body: unknown) =>
  call(app, 'POST', path, users[who].token, body)

const emergencyBody = () => ({
  ...caseRequest(idOf('receiving_official'), [agent.agent_id]),
  verbal_requester: idOf('requester'),
  received_at: iso(Date.now() - 60_000),
})
type EmergencyBody = ReturnType<typeof emergencyBody>
/**
 * The written request that confirms a case's verbal one (8.4b): its staff member, supervisor,
 * subjects, categories and receiving official. A case without them gets any valid request.
 */
const writtenFor = (doc: Case) => {
  const { staff_member, supervisor, receiving_official, subjects, categories } = doc
  return staff_member !== undefined && supervisor !== undefined && receiving_official !== undefined
    ? writtenRequest({ staff_member, supervisor, receiving_official, subjects, categories })
    : caseRequest(idOf('receiving_official'), [agent.agent_id])
}
const technicalBody = () => ({
  description: `link flapping ${marker('tech')}`,
  subjects: [{ agent_id: agent.agent_id, addresses: [] }],
  investigator: idOf('itsd_investigator'),
  hours: 2,
  notify: [{ name: `Delegation contact ${marker('n')}`, email: 'contact@delegation.example.org' }],
})
const oiosBody = () => {
  const now = Date.now()
  return {
    description: `OIOS inquiry ${marker('oios')}`,
    categories: ['flows', 'dns'],
    subjects: [{ agent_id: agent.agent_id, addresses: ['192.0.2.44'] }],
    window: { start: iso(now - 60_000), end: iso(now + 2 * DAY) },
    receiving_official: idOf('receiving_official'),
  }
}

/**
 * A new case in the given state, made through the API by its participants; an emergency from
 * `verbal` when given.
 */
async function build(fixture: Fixture, emergency = false, verbal?: EmergencyBody): Promise<Case> {
  if (fixture === 'technical')
    return must(post('/v1/cases/technical', 'itsd_lead', technicalBody()), 201, 'technical')
  if (fixture === 'oios')
    return must(post('/v1/cases/oios', 'oios_investigator', oiosBody()), 201, 'oios')
  let doc = emergency
    ? await must(
        call(app, 'POST', '/v1/cases/emergency', recorder.token, verbal ?? emergencyBody()),
        201,
        'emergency',
      )
    : await must(
        post('/v1/cases', 'requester', caseRequest(idOf('receiving_official'), [agent.agent_id])),
        201,
        'file',
      )
  const path = `/v1/cases/${doc.case_id}`
  const steps: [Standard, Person, string, () => unknown][] = [
    ['consulted', 'oios_chief', 'consultation', () => ({ summary: 'no conflict' })],
    ['approved', 'approver', 'approval', () => ({ investigator: idOf('itsd_investigator') })],
    ['active', 'approver', 'notice', inPerson],
    ['closed', 'approver', 'closing', () => ({ outcome: 'done' })],
  ]
  for (const [reached, who, step, body] of steps) {
    if (fixture === 'requested') break
    // An emergency is approved without consultation (its 'consulted' fixture is consulted),
    // once someone other than its recorder confirmed it.
    if (emergency && step === 'approval')
      await must(
        post(`${path}/emergency-confirmation`, 'oios_chief', { statement: 'confirmed' }),
        200,
        `confirmation for ${fixture}`,
      )
    if (!(emergency && step === 'consultation' && fixture !== 'consulted'))
      doc = await must(post(`${path}/${step}`, who, body()), 200, `${step} for ${fixture}`)
    if (reached === fixture) break
  }
  return doc
}

/** The fixtures that denied calls use: unchanged by them, so shared. */
const shared = new Map<string, Promise<Case>>()
const fixtureOf = (fixture: Fixture, emergency: boolean): Promise<Case> => {
  const key = `${fixture}${emergency && STANDARD.includes(fixture as Standard) ? '+emergency' : ''}`
  let doc = shared.get(key)
  if (doc === undefined) {
    doc = build(fixture, emergency)
    shared.set(key, doc)
  }
  return doc
}

// --- Checking a refusal ------------------------------------------------------------------------

type Failures = string[]

/** An answer's text, cut short for a failure message. */
const brief = (text: string): string => (text.length > 240 ? `${text.slice(0, 240)}...` : text)

/** The checks every refused call must pass; a failed one is recorded, named by `what`. */
/** The answers a refusal may be: 401 without a valid token; no 409 to who cannot see the case. */
const refusalsFor = (who: Who, visible: boolean): number[] =>
  UNAUTHENTICATED.includes(who) ? [401] : visible ? [403, 404, 409] : [403, 404]

interface Before {
  fingerprint: string
  doc?: string | undefined
  docId?: string | undefined
}

async function checkRefusal(
  failures: Failures,
  what: string,
  answer: Answer,
  allowedStatuses: number[],
  before: Before,
  secrets: string[],
): Promise<void> {
  if (!allowedStatuses.includes(answer.status)) {
    failures.push(
      `${what}: expected one of ${allowedStatuses}, got ${answer.status} ${brief(answer.text)}`,
    )
  }
  if (!ErrorBody.safeParse(answer.body).success)
    failures.push(`${what}: the answer is not an ErrorBody: ${brief(answer.text)}`)
  for (const secret of secrets) {
    if (answer.text.includes(secret))
      failures.push(`${what}: the answer shows "${secret}" of the case: ${brief(answer.text)}`)
  }
  const after = await snapshot(h)
  if (after !== before.fingerprint)
    failures.push(`${what}: something was written: ${before.fingerprint} -> ${after}`)
  if (before.docId !== undefined) {
    const doc = await storedCase(h.store, before.docId)
    if (doc !== before.doc) failures.push(`${what}: the case document changed`)
  }
}

/** The case's own strings, less those the caller sent (which an answer may repeat). */
const secretsOf = (doc: Case, sent: unknown): string[] => {
  const text = JSON.stringify(sent ?? '')
  return caseSecrets(doc).filter((s) => !text.includes(s))
}

const report = (failures: Failures) =>
  expect(failures, `${failures.length} failing combination(s):\n${failures.join('\n')}`).toEqual([])

/** The store as it is before a call that must change nothing (and the case's document). */
const beforeCall = async (caseId: string | undefined): Promise<Before> => ({
  fingerprint: await snapshot(h),
  doc: caseId === undefined ? undefined : await storedCase(h.store, caseId),
  docId: caseId,
})

const bothRegistersSize = async (): Promise<number> =>
  (await registerSize(h.store, 'itsd')) + (await registerSize(h.store, 'oios'))

/** One matrix cell: a route on a case of one fixture. */
interface MatrixCell {
  route: CaseRoute
  fixture: Fixture
  emergency: boolean
  failures: Failures
}

const cellName = (cell: MatrixCell, who: Who): string =>
  `${cell.route.name} as ${who} on a ${cell.fixture}${cell.emergency ? ' emergency' : ''} case`

/** Every user the route does not allow is refused and changes nothing; answers who is allowed. */
async function checkRefused(cell: MatrixCell, doc: Case): Promise<Who[]> {
  const { route, fixture } = cell
  const path = `/v1/cases/${doc.case_id}${route.suffix}`
  const body = route.body?.(doc)
  const before = {
    fingerprint: await snapshot(h),
    doc: await storedCase(h.store, doc.case_id),
    docId: doc.case_id,
  }
  const allowed: Who[] = []
  for (const who of WHO) {
    if (route.allowed(fixture, who)) {
      allowed.push(who)
      continue
    }
    const answer = await call(app, route.method, path, tokenOf(who), body)
    const statuses = refusalsFor(who, sees(fixture, who))
    await checkRefusal(
      cell.failures,
      cellName(cell, who),
      answer,
      statuses,
      before,
      secretsOf(doc, body),
    )
  }
  return allowed
}

/** An allowed user succeeds, on a fresh case when the step changes it, and writes the register. */
async function checkAllowed(cell: MatrixCell, who: Who, doc: Case): Promise<void> {
  const { route, fixture, emergency, failures } = cell
  const what = cellName(cell, who)
  const target = route.mutates ? await build(fixture, emergency) : doc
  const targetPath = `/v1/cases/${target.case_id}${route.suffix}`
  const size = await bothRegistersSize()
  const answer = await call(app, route.method, targetPath, tokenOf(who), route.body?.(target))
  if (answer.status !== 200) {
    failures.push(`${what}: expected 200, got ${answer.status} ${brief(answer.text)}`)
    return
  }
  const got = answer.body as { case_id?: string }
  if (got.case_id !== target.case_id)
    failures.push(`${what}: answered case ${got.case_id}, not ${target.case_id}`)
  const grown = (await bothRegistersSize()) - size
  if (route.mutates && grown < 1) failures.push(`${what}: no register entry was written`)
  if (!route.mutates && grown !== 0)
    failures.push(`${what}: a read wrote ${grown} register entries`)
  if (route.again !== undefined) {
    // Taken a second time: refused, and the case stays as the first call left it.
    const againBody = route.body?.(target)
    const before = await beforeCall(target.case_id)
    const again = await call(app, route.method, targetPath, tokenOf(who), againBody)
    await checkRefusal(
      failures,
      `${what}, a second time`,
      again,
      [route.again],
      before,
      secretsOf(target, againBody),
    )
  }
}

// --- Setup -------------------------------------------------------------------------------------

beforeAll(async () => {
  h = await openCasesHarness()
  app = h.app
  for (const who of Object.keys(ROLE_OF) as Person[]) users[who] = await h.user([ROLE_OF[who]], who)
  // A revoked token that held every role.
  revoked = await h.revokedUser(Object.values(ROLE_OF))
  recorder = await h.user(['approver'], 'recorder')
  agent = await h.agent('pc-subject')
})

afterAll(async () => {
  await h?.close()
})

// --- The matrix --------------------------------------------------------------------------------

describe('the authorization matrix of the case routes', () => {
  describe.each(CASE_ROUTES)('$name', (route) => {
    it.each(FIXTURES)('on a %s case', async (fixture) => {
      const failures: Failures = []
      const emergency = route.emergency === true
      const cell: MatrixCell = { route, fixture, emergency, failures }
      const doc = await fixtureOf(fixture, emergency)
      const tablesBefore = await fingerprint(h.store)
      const allowed = await checkRefused(cell, doc)
      const tablesAfter = await fingerprint(h.store)
      if (tablesAfter !== tablesBefore)
        failures.push(`${route.name} on a ${fixture} case: refusals changed the tables`)
      // Each allowed user succeeds, on a fresh case when the step changes it.
      for (const who of allowed) await checkAllowed(cell, who, doc)
      report(failures)
    })
  })

  it('GET /v1/cases lists a case to exactly those who may see it', async () => {
    const failures: Failures = []
    const docs = await Promise.all(FIXTURES.map((f) => fixtureOf(f, false)))
    for (const who of WHO) {
      const answer = await call(app, 'GET', '/v1/cases', tokenOf(who))
      if (UNAUTHENTICATED.includes(who)) {
        if (answer.status !== 401 || !ErrorBody.safeParse(answer.body).success)
          failures.push(`GET /v1/cases as ${who}: expected a 401 ErrorBody, got ${answer.status}`)
        for (const doc of docs)
          if (answer.text.includes(doc.case_id)) failures.push(`GET /v1/cases as ${who}: leaks`)
        continue
      }
      if (answer.status !== 200) {
        failures.push(
          `GET /v1/cases as ${who}: expected 200, got ${answer.status} ${brief(answer.text)}`,
        )
        continue
      }
      const listed = new Set((answer.body as { cases: Case[] }).cases.map((c) => c.case_id))
      FIXTURES.forEach((fixture, i) => {
        const doc = docs[i] as Case
        const expected = sees(fixture, who)
        if (listed.has(doc.case_id) !== expected)
          failures.push(
            `GET /v1/cases as ${who}: the ${fixture} case is ${expected ? 'missing' : 'listed'}`,
          )
        if (!expected) {
          for (const secret of [doc.case_id, ...caseSecrets(doc)]) {
            // Another visible case may share the subject's agent or the people.
            const shownElsewhere = docs.some(
              (d, j) =>
                j !== i && sees(FIXTURES[j] as Fixture, who) && caseSecrets(d).includes(secret),
            )
            if (!shownElsewhere && answer.text.includes(secret))
              failures.push(`GET /v1/cases as ${who}: shows "${secret}" of the ${fixture} case`)
          }
        }
      })
    }
    report(failures)
  })

  interface Opening {
    name: string
    path: string
    body: () => unknown
    allowed: readonly Who[]
  }
  let categories = 0
  const OPENINGS: Opening[] = [
    {
      name: 'POST /v1/cases',
      path: '/v1/cases',
      body: () => caseRequest(idOf('receiving_official'), [agent.agent_id]),
      allowed: ['requester', 'other_requester'],
    },
    {
      name: 'POST /v1/cases/emergency',
      path: '/v1/cases/emergency',
      body: emergencyBody,
      allowed: ['approver'],
    },
    {
      name: 'POST /v1/cases/technical',
      path: '/v1/cases/technical',
      body: technicalBody,
      allowed: ['itsd_lead'],
    },
    {
      name: 'POST /v1/cases/oios',
      path: '/v1/cases/oios',
      body: oiosBody,
      allowed: ['oios_investigator'],
    },
    {
      name: 'POST /v1/oios/designations',
      path: '/v1/oios/designations',
      body: () => ({
        category: `category-${++categories}`,
        user_id: idOf('oios_designee'),
        position: 'designee',
      }),
      allowed: ['admin'],
    },
  ]

  it.each(OPENINGS)('$name: exactly $allowed', async (opening) => {
    const failures: Failures = []
    const before = { fingerprint: await snapshot(h) }
    const tablesBefore = await fingerprint(h.store)
    for (const who of WHO) {
      if (opening.allowed.includes(who)) continue
      const body = opening.body()
      const answer = await call(app, 'POST', opening.path, tokenOf(who), body)
      const statuses = UNAUTHENTICATED.includes(who) ? [401] : [403]
      await checkRefusal(failures, `${opening.name} as ${who}`, answer, statuses, before, [])
    }
    if ((await fingerprint(h.store)) !== tablesBefore)
      failures.push(`${opening.name}: refusals changed the tables`)
    for (const who of opening.allowed) {
      const answer = await call(app, 'POST', opening.path, tokenOf(who), opening.body())
      if (answer.status !== 201)
        failures.push(
          `${opening.name} as ${who}: expected 201, got ${answer.status} ${brief(answer.text)}`,
        )
    }
    report(failures)
  })
})

// --- Separation of duties ----------------------------------------------------------------------

describe('separation of duties on one case', () => {
  /** A refusal that must be one of `statuses`, change nothing and show nothing. */
  async function refusedExactly(
    failures: Failures,
    what: string,
    request: () => Promise<Answer>,
    statuses: number[],
    doc?: Case,
  ): Promise<Answer> {
    const before = {
      fingerprint: await snapshot(h),
      doc: doc === undefined ? undefined : await storedCase(h.store, doc.case_id),
      docId: doc?.case_id,
    }
    const answer = await request()
    await checkRefusal(failures, what, answer, statuses, before, [])
    return answer
  }

  it('no one approves, denies or extends their own request, nor investigates it or their approval', async () => {
    const failures: Failures = []
    const requesterApprover = await h.user(['requester', 'approver'])
    const requesterInvestigator = await h.user(['requester', 'itsd_investigator'])
    const approverInvestigator = await h.user(['approver', 'itsd_investigator'])
    const as = (user: TestUser, path: string, body: unknown, method: 'GET' | 'POST' = 'POST') =>
      call(app, method, path, user.token, body)
    const fileAs = async (user: TestUser) => {
      const doc = await must(
        as(user, '/v1/cases', caseRequest(idOf('receiving_official'), [agent.agent_id])),
        201,
        'file',
      )
      await must(
        post(`/v1/cases/${doc.case_id}/consultation`, 'oios_chief', { summary: 'ok' }),
        200,
        'consult',
      )
      return doc
    }

    // A requester who is also an approver cannot decide on their own request.
    const own = await fileAs(requesterApprover)
    const ownPath = `/v1/cases/${own.case_id}`
    const approval = { investigator: idOf('itsd_investigator') }
    const s = 'self-approval'
    await refusedExactly(
      failures,
      s,
      () => as(requesterApprover, `${ownPath}/approval`, approval),
      [403],
      own,
    )
    await refusedExactly(
      failures,
      'self-denial',
      () => as(requesterApprover, `${ownPath}/denial`, { reason: 'mine' }),
      [403],
      own,
    )
    // ... nor record a verbal request they made themselves.
    await refusedExactly(
      failures,
      'emergency recorded by the one who asked',
      () =>
        as(requesterApprover, '/v1/cases/emergency', {
          ...emergencyBody(),
          verbal_requester: requesterApprover.user_id,
        }),
      [403],
    )
    // Another approver may approve it, but not extend it later as its requester.
    await must(post(`${ownPath}/approval`, 'approver', approval), 200, 'approval')
    await must(post(`${ownPath}/notice`, 'approver', inPerson()), 200, 'notice')
    const later = iso(Date.now() + 5 * DAY)
    await refusedExactly(
      failures,
      'extension by the requester holding approver',
      () => as(requesterApprover, `${ownPath}/extension`, { until: later, justification: 'mine' }),
      [403],
    )

    // The investigator is neither the requester nor the approver.
    const byRI = await fileAs(requesterInvestigator)
    await refusedExactly(
      failures,
      'investigator = requester',
      () =>
        post(`/v1/cases/${byRI.case_id}/approval`, 'approver', {
          investigator: requesterInvestigator.user_id,
        }),
      [403],
      byRI,
    )
    const plain = await fileAs(users.requester)
    await refusedExactly(
      failures,
      'investigator = approver',
      () =>
        as(approverInvestigator, `/v1/cases/${plain.case_id}/approval`, {
          investigator: approverInvestigator.user_id,
        }),
      [403],
      plain,
    )
    // An approver named investigator (by another approver) cannot extend their own case.
    await must(
      post(`/v1/cases/${plain.case_id}/approval`, 'approver', {
        investigator: approverInvestigator.user_id,
      }),
      200,
      'approval',
    )
    const plainActive = await must(
      post(`/v1/cases/${plain.case_id}/notice`, 'approver', inPerson()),
      200,
      'notice',
    )
    await refusedExactly(
      failures,
      'extension by the investigator holding approver',
      () =>
        as(approverInvestigator, `/v1/cases/${plain.case_id}/extension`, {
          until: iso(Date.parse(plainActive.window.end) + DAY),
          justification: 'mine',
        }),
      [403],
      plainActive,
    )
    // The investigator named must hold the role.
    const wrongRole = await fileAs(users.requester)
    await refusedExactly(
      failures,
      'investigator without the itsd_investigator role',
      () =>
        post(`/v1/cases/${wrongRole.case_id}/approval`, 'approver', {
          investigator: idOf('receiving_official'),
        }),
      [400],
      wrongRole,
    )

    // Another case's investigator gets nothing of this case's access grant: it does not exist
    // for them (404), or at least is not theirs (403).
    const active = await fixtureOf('active', false)
    const path = `/v1/cases/${active.case_id}/access-grant`
    for (const [what, user] of [
      ["another case's investigator", approverInvestigator],
      ['an unrelated investigator', users.other_investigator],
    ] as const) {
      // The case does not exist for them (404), or at least its grant is not theirs (403).
      const answer = await refusedExactly(
        failures,
        what,
        () => call(app, 'GET', path, user.token),
        [403, 404],
        active,
      )
      if (answer.text.includes('eyJ')) failures.push(`${what} got a token: ${brief(answer.text)}`)
    }
    report(failures)
  })
})

// --- Hostile input -----------------------------------------------------------------------------

const HOSTILE = [
  "' OR 1=1 --",
  '"; DROP TABLE tally.cases; --',
  '../../etc/passwd',
  '{site:String}',
] as const

interface TableCounts {
  tables: string[]
  rows: Record<string, number>
  cases: string[]
}

async function tables(): Promise<TableCounts> {
  const names = (
    await selectRows<{ name: string }>(
      h.store,
      "SELECT name FROM system.tables WHERE database IN ('tally', 'tally_restricted') ORDER BY name",
    )
  ).map((r) => r.name)
  const rows: Record<string, number> = {}
  for (const table of ['cases', 'grants', 'outbox', 'users', 'agents', 'oios_designations']) {
    const [row] = await selectRows<{ n: number }>(
      h.store,
      `SELECT count() AS n FROM tally.${table} FINAL`,
    )
    rows[table] = Number(row?.n)
  }
  const [entries] = await selectRows<{ n: number }>(
    h.store,
    'SELECT count() AS n FROM tally.register_entries',
  )
  rows.register_entries = Number(entries?.n)
  const cases = (
    await selectRows<{ case_id: string }>(h.store, 'SELECT case_id FROM tally.cases FINAL')
  ).map((r) => r.case_id)
  return { tables: names, rows, cases }
}

/** Every string leaf of a JSON value, by dotted path. */
function stringPaths(value: unknown, prefix = ''): string[] {
  if (typeof value === 'string') return [prefix]
  if (Array.isArray(value))
    return value.flatMap((v, i) => stringPaths(v, `${prefix}${prefix ? '.' : ''}${i}`))
  if (typeof value === 'object' && value !== null)
    return Object.entries(value).flatMap(([k, v]) =>
      stringPaths(v, `${prefix}${prefix ? '.' : ''}${k}`),
    )
  return []
}

function withValue(value: unknown, path: string, replacement: unknown): unknown {
  const copy: unknown = structuredClone(value)
  const keys = path.split('.')
  let node = copy as Record<string, unknown>
  for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>
  node[keys[keys.length - 1] as string] = replacement
  return copy
}

const valueAt = (value: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)?.[key], value)

interface BodyRoute {
  name: string
  who: Person
  /** The path to post to, on a case made for it when the route needs one. */
  target: () => Promise<{ path: string; caseId?: string }>
  /** Whether an accepted call changed the case so that the next one needs a new case. */
  fresh: boolean
  body: () => unknown
  /** Free-text fields: accepted as they are, and stored verbatim at `stored` (if stored). */
  free: Record<string, string | null>
}

/** The body with an unknown field `extra` at the top, in each object and each array's first. */
function withUnknownFields(base: Record<string, unknown>): [string, unknown][] {
  const variants: [string, unknown][] = [['(top level)', { ...base, extra: true }]]
  for (const [key, value] of Object.entries(base)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value))
      variants.push([key, { ...base, [key]: { ...value, extra: true } }])
    if (Array.isArray(value) && typeof value[0] === 'object')
      variants.push([`${key}.0`, { ...base, [key]: [{ ...value[0], extra: true }] }])
  }
  return variants
}

/**
 * The route's body with `field` set to a hostile value: a field with a format refuses it and
 * changes nothing; a free-text field takes it and stores it verbatim. Answers whether the call
 * was accepted (free text).
 */
async function postHostile(
  failures: Failures,
  route: BodyRoute,
  target: { path: string; caseId?: string },
  field: string,
  hostile: string,
): Promise<boolean> {
  const what = `${route.name} with ${field} = ${JSON.stringify(hostile)}`
  const body = withValue(route.body(), field, hostile)
  const before = await beforeCall(target.caseId)
  const answer = await call(app, 'POST', target.path, users[route.who].token, body)
  if (!(field in route.free)) {
    // A field with a format (ids, emails, times, addresses, enums) refuses them.
    await checkRefusal(failures, what, answer, [400], before, [])
    return false
  }
  if (answer.status !== 200 && answer.status !== 201) {
    failures.push(`${what}: free text refused: ${answer.status} ${brief(answer.text)}`)
    return false
  }
  const stored = route.free[field]
  const doc = answer.body as Case
  if (stored !== null && stored !== undefined) {
    const raw = await storedCase(h.store, doc.case_id)
    const kept = valueAt(JSON.parse(raw ?? '{}'), stored)
    if (kept !== hostile)
      failures.push(`${what}: stored ${JSON.stringify(kept)} at ${stored}, not the text sent`)
  }
  return true
}

describe('hostile input', () => {
  let extensionBase = 0
  /** The verbal request of the emergency a written request is posted to. */
  let verbal: EmergencyBody | undefined
  const BODY_ROUTES: BodyRoute[] = [
    {
      name: 'POST /v1/cases',
      who: 'requester',
      target: async () => ({ path: '/v1/cases' }),
      fresh: false,
      body: () => ({
        ...caseRequest(idOf('receiving_official'), [agent.agent_id]),
        subjects: [{ agent_id: agent.agent_id, addresses: ['192.0.2.7'] }],
      }),
      free: {
        data_required: 'description',
        'staff_member.name': 'staff_member.name',
        'supervisor.name': 'supervisor.name',
        requesting_office: 'requesting_office',
        justification: 'justification',
      },
    },
    {
      name: 'POST /v1/cases/emergency',
      who: 'approver',
      target: async () => ({ path: '/v1/cases/emergency' }),
      fresh: false,
      body: emergencyBody,
      free: {
        data_required: 'description',
        'staff_member.name': 'staff_member.name',
        'supervisor.name': 'supervisor.name',
        requesting_office: 'requesting_office',
        justification: 'justification',
      },
    },
    {
      name: 'POST /v1/cases/technical',
      who: 'itsd_lead',
      target: async () => ({ path: '/v1/cases/technical' }),
      fresh: false,
      body: technicalBody,
      free: { description: 'description', 'notify.0.name': 'notify.0.name' },
    },
    {
      name: 'POST /v1/cases/oios',
      who: 'oios_investigator',
      target: async () => ({ path: '/v1/cases/oios' }),
      fresh: false,
      body: oiosBody,
      free: { description: 'description' },
    },
    {
      name: 'POST /v1/oios/designations',
      who: 'admin',
      target: async () => ({ path: '/v1/oios/designations' }),
      fresh: false,
      body: () => ({ category: 'network', user_id: idOf('oios_designee'), position: 'alternate' }),
      free: {},
    },
    {
      name: 'POST /v1/cases/{id}/written-request',
      who: 'requester',
      // A new emergency each time: the written request is filed once.
      target: async () => {
        verbal = emergencyBody()
        const doc = await build('active', true, verbal)
        return { path: `/v1/cases/${doc.case_id}/written-request`, caseId: doc.case_id }
      },
      fresh: true,
      body: () => {
        verbal ??= emergencyBody()
        return writtenRequest(verbal)
      },
      // Only the description and justification of a written request are kept; its staff member
      // is the verbal request's (another name is refused: written_request_differs).
      free: {
        data_required: 'description',
        'supervisor.name': null,
        requesting_office: null,
        justification: 'justification',
      },
    },
    {
      name: 'POST /v1/cases/{id}/consultation',
      who: 'oios_chief',
      // A new case each time: OIOS is consulted once per case.
      target: async () => {
        const doc = await build('requested')
        return { path: `/v1/cases/${doc.case_id}/consultation`, caseId: doc.case_id }
      },
      fresh: true,
      body: () => ({ summary: 'no conflict' }),
      free: { summary: 'consultation.summary' },
    },
    {
      name: 'POST /v1/cases/{id}/emergency-confirmation',
      who: 'approver',
      target: async () => {
        const doc = await build('requested', true)
        return { path: `/v1/cases/${doc.case_id}/emergency-confirmation`, caseId: doc.case_id }
      },
      fresh: true,
      body: () => ({ statement: 'confirmed' }),
      free: { statement: 'emergency_confirmation.statement' },
    },
    {
      name: 'POST /v1/cases/{id}/approval',
      who: 'approver',
      target: async () => {
        const doc = await build('consulted')
        return { path: `/v1/cases/${doc.case_id}/approval`, caseId: doc.case_id }
      },
      fresh: true,
      body: () => ({
        investigator: idOf('itsd_investigator'),
        until: iso(Date.now() + DAY),
        comment: 'approved',
      }),
      free: { comment: 'approvals.0.comment' },
    },
    {
      name: 'POST /v1/cases/{id}/denial',
      who: 'approver',
      target: async () => {
        const doc = await build('requested')
        return { path: `/v1/cases/${doc.case_id}/denial`, caseId: doc.case_id }
      },
      fresh: true,
      body: () => ({ reason: 'no' }),
      free: { reason: 'denial.reason' },
    },
    {
      name: 'POST /v1/cases/{id}/notice',
      who: 'approver',
      target: async () => {
        const doc = await build('approved')
        return { path: `/v1/cases/${doc.case_id}/notice`, caseId: doc.case_id }
      },
      fresh: true,
      body: inPerson,
      free: { given_by: 'notice.given_by', witness: 'notice.witness' },
    },
    {
      name: 'POST /v1/cases/{id}/extension',
      who: 'approver',
      target: async () => {
        const doc = await fixtureOf('active', false)
        return { path: `/v1/cases/${doc.case_id}/extension`, caseId: doc.case_id }
      },
      fresh: false,
      body: () => {
        extensionBase += 1
        return { until: iso(Date.now() + 3 * DAY + extensionBase * HOUR), justification: 'more' }
      },
      // Kept in the register entry, not in the case.
      free: { justification: null },
    },
    {
      name: 'POST /v1/cases/{id}/closing',
      who: 'approver',
      target: async () => {
        const doc = await build('requested')
        return { path: `/v1/cases/${doc.case_id}/closing`, caseId: doc.case_id }
      },
      fresh: true,
      body: () => ({ outcome: 'closed' }),
      free: { outcome: 'closing.outcome' },
    },
  ]

  let start: TableCounts
  beforeAll(async () => {
    await Promise.all([
      fixtureOf('requested', false),
      fixtureOf('active', false),
      fixtureOf('active', true),
    ])
    start = await tables()
  })

  /** The tables are all there, none lost a row, and every case is still stored. */
  async function intact(failures: Failures, what: string): Promise<void> {
    const now = await tables()
    if (JSON.stringify(now.tables) !== JSON.stringify(start.tables))
      failures.push(`${what}: tables changed: ${start.tables} -> ${now.tables}`)
    for (const [table, n] of Object.entries(start.rows)) {
      if ((now.rows[table] ?? 0) < n)
        failures.push(`${what}: ${table} lost rows (${n} -> ${now.rows[table]})`)
    }
    const missing = start.cases.filter((c) => !now.cases.includes(c))
    if (missing.length > 0) failures.push(`${what}: cases vanished: ${missing}`)
  }

  it('in :id, of every case route: 404, nothing written, tables intact', async () => {
    const failures: Failures = []
    const asWho: Record<string, Person> = {
      '': 'admin',
      '/written-request': 'requester',
      '/consultation': 'oios_chief',
      '/emergency-confirmation': 'approver',
      '/approval': 'approver',
      '/denial': 'approver',
      '/notice': 'approver',
      '/extension': 'approver',
      '/closing': 'approver',
      '/access-grant': 'itsd_investigator',
    }
    const active = await fixtureOf('active', false)
    const before = { fingerprint: await snapshot(h) }
    for (const route of CASE_ROUTES) {
      const who = asWho[route.suffix] as Person
      for (const hostile of HOSTILE) {
        const what = `${route.name} with id ${JSON.stringify(hostile)} as ${who}`
        const path = `/v1/cases/${encodeURIComponent(hostile)}${route.suffix}`
        const answer = await call(app, route.method, path, users[who].token, route.body?.(active))
        const secrets = secretsOf(active, route.body?.(active))
        await checkRefusal(failures, what, answer, [404], before, secrets)
      }
    }
    // Unencoded, the path itself is resolved first: no route, nothing else.
    const raw = await call(app, 'GET', '/v1/cases/../../etc/passwd', users.admin.token)
    if (raw.status !== 404) failures.push(`GET /v1/cases/../../etc/passwd: got ${raw.status}`)
    // A register read filtered by a hostile case id finds nothing and breaks nothing.
    for (const hostile of HOSTILE) {
      const answer = await call(
        app,
        'GET',
        `/v1/register/itsd/entries?case_id=${encodeURIComponent(hostile)}`,
        users.auditor.token,
      )
      const got = answer.body as { entries?: unknown[] }
      if (answer.status !== 200 || got.entries?.length !== 0)
        failures.push(
          `register entries for case_id ${hostile}: ${answer.status} ${brief(answer.text)}`,
        )
    }
    await intact(failures, 'after hostile ids')
    report(failures)
  })

  it.each(BODY_ROUTES)(
    'in every string field of $name: 400, or free text stored verbatim',
    async (route) => {
      const failures: Failures = []
      const base = route.body()
      const paths = stringPaths(base)
      expect(paths.length, `${route.name} has string fields`).toBeGreaterThan(0)
      for (const field of Object.keys(route.free)) expect(paths, route.name).toContain(field)
      let target = await route.target()
      for (const field of paths) {
        for (const hostile of HOSTILE) {
          const accepted = await postHostile(failures, route, target, field, hostile)
          if (accepted && route.fresh) target = await route.target()
        }
      }
      await intact(failures, `after ${route.name}`)
      report(failures)
    },
  )

  it('refuses unknown fields, at the top and nested, in every body', async () => {
    const failures: Failures = []
    for (const route of BODY_ROUTES) {
      const target = await route.target()
      const base = route.body() as Record<string, unknown>
      for (const [where, body] of withUnknownFields(base)) {
        const what = `${route.name} with an unknown field at ${where}`
        const before = await beforeCall(target.caseId)
        const answer = await call(app, 'POST', target.path, users[route.who].token, body)
        if (
          answer.status !== 400 ||
          (answer.body as { error?: string }).error !== 'invalid_request'
        )
          failures.push(
            `${what}: expected 400 invalid_request, got ${answer.status} ${brief(answer.text)}`,
          )
        else if (!answer.text.includes('extra'))
          failures.push(`${what}: the answer does not name the field: ${brief(answer.text)}`)
        await checkRefusal(failures, what, answer, [400], before, [])
      }
    }
    report(failures)
  })

  it('leaves both registers verifiable', async () => {
    for (const [register, who] of [
      ['itsd', users.auditor],
      ['oios', users.oios_chief],
    ] as const) {
      const answer = await call(app, 'GET', `/v1/register/${register}/verify`, who.token)
      expect(answer.status, answer.text).toBe(200)
      expect(answer.body, register).toMatchObject({ ok: true, problems: [] })
    }
  })
})
