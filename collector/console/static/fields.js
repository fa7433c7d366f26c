// What each field of a request means, in the bulletin's terms (ST/SGB/2004/15 sections 8 and 9;
// docs/cases.md), shown where the field is filled.
export const HELP = {
  data_required:
    'The data needed and why (8.4a): say exactly which traffic records, for what. Up to 2000 characters.',
  categories:
    'Which kinds of record may be captured and read: flows (who talked to what, when, how much), dns (names looked up), web (sites visited), packets (full content, the most intrusive). Ask for the least that answers the question.',
  staff_member:
    'The staff member concerned (8.4a). The notice before any access (8.5a) goes to them.',
  supervisor: 'Their supervisor, notified as well (8.5a).',
  receiving_official:
    'The user id (u-…) of the official who receives the records and signs the receipt (8.5c); after the receipt the data is purged. Must hold the receiving_official role.',
  requesting_office: 'The office that asks (ST/AI/371).',
  justification:
    'The grounds: the referral, its reference, why less intrusive means are not enough. Up to 5000 characters.',
  subjects:
    'Where capture happens: the agent on the staff member’s computer (host mode), or the agent on the site’s mirror port with the staff member’s addresses (gateway mode). 1 to 16.',
  agent_id: 'The agent id (a- and 16 characters), from `tally fleet`.',
  addresses:
    'Gateway mode only: the staff member’s IPv4 or IPv6 addresses, separated by spaces or commas. Leave empty in host mode.',
  window_start: 'When capture and drill-down may begin.',
  window_end:
    'When they must stop. The approver may end the window earlier, never later; every grant ends (8.5f).',
  verbal_requester:
    'The user id of who asked verbally (8.4b); not you. They must file the written request in time or the case is suspended.',
  received_at: 'When the verbal request was received.',
  description: 'What the case is about, as it will stand on the register.',
  investigator:
    'The user id of the investigator (itsd_investigator), not the one who opens or approves the case.',
  hours: 'How long from now the technical case runs: at most 72 hours (8.2). Flows only.',
  notify:
    'Who is told of the technical case (8.2: “registered and notified”), e.g. the delegation’s contact.',
}
