/**
 * User roles. `admin` and `operator` run the system; the others are the people of the bulletin's
 * investigation workflow (bulletin sections 8 and 9; docs/cases.md), so tokens can carry them.
 *
 * Who grants a role, who confirms it and which roles one person may not hold together are
 * decided here, once (docs/privacy.md "Roles and who grants them"), and enforced by users.ts on
 * every proposal and confirmation.
 */
import type { Role } from '../../protocol/api/names.ts'

export const ROLE_DESCRIPTIONS: Record<Role, string> = {
  admin: 'ITSD: proposes and confirms ITSD users and roles, enrollment tokens, agents',
  operator: 'reads fleet, host health and site usage (bulletin 8.1)',
  requester: 'files a written investigation request (ST/AI/371, bulletin 8.4a)',
  approver: 'approves or denies a request: USG for Management or Chief of Administration (8.4c)',
  oios_chief:
    'OIOS Chief of Investigations, consulted before approval (8.4d); administers OIOS users',
  itsd_lead: 'opens a technical case on a disruption without approval (8.2)',
  itsd_investigator: 'performs the retrieval inside a grant (8.5d)',
  oios_investigator: 'runs OIOS investigations (section 9)',
  oios_designee: 'ITSD officer designated to assist OIOS (9.2e); granted by OIOS',
  receiving_official: 'receives the records and signs the receipt (8.5c)',
  auditor: 'verifies the register',
}

/**
 * The two administrations. ITSD's admins grant ITSD roles and record them in the ITSD register;
 * OIOS's chiefs grant OIOS roles and record them in the OIOS register, which ITSD cannot read.
 */
export type Side = 'itsd' | 'oios'

export const SIDE_OF: Record<Role, Side> = {
  admin: 'itsd',
  operator: 'itsd',
  requester: 'itsd',
  approver: 'itsd',
  itsd_lead: 'itsd',
  itsd_investigator: 'itsd',
  receiving_official: 'itsd',
  auditor: 'itsd',
  oios_chief: 'oios',
  oios_investigator: 'oios',
  // Seeing OIOS cases is OIOS's to give, even to an ITSD officer.
  oios_designee: 'oios',
}

/** The role whose holders propose and confirm the grants of a side. */
export const ADMINISTRATOR: Record<Side, Role> = { itsd: 'admin', oios: 'oios_chief' }

/** The administrator role of a user (undefined for everyone else). */
export function administeredSide(roles: readonly Role[]): Side | undefined {
  if (roles.includes('admin')) return 'itsd'
  if (roles.includes('oios_chief')) return 'oios'
  return undefined
}

/**
 * Pairs one person may never hold together, whoever grants them. A case needs a requester, an
 * approver and an investigator who are three people, a receiving official who is none of them,
 * and an auditor who checks them all; an admin grants roles and so holds none of the case's;
 * ITSD roles and OIOS roles never meet in one person (OIOS investigates ITSD too).
 */
const CASE_ROLES: Role[] = [
  'requester',
  'approver',
  'itsd_lead',
  'itsd_investigator',
  'receiving_official',
  'auditor',
]
const OIOS_ROLES: Role[] = ['oios_chief', 'oios_investigator', 'oios_designee']

function conflictPairs(): [Role, Role][] {
  const pairs: [Role, Role][] = []
  // Every two case roles but the technical pair is separate: lead and investigator of a
  // technical case are two people too, so that pair is included as well.
  for (const [i, a] of CASE_ROLES.entries())
    for (const b of CASE_ROLES.slice(i + 1)) pairs.push([a, b])
  for (const r of CASE_ROLES) pairs.push(['admin', r])
  for (const r of [...OIOS_ROLES]) pairs.push(['admin', r])
  for (const r of [...CASE_ROLES, 'operator' as Role])
    for (const o of ['oios_chief', 'oios_investigator'] as Role[]) pairs.push([r, o])
  // A designee is an ITSD officer, but not one who asks, decides, receives or audits.
  for (const r of ['requester', 'approver', 'receiving_official', 'auditor'] as Role[])
    pairs.push([r, 'oios_designee'])
  pairs.push(['oios_chief', 'oios_investigator'])
  pairs.push(['oios_chief', 'oios_designee'])
  pairs.push(['oios_investigator', 'oios_designee'])
  return pairs
}

export const CONFLICTS: readonly (readonly [Role, Role])[] = conflictPairs()

/** The conflicting pairs inside `roles` (empty when one person may hold them all). */
export function conflictsIn(roles: readonly Role[]): [Role, Role][] {
  const held = new Set(roles)
  return CONFLICTS.filter(([a, b]) => held.has(a) && held.has(b)).map(([a, b]) => [a, b])
}
