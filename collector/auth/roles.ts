/**
 * User roles. `admin` and `operator` run the system; the others are the people of the bulletin's
 * investigation workflow (bulletin sections 8 and 9; docs/cases.md), so tokens can carry them.
 */
export const ROLES = [
  'admin',
  'operator',
  'requester',
  'approver',
  'oios_chief',
  'itsd_lead',
  'itsd_investigator',
  'oios_investigator',
  'oios_designee',
  'receiving_official',
  'auditor',
] as const
export type Role = (typeof ROLES)[number]

export const ROLE_DESCRIPTIONS: Record<Role, string> = {
  admin: 'manages enrollment tokens, users and agents',
  operator: 'reads fleet, host health and site usage (bulletin 8.1)',
  requester: 'files a written investigation request (ST/AI/371, bulletin 8.4a)',
  approver: 'approves or denies a request: USG for Management or Chief of Administration (8.4c)',
  oios_chief: 'OIOS Chief of Investigations, consulted before approval (8.4d)',
  itsd_lead: 'opens a technical case on a disruption without approval (8.2)',
  itsd_investigator: 'performs the retrieval inside a grant (8.5d)',
  oios_investigator: 'runs OIOS investigations (section 9)',
  oios_designee: 'ITSD officer designated to assist OIOS (9.2e)',
  receiving_official: 'receives the records and signs the receipt (8.5c)',
  auditor: 'verifies the register',
}
