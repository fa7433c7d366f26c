/**
 * Attack 7, the workflow's own rules, replayed through the real app on the real engine as an
 * insider would try them: an approver who stretches the approved window past the request, one
 * approver who records an emergency and approves it alone, an investigator who records the
 * staff member's notice themselves (in person, any date), and an ITSD designee who reads OIOS
 * cases without a designation for them. Each must be refused and leave no grant; each test fails
 * when the rule of the workflow table (collector/cases/transitions.ts) or of the step that
 * enforces it is removed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Case } from '../../collector/cases/model.ts'
import type { Role } from '../../protocol/api/names.ts'
import {
  type Answer,
  type App,
  type CasesHarness,
  call,
  caseRequest,
  expectCase,
  expectError,
  grantRows,
  iso,
  openCasesHarness,
  storedCase,
  type TestAgent,
  type TestUser,
} from '../collector/cases-harness.ts'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

let h: CasesHarness
let app: App
let agent: TestAgent
const u: Record<string, TestUser> = {}

beforeAll(async () => {
  h = await openCasesHarness()
  app = h.app
  const people: Record<string, Role[]> = {
    requester: ['requester'],
    approver: ['approver'],
    approver2: ['approver'],
    approver3: ['approver'],
    chief: ['oios_chief'],
    investigator: ['itsd_investigator'],
    receiving: ['receiving_official'],
    oios: ['oios_investigator'],
    admin: ['admin'],
    undesignated: ['oios_designee'],
    mailOfficer: ['oios_designee'],
    flowsOfficer: ['oios_designee'],
    networkOfficer: ['oios_designee'],
  }
  for (const [name, roles] of Object.entries(people)) u[name] = await h.user(roles, name)
  agent = await h.agent('pc-subject')
})

afterAll(async () => {
  await h?.close()
})

const person = (name: string): TestUser => {
  const found = u[name]
  if (found === undefined) throw new Error(`no user ${name}`)
  return found
}
const as = (name: string, method: 'GET' | 'POST', path: string, body?: unknown) =>
  call(app, method, path, person(name).token, body)
const ok = async (name: string, path: string, body: unknown, status = 200): Promise<Case> =>
  expectCase(await as(name, 'POST', path, body), status, `POST ${path} as ${name}`)

/** A refusal with this status (and code), after which the case and its grants are as before. */
async function refusedUnchanged(
  answer: Promise<Answer>,
  doc: Case,
  status: number,
  code: string,
  what: string,
): Promise<Answer> {
  const before = await storedCase(h.store, doc.case_id)
  const got = await answer
  expect(expectError(got, [status], what).error, `${what}: ${got.text}`).toBe(code)
  expect(await storedCase(h.store, doc.case_id), `${what}: the case changed`).toBe(before)
  return got
}

/** A written request, consulted, waiting for approval. */
async function consulted(window?: { start: string; end: string }): Promise<Case> {
  const request = caseRequest(person('receiving').user_id, [agent.agent_id], {
    ...(window === undefined ? {} : { window }),
  })
  const doc = await ok('requester', '/v1/cases', request, 201)
  await ok('chief', `/v1/cases/${doc.case_id}/consultation`, { summary: 'no conflict' })
  return doc
}

const inPerson = (overrides: Record<string, unknown> = {}) => ({
  method: 'in_person',
  given_by: 'Head of unit',
  witness: 'Deputy head of unit',
  given_at: iso(Date.now()),
  to: ['staff_member', 'supervisor'],
  ...overrides,
})

describe('attack 7: the approved window', () => {
  it('cannot reach past the requested end: 20 days on a 1-hour request is refused, no grant', async () => {
    const now = Date.now()
    const doc = await consulted({ start: iso(now - MINUTE), end: iso(now + HOUR) })
    const path = `/v1/cases/${doc.case_id}/approval`
    const investigator = person('investigator').user_id
    for (const until of [iso(now + 20 * DAY), iso(now + HOUR + MINUTE)]) {
      const answer = await refusedUnchanged(
        as('approver', 'POST', path, { investigator, until }),
        doc,
        400,
        'invalid_window',
        `approval until ${until}`,
      )
      expect(answer.text).toMatch(/inside the requested one/)
    }
    expect(await grantRows(h.store, doc.case_id)).toEqual([])
    // Inside the requested window it is approved, and the grants never run past the request.
    const until = iso(now + 30 * MINUTE)
    const approved = await ok('approver', path, { investigator, until })
    expect(approved.window.end).toBe(until)
    const active = await ok('approver', `/v1/cases/${doc.case_id}/notice`, inPerson())
    expect(Date.parse(active.window.end)).toBeLessThanOrEqual(Date.parse(doc.window.end))
  })
})

