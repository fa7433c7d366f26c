// The overview: who you are, what your roles let you do here.
import { h } from '../ui.js'

const ROLE_TEXT = {
  requester: 'File a written investigation request (bulletin 8.4a) and follow your cases.',
  approver:
    'Record an emergency (verbal) request, approve, deny or extend requests (8.4b, 8.4c, 8.5f).',
  oios_chief: 'Record OIOS’s consultation before an approval (8.4d); confirm an emergency.',
  itsd_lead: 'Open a technical case on a disruption (8.2).',
  oios_investigator: 'Open an OIOS case (section 9).',
  itsd_investigator:
    'Work inside a grant (Investigations): drill down into flows, DNS and web, make the export.',
  receiving_official:
    'Receive the records (Receive bundles): check their digests here, then sign the receipt.',
  auditor:
    'Verify the register in this browser (Register): the same checks as `tally register verify`.',
  admin: 'Administer users, roles and agents: use the CLI (`tally admin`).',
  operator: 'Fleet and usage: see Grafana or `tally fleet`.',
  oios_designee: 'See the OIOS cases your designations cover (My cases).',
}

export function render(view, { user }) {
  view.append(
    h('h1', {}, 'Overview'),
    h('p', {}, `Signed in as ${user.name} (${user.user_id}).`),
    h('h2', {}, 'Your roles'),
    h(
      'ul',
      {},
      user.roles.map((r) => h('li', {}, h('strong', {}, r), ': ', ROLE_TEXT[r] ?? '')),
    ),
    h(
      'p',
      { class: 'help' },
      `Your session ends after ${Math.round(user.idle_seconds / 60)} minutes without use, and after ${Math.round(user.max_seconds / 3600)} hours in any case.`,
    ),
  )
}
