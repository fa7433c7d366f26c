/**
 * The names and bounds the public API shares with its clients: roles, site names, registers,
 * usage dimensions, case kinds and states, page sizes. The collector's modules take them from
 * here, so a client and the server cannot disagree on them.
 */

/**
 * User roles. `admin` and `operator` run the system; the others are the people of the
 * bulletin's investigation workflow (bulletin sections 8 and 9; docs/cases.md).
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

/** A site's name: what an enrollment token is scoped to and usage is grouped by. */
export const SITE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/

/** `itsd`, ITSD's special register (8.5d); `oios`, OIOS's own record (9.2d). */
export const REGISTERS = ['itsd', 'oios'] as const
export type RegisterName = (typeof REGISTERS)[number]

/** Who reads each register: anyone else gets 403 for `itsd` and 404 for `oios`. */
export const REGISTER_READERS: Record<RegisterName, readonly Role[]> = {
  itsd: ['auditor', 'admin', 'approver'],
  oios: ['oios_investigator', 'oios_chief'],
}

/** The most register entries one page holds. */
export const MAX_PAGE = 10_000

/** The dimensions site usage can be broken down by. */
export const USAGE_DIMENSIONS = [
  'service',
  'peer_class',
  'transport',
  'ip_version',
  'direction',
] as const
export type UsageDimension = (typeof USAGE_DIMENSIONS)[number]

/** The most tier I records one drill-down answers. */
export const MAX_DRILL_LIMIT = 10_000

export const CASE_KINDS = ['standard', 'technical', 'oios'] as const
export type CaseKind = (typeof CASE_KINDS)[number]

/**
 * requested: filed (8.4a), or recorded verbally in an emergency (8.4b); nothing may happen yet.
 * approved: approved (8.4c), waiting for the notice to the staff member (8.5a).
 * active: notice on record and grants issued; capture and drill-down may happen inside the window.
 * denied, suspended (the written request did not follow an emergency in time), closed (8.5f),
 * expired (the window ended). Purging tier I data (after delivery or at the end, 8.5e) is not a
 * state: the case stays closed, expired or suspended (or active after a receipt) and its
 * `purged_at` says when.
 */
export const CASE_STATES = [
  'requested',
  'approved',
  'active',
  'denied',
  'suspended',
  'closed',
  'expired',
] as const
export type CaseState = (typeof CASE_STATES)[number]