describe('attack 7: an emergency run by one approver', () => {
  const verbal = () => ({
    ...caseRequest(person('receiving').user_id, [agent.agent_id]),
    verbal_requester: person('requester').user_id,
    received_at: iso(Date.now() - 5 * MINUTE),
  })
  const approval = () => ({ investigator: person('investigator').user_id })

  it('is never approved by its recorder, nor without a confirmation by someone else', async () => {
    const doc = await ok('approver', '/v1/cases/emergency', verbal(), 201)
    const path = `/v1/cases/${doc.case_id}`
    // Recorded and approved alone: refused until someone else confirms it.
    await refusedUnchanged(
      as('approver', 'POST', `${path}/approval`, approval()),
      doc,
      403,
      'forbidden',
      'the recorder approves',
    )
    await refusedUnchanged(
      as('approver2', 'POST', `${path}/approval`, approval()),
      doc,
      409,
      'wrong_state',
      'approval before any confirmation',
    )
    // The recorder cannot confirm it either, nor can who asked.
    await refusedUnchanged(
      as('approver', 'POST', `${path}/emergency-confirmation`, { statement: 'me again' }),
      doc,
      403,
      'forbidden',
      'the recorder confirms',
    )
    expect(await grantRows(h.store, doc.case_id)).toEqual([])

    const confirmed = await ok('approver2', `${path}/emergency-confirmation`, {
      statement: 'confirmed with the requesting office',
    })
    // Confirmed: neither the recorder nor the confirmer approves it.
    for (const who of ['approver', 'approver2']) {
      await refusedUnchanged(
        as(who, 'POST', `${path}/approval`, approval()),
        confirmed,
        403,
        'forbidden',
        `approval by ${who}`,
      )
    }
    // Nor is the recorder or the confirmer named to investigate it.
    const both = await h.user(['approver', 'itsd_investigator'], 'approver-investigator')
    u.both = both
    const byBoth = await ok('both', '/v1/cases/emergency', verbal(), 201)
    await ok('approver2', `/v1/cases/${byBoth.case_id}/emergency-confirmation`, {
      statement: 'confirmed',
    })
    await refusedUnchanged(
      as('approver3', 'POST', `/v1/cases/${byBoth.case_id}/approval`, {
        investigator: both.user_id,
      }),
      byBoth,
      403,
      'forbidden',
      'the recorder named investigator',
    )

    // A third person approves it.
    const approved = await ok('approver3', `${path}/approval`, approval())
    expect(approved.state).toBe('approved')
    expect(approved.emergency_confirmation?.by).toBe(person('approver2').user_id)
  })

  it('is not confirmed by who asked for it, even holding the approver role', async () => {
    const asker = await h.user(['requester', 'approver'], 'asker')
    const doc = await ok(
      'approver',
      '/v1/cases/emergency',
      {
        ...verbal(),
        verbal_requester: asker.user_id,
      },
      201,
    )
    await refusedUnchanged(
      call(app, 'POST', `/v1/cases/${doc.case_id}/emergency-confirmation`, asker.token, {
        statement: 'my own emergency',
      }),
      doc,
      403,
      'forbidden',
      'confirmation by who asked',
    )
  })
})

