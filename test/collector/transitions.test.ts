/**
 * The case workflow table (collector/cases/transitions.ts): docs/cases.md shows it as it is, and
 * it keeps the rules no row may lose (separation of duties on one case, the notice never by the
 * investigator, an emergency by three people, OIOS cases for OIOS and covering designees only).
 * The rules are replayed through the real app in test/security/workflow.test.ts and the
 * authorization matrix in test/collector/cases-authz.test.ts; here the table itself is read.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  type Actor,
  coveredCategories,
  STEPS,
  TRANSITIONS,
  type Transition,
  transitionsFor,
  WORKFLOW_KINDS,
} from '../../collector/cases/transitions.ts'
import { CASE_STATES, ROLES } from '../../protocol/api/names.ts'
import { CASES_DOC, withTable } from '../../scripts/cases-table.ts'

const rowsOf = (step: Transition['step']) => TRANSITIONS.filter((t) => t.step === step)
const roles = (actors: readonly Actor[]) =>
  actors.flatMap((a) => (a !== 'system' && 'role' in a ? [a.role] : []))

describe('the workflow table', () => {
  it('is what docs/cases.md shows (regenerate with `node scripts/cases-table.ts`)', () => {
    const doc = readFileSync(CASES_DOC, 'utf8')
    expect(doc === withTable(doc), 'docs/cases.md differs: run node scripts/cases-table.ts').toBe(
      true,
    )
  })

  it('has one row per kind and step, states the model knows, and one way to open each kind', () => {
    const keys = TRANSITIONS.map((t) => `${t.kind}/${t.step}`)
    expect(new Set(keys).size).toBe(keys.length)
    for (const t of TRANSITIONS) {
      for (const state of t.from) expect([...CASE_STATES, 'new']).toContain(state)
      expect([...CASE_STATES, 'same']).toContain(t.to)
      expect(STEPS).toContain(t.step)
      for (const role of roles(t.by)) expect(ROLES).toContain(role)
    }
    for (const kind of WORKFLOW_KINDS) {
      expect(
        TRANSITIONS.filter((t) => t.kind === kind && t.from.includes('new')),
        kind,
      ).toHaveLength(1)
      for (const step of ['view', 'close', 'expire', 'access_grant'] as const)
        expect(transitionsFor(kind, step), `${kind}/${step}`).toHaveLength(1)
    }
  })

  it('publishes only the states some step leads to (purging is purged_at, not a state)', () => {
    const reached = new Set<string>(TRANSITIONS.map((t) => t.to).filter((to) => to !== 'same'))
    for (const state of CASE_STATES) expect(reached, state).toContain(state)
  })

  it('keeps requester, approver and investigator of one case three people', () => {
    for (const t of rowsOf('approve')) {
      expect(t.notAs, t.kind).toContain('requester')
      const investigator = t.names?.find((n) => n.party === 'investigator')
      expect(investigator?.notAs, t.kind).toEqual(expect.arrayContaining(['requester', 'approver']))
    }
    for (const t of rowsOf('extend'))
      expect(t.notAs).toEqual(expect.arrayContaining(['requester', 'investigator']))
    for (const t of rowsOf('deny')) expect(t.notAs).toContain('requester')
  })

  it('takes an emergency through three people: recorder, confirmer, approver', () => {
    const [approve] = transitionsFor('emergency', 'approve')
    expect(approve?.when).toContain('confirmed')
    expect(approve?.notAs).toEqual(expect.arrayContaining(['recorder', 'confirmer', 'requester']))
    const [confirm] = transitionsFor('emergency', 'confirm_emergency')
    expect(confirm?.notAs).toEqual(expect.arrayContaining(['recorder', 'requester']))
    expect(transitionsFor('written', 'approve')[0]?.when).toContain('consulted')
  })

  it('never lets the investigator record the notice that opens their access', () => {
    for (const t of rowsOf('notice')) {
      expect(t.notAs).toEqual(expect.arrayContaining(['investigator', 'requester']))
      expect(t.by.some((a) => a !== 'system' && a.as === 'investigator')).toBe(false)
    }
  })

  it('shows OIOS cases to OIOS and to covering designees alone; an admin takes no case step', () => {
    const [view] = transitionsFor('oios', 'view')
    for (const actor of view?.by ?? []) {
      if (actor === 'system') continue
      if ('role' in actor && actor.role === 'oios_designee') expect(actor.as).toBe('designee')
      else expect(['oios_investigator', 'oios_chief']).toContain('role' in actor ? actor.role : '')
    }
    for (const t of TRANSITIONS.filter((t) => t.step !== 'view'))
      expect(roles(t.by), `${t.kind}/${t.step}`).not.toContain('admin')
    expect([...coveredCategories(['mail'])]).toEqual([])
    expect([...coveredCategories(['dns'])]).toEqual(['dns'])
    expect([...coveredCategories(['network'])].sort()).toEqual(['dns', 'flows', 'packets', 'web'])
  })
})
