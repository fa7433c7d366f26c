/**
 * The case files as templates: `tally case <kind> --example` prints one, commented field by
 * field. Each parses, as printed, with the schema the collector applies to that file
 * (model.ts), so an operator replaces the values and keeps the shape; a test holds them to it.
 * The ids are placeholders of the right form (u-..., a-...): `tally admin user list` and
 * `tally fleet` give the real ones.
 */
import { CATEGORIES } from '../../protocol/grants.ts'

export const CASE_FILE_KINDS = [
  'request',
  'emergency',
  'written-request',
  'technical',
  'oios',
] as const
export type CaseFileKind = (typeof CASE_FILE_KINDS)[number]

const HOUR_MS = 3_600_000

/** An instant as the files want it: ISO 8601 with an offset, to the second. */
const iso = (ms: number): string => `${new Date(ms).toISOString().slice(0, 19)}Z`

const subjects = `# Whose traffic: the agent that captures it (tally fleet lists agent ids). In host mode the
# agent runs on the staff member's own computer: leave addresses out. In gateway mode (a
# mirror port) name the staff member's addresses; the capture matches nothing else.
subjects:
  - agent_id: a-0123456789abcdef
  #   addresses: [10.20.1.17, 2001:db8:20::17]`

const categories = `# What may be captured and shown, at least one of: ${CATEGORIES.join(', ')}.
# packets are encrypted at rest and need an export to leave the collector.`

const people = `# The staff member concerned and their supervisor: the notice before access (8.5a) and the
# closing notice (8.5f) go to them.
staff_member: { name: Jane Doe, email: jane.doe@example.org }
supervisor: { name: John Roe, email: john.roe@example.org }`

function request(now: number): string {
  return `# A written request (bulletin 8.4a), filed by a requester: tally case request -f FILE.
# The requester, the approver and the investigator must be three different people.

# What data is needed and why it is needed, in the requester's words.
data_required: Network flows and DNS names of the staff member's workstation
${categories}
categories: [flows, dns]
${people}
# Who receives the export bundle and signs its receipt: a user id with the receiving_official
# role (tally admin user list). Tier I data is purged once they have signed.
receiving_official: u-0123456789abcdef
requesting_office: Office of Human Resources Management
# The grounds for the request (the referral, its reference).
justification: Referral under ST/AI/371, reference 2026/17
${subjects}
# When capture and drill-down may happen. Grants end at window.end, and at most
# cases.max_grant_days (30) after approval; tally case extend is a new approval.
window: { start: "${iso(now)}", end: "${iso(now + 2 * HOUR_MS)}" }
`
}

function emergency(now: number): string {
  return `# A verbal request in an emergency (bulletin 8.4b), recorded by an approver:
# tally case emergency -f FILE. The same fields as a written request, and who asked, when.
# The written request (tally case written-request CASE -f FILE, by the person who asked) is
# due within cases.emergency_written_hours (24); without it the case is suspended.

# The user id of who asked verbally (not the approver who records it).
verbal_requester: u-0123456789abcdef
received_at: "${iso(now)}"
${request(now)
  .split('\n')
  .filter((line) => !line.startsWith('# A written request') && !line.startsWith('# The requester,'))
  .join('\n')}`
}

function writtenRequest(now: number): string {
  return `# The written request that follows a verbal one (8.4b): tally case written-request CASE -f FILE,
# by the person who asked. It must confirm the verbal request: the same staff member, subjects,
# categories and receiving official.
${request(now)
  .split('\n')
  .filter((line) => !line.startsWith('# A written request') && !line.startsWith('# The requester,'))
  .join('\n')}`
}

function technical(): string {
  return `# A technical case on a disruption (bulletin 8.2), opened by the ITSD lead:
# tally case technical -f FILE. Flows only, at most 72 hours, registered and notified; no
# approval step. The outbox (cases.outbox) must be configured: the notice goes through it.

# What is disrupted and why the subjects' flows are needed to fix it.
description: Workstation saturating the delegation uplink since 08:00 UTC
${subjects}
# Who investigates: a user id with the itsd_investigator role, not the lead who opens the case.
investigator: u-0123456789abcdef
# How long the case runs from now, in hours (at most cases.technical_max_hours, 72).
hours: 24
# Who is told that the case exists (8.2: "registered and notified"): the delegation's contact.
notify:
  - { name: Delegation IT contact, email: it-contact@example.org }
`
}

function oios(now: number): string {
  return `# An OIOS case (bulletin section 9), opened by an OIOS investigator: tally case oios -f FILE.
# No approval and no notice; the case and its register are invisible to ITSD roles.

# What the investigation is about, as OIOS may record it.
description: OIOS investigation 2026/042
${categories}
categories: [flows, dns, web]
${subjects}
# When capture and drill-down may happen.
window: { start: "${iso(now)}", end: "${iso(now + 7 * 24 * HOUR_MS)}" }
# Who receives the export bundle and signs its receipt (receiving_official role).
receiving_official: u-0123456789abcdef
`
}

/** The commented template of one case file, with its window starting at `now`. */
export function caseFileExample(kind: CaseFileKind, now = Date.now()): string {
  switch (kind) {
    case 'request':
      return request(now)
    case 'emergency':
      return emergency(now)
    case 'written-request':
      return writtenRequest(now)
    case 'technical':
      return technical()
    case 'oios':
      return oios(now)
  }
}