describe("attack 7: the staff member's notice", () => {
  /** An approved case, ready for its notice. */
  async function approved(): Promise<Case> {
    const doc = await consulted()
    return ok('approver', `/v1/cases/${doc.case_id}/approval`, {
      investigator: person('investigator').user_id,
    })
  }

  it('is not recorded by the investigator, in person or by outbox', async () => {
    const doc = await approved()
    const path = `/v1/cases/${doc.case_id}/notice`
    for (const body of [inPerson(), { method: 'outbox' }]) {
      await refusedUnchanged(
        as('investigator', 'POST', path, body),
        doc,
        403,
        'forbidden',
        `notice by the investigator (${body.method})`,
      )
    }
    expect(await grantRows(h.store, doc.case_id)).toEqual([])
    expect(h.webhook.postsFor(doc.case_id)).toEqual([])
  })

  it('needs its evidence: a witness other than who gave it, at a time that can be true', async () => {
    const doc = await approved()
    const path = `/v1/cases/${doc.case_id}/notice`
    const approvedAt = Date.parse(doc.approvals[0]?.at ?? '')
    const cases: [string, Record<string, unknown>, string][] = [
      ['no witness', { witness: undefined }, 'invalid_request'],
      ['the giver as witness', { witness: ' head of  UNIT ' }, 'invalid_notice'],
      ['a date in the future', { given_at: iso(Date.now() + 2 * DAY) }, 'invalid_notice'],
      ['a date before the approval', { given_at: iso(approvedAt - HOUR) }, 'invalid_notice'],
      ['a date years back', { given_at: '2001-01-01T00:00:00Z' }, 'invalid_notice'],
    ]
    for (const [what, overrides, code] of cases) {
      await refusedUnchanged(
        as('approver', 'POST', path, inPerson(overrides)),
        doc,
        400,
        code,
        what,
      )
    }
    expect(await grantRows(h.store, doc.case_id)).toEqual([])
    const active = await ok('approver', path, inPerson())
    expect(active.notice).toMatchObject({
      witness: 'Deputy head of unit',
      by: person('approver').user_id,
    })
  })

  it('is not recorded by the requester holding the approver role', async () => {
    const both = await h.user(['requester', 'approver'], 'requester-approver')
    const filed = expectCase(
      await call(
        app,
        'POST',
        '/v1/cases',
        both.token,
        caseRequest(person('receiving').user_id, [agent.agent_id]),
      ),
      201,
      'file',
    )
    await ok('chief', `/v1/cases/${filed.case_id}/consultation`, { summary: 'ok' })
    const doc = await ok('approver', `/v1/cases/${filed.case_id}/approval`, {
      investigator: person('investigator').user_id,
    })
    await refusedUnchanged(
      call(app, 'POST', `/v1/cases/${doc.case_id}/notice`, both.token, inPerson()),
      doc,
      403,
      'forbidden',
      'notice by the requester',
    )
  })
})

describe('attack 7: OIOS cases and the designees (9.2e)', () => {
  const open = async (categories: string[]): Promise<Case> => {
    const now = Date.now()
    return ok(
      'oios',
      '/v1/cases/oios',
      {
        description: `OIOS inquiry into ${categories.join(' and ')}`,
        categories,
        subjects: [{ agent_id: agent.agent_id, addresses: ['192.0.2.44'] }],
        window: { start: iso(now - MINUTE), end: iso(now + DAY) },
        receiving_official: person('receiving').user_id,
      },
      201,
    )
  }
  const designate = async (who: string, category: string) => {
    const answer = await as('admin', 'POST', '/v1/oios/designations', {
      category,
      user_id: person(who).user_id,
      position: 'designee',
    })
    expect(answer.status, answer.text).toBe(201)
  }
  const sees = async (who: string, doc: Case): Promise<boolean> => {
    const one = await as(who, 'GET', `/v1/cases/${doc.case_id}`)
    const list = await as(who, 'GET', '/v1/cases')
    expect(list.status, list.text).toBe(200)
    const listed = (list.body as { cases: Case[] }).cases.some((c) => c.case_id === doc.case_id)
    expect(listed, `${who}: GET and the list agree`).toBe(one.status === 200)
    if (one.status !== 200) {
      expectError(one, [404], `${who} reads an OIOS case`)
      expect(one.text).not.toContain('OIOS inquiry')
      expect(list.text).not.toContain(doc.case_id)
    }
    return one.status === 200
  }

  it('a designee sees only the OIOS cases whose categories their designations cover', async () => {
    await designate('mailOfficer', 'mail')
    await designate('flowsOfficer', 'flows')
    await designate('networkOfficer', 'network')
    const flows = await open(['flows'])
    const flowsAndDns = await open(['flows', 'dns'])
    const expected: Record<string, [boolean, boolean]> = {
      undesignated: [false, false],
      mailOfficer: [false, false],
      flowsOfficer: [true, false],
      networkOfficer: [true, true],
    }
    for (const [who, [seesFlows, seesBoth]] of Object.entries(expected)) {
      expect(await sees(who, flows), `${who} on the flows case`).toBe(seesFlows)
      expect(await sees(who, flowsAndDns), `${who} on the flows and dns case`).toBe(seesBoth)
    }
    // Seeing is all a designee does: no step of the case is theirs.
    const closing = await as('networkOfficer', 'POST', `/v1/cases/${flows.case_id}/closing`, {
      outcome: 'x',
    })
    expectError(closing, [403], 'closing by a designee')
    const grant = await as('networkOfficer', 'GET', `/v1/cases/${flows.case_id}/access-grant`)
    expectError(grant, [403], 'access grant to a designee')
  })
})
