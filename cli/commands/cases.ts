/**
 * `tally case ...` and `tally oios ...`: the investigation workflow from the command line, for
 * the people of the bulletin, each with their own token (TALLY_TOKEN or --token-file). Requests
 * and openings are YAML or JSON files, since they carry many fields; steps take flags. `--json`
 * prints the API's answer for scripts.
 */
import { readFileSync } from 'node:fs'
import { type CaseFileKind, caseFileExample } from '../../collector/cases/examples.ts'
import type { Case } from '../../protocol/api/cases.ts'
import type { CallOf } from '../../protocol/api/contract.ts'
import type * as Api from '../../protocol/api/index.ts'
import {
  API_OPTIONS,
  type ApiOptions,
  api,
  apiWithDocument,
  contracts,
  print,
} from '../api-options.ts'
import type { CommandSpec, OptionSpec } from '../command-table.ts'
import { CASE_ID } from './case-id.ts'
import { caseRecordCommands } from './case-records.ts'

type CaseRoutes = typeof Api.cases

const summary = (c: Case): string =>
  [
    `${c.case_id}  ${c.kind}  ${c.state}${c.emergency ? '  (emergency)' : ''}`,
    `  ${c.description}`,
    `  categories ${c.categories.join(', ')}; window ${c.window.start} .. ${c.window.end}`,
    `  subjects ${c.subjects.map((s) => s.agent_id + (s.addresses.length > 0 ? ` [${s.addresses.join(' ')}]` : '')).join(', ')}`,
    ...(c.investigator ? [`  investigator ${c.investigator}`] : []),
    ...(c.notice
      ? [`  notice ${c.notice.method} at ${c.notice.at} to ${c.notice.to.join(', ')}`]
      : []),
  ].join('\n')

/**
 * A step on one case (`tally case approve <case-id> ...`): its flags, and the call of its route,
 * typed by that route's contract; the answer is the case after the step.
 */
function caseStep<O extends object>(spec: {
  name: string
  description: string
  options: readonly OptionSpec[]
  call: (routes: CaseRoutes, options: ApiOptions & O, caseId: string) => Promise<Case>
}): CommandSpec<ApiOptions & O, readonly [string]> {
  return {
    name: spec.name,
    description: spec.description,
    arguments: [CASE_ID],
    options: [...spec.options, ...API_OPTIONS],
    run: async (options, [caseId]) => {
      const answer = await spec.call((await contracts()).cases, options, caseId)
      print(options, answer, () => summary(answer))
    },
  }
}

const FILE_OPTIONS: readonly OptionSpec[] = [
  {
    flags: '-f, --file <file>',
    description: 'the case file, YAML or JSON (--example prints one to fill in; see docs/cases.md)',
  },
  { flags: '--example', description: 'print a commented template of the file and exit' },
]

interface FileOptions extends ApiOptions {
  file?: string
  example?: boolean
}

/**
 * The case file the options name, as written (the collector checks it against the route's
 * schema and names what is wrong); or undefined once --example printed the template instead.
 */
async function caseFile(
  kind: CaseFileKind,
  options: FileOptions,
): Promise<{ document: unknown } | undefined> {
  if (options.example === true) {
    process.stdout.write(caseFileExample(kind))
    return undefined
  }
  if (options.file === undefined) throw new Error('-f, --file <file> is required (or --example)')
  const { parse } = await import('yaml')
  return { document: parse(readFileSync(options.file, 'utf8')) }
}

type OpeningRoute = CaseRoutes[
  | 'fileCase'
  | 'recordEmergency'
  | 'openTechnicalCase'
  | 'openOiosCase']

/** A case opened from a file (`tally case request -f request.yaml`). */
function caseOpening(
  kind: CaseFileKind,
  description: string,
  opening: (routes: CaseRoutes) => OpeningRoute,
): CommandSpec<FileOptions> {
  return {
    name: kind,
    description,
    options: [...FILE_OPTIONS, ...API_OPTIONS],
    run: async (options) => {
      const file = await caseFile(kind, options)
      if (file === undefined) return
      const route = opening((await contracts()).cases)
      const answer = await apiWithDocument(options, route, {}, file.document)
      print(options, answer, () => summary(answer))
    },
  }
}

const STEPS = [
  caseStep<{ summary: string }>({
    name: 'consult',
    description: 'Record the OIOS consultation (8.4d; OIOS Chief of Investigations)',
    options: [{ flags: '--summary <text>', description: 'what OIOS said', required: true }],
    call: (routes, o, id) =>
      api(o, routes.recordConsultation, { params: { id }, body: { summary: o.summary } }),
  }),
  caseStep<{ statement: string }>({
    name: 'confirm',
    description:
      'Confirm an emergency before its approval (8.4b; another approver or the OIOS Chief, neither its recorder nor who asked)',
    options: [
      {
        flags: '--statement <text>',
        description: 'how the emergency was confirmed, for the register',
        required: true,
      },
    ],
    call: (routes, o, id) =>
      api(o, routes.confirmEmergency, { params: { id }, body: { statement: o.statement } }),
  }),
  caseStep<{ investigator: string; until?: string; comment?: string }>({
    name: 'approve',
    description:
      'Approve a request and name the investigator (8.4c; approver role, not the requester)',
    options: [
      {
        flags: '--investigator <user-id>',
        description: 'an ITSD investigator, neither requester nor approver',
        required: true,
      },
      {
        flags: '--until <time>',
        description: 'an earlier end than requested, never later (ISO 8601)',
      },
      { flags: '--comment <text>', description: 'a comment for the register' },
    ],
    call: (routes, o, id) =>
      api(o, routes.approveCase, {
        params: { id },
        body: { investigator: o.investigator, until: o.until, comment: o.comment },
      }),
  }),
  caseStep<{ reason: string }>({
    name: 'deny',
    description: 'Deny a request (approver role, not the requester)',
    options: [
      {
        flags: '--reason <text>',
        description: 'why, for the register and the requester',
        required: true,
      },
    ],
    call: (routes, o, id) =>
      api(o, routes.denyCase, { params: { id }, body: { reason: o.reason } }),
  }),
  caseStep<NoticeOptions>({
    name: 'notice',
    description:
      'Record the notice to the staff member and supervisor (8.5a; an approver who is neither the requester nor the investigator): --outbox sends it, or give it in person before a witness. Grants are issued only then.',
    options: [
      {
        flags: '--outbox',
        description: 'send through the configured webhook or SMTP; on record once delivered',
      },
      { flags: '--given-by <name>', description: 'who gave the notice in person' },
      { flags: '--witness <name>', description: 'who else was present when it was given' },
      {
        flags: '--given-at <time>',
        description: 'when (ISO 8601; not in the future, not before the approval)',
      },
      {
        flags: '--to <who...>',
        description: 'staff_member and/or supervisor',
        default: ['staff_member', 'supervisor'],
      },
    ],
    // Sent as the flags give it: without --outbox, the collector names the flags left out.
    call: (routes, o, id) =>
      apiWithDocument(o, routes.recordNotice, { params: { id } }, noticeOf(o)),
  }),
  caseStep<{ until: string; justification: string }>({
    name: 'extend',
    description: 'Extend the window: a new approval (8.5f; approver role)',
    options: [
      { flags: '--until <time>', description: 'the new end (ISO 8601)', required: true },
      {
        flags: '--justification <text>',
        description: 'why the case needs longer',
        required: true,
      },
    ],
    call: (routes, o, id) =>
      api(o, routes.extendCase, {
        params: { id },
        body: { until: o.until, justification: o.justification },
      }),
  }),
  caseStep<{ outcome: string }>({
    name: 'close',
    description:
      'Close the case with its outcome (8.5f): grants end, tier I data is purged, the staff ' +
      'member is told. Who may close: the approver, the requester or the investigator of the ' +
      'case; for a technical case also the ITSD lead, for an OIOS case also an OIOS ' +
      'investigator or the OIOS Chief.',
    options: [
      {
        flags: '--outcome <text>',
        description: 'how the case ended, for the register and the notice',
        required: true,
      },
    ],
    call: (routes, o, id) =>
      api(o, routes.closeCase, { params: { id }, body: { outcome: o.outcome } }),
  }),
]

interface NoticeOptions {
  outbox?: boolean
  givenBy?: string
  witness?: string
  givenAt?: string
  to: string[]
}

const noticeOf = (o: NoticeOptions) =>
  o.outbox
    ? { method: 'outbox' }
    : {
        method: 'in_person',
        given_by: o.givenBy,
        witness: o.witness,
        given_at: o.givenAt,
        to: o.to,
      }

const WRITTEN_REQUEST: CommandSpec<FileOptions, readonly [string | undefined]> = {
  name: 'written-request',
  description:
    'File the written request after a verbal one (8.4b; the person who asked). --example prints the file.',
  arguments: [{ ...CASE_ID, name: '[case-id]' }],
  options: [...FILE_OPTIONS, ...API_OPTIONS],
  run: async (options, [caseId]) => {
    const file = await caseFile('written-request', options)
    if (file === undefined) return
    if (caseId === undefined) throw new Error('the case id is required')
    const { cases } = await contracts()
    const answer = await apiWithDocument(
      options,
      cases.fileWrittenRequest,
      { params: { id: caseId } },
      file.document,
    )
    print(options, answer, () => summary(answer))
  },
}

const LIST: CommandSpec<ApiOptions> = {
  name: 'list',
  description: 'The cases you may see',
  options: API_OPTIONS,
  run: async (options) => {
    const { cases } = await contracts()
    const answer = await api(options, cases.listCases)
    print(options, answer, () =>
      answer.cases.length === 0 ? 'no cases' : answer.cases.map(summary).join('\n'),
    )
  },
}

const SHOW: CommandSpec<ApiOptions, readonly [string]> = {
  name: 'show',
  description: 'One case',
  arguments: [CASE_ID],
  options: API_OPTIONS,
  run: async (options, [caseId]) => {
    const { cases } = await contracts()
    const answer = await api(options, cases.getCase, { params: { id: caseId } })
    print(options, answer, () => summary(answer))
  },
}

const ACCESS_GRANT: CommandSpec<ApiOptions, readonly [string]> = {
  name: 'access-grant',
  description: "Print the case's access grant (its investigator only)",
  arguments: [CASE_ID],
  options: API_OPTIONS,
  run: async (options, [caseId]) => {
    const { cases } = await contracts()
    const answer = await api(options, cases.getAccessGrant, { params: { id: caseId } })
    print(options, answer, () => answer.token)
  },
}

export const caseCommands: CommandSpec = {
  name: 'case',
  description:
    'Investigations (bulletin 8 and 9): request, approve, notify, drill down, export, receipt. ' +
    'Each step is taken by its own role with its own token; docs/cases.md has the workflow.',
  helpAfter:
    '\nWho may close a case (tally case close): its approver, its requester or its investigator;' +
    '\nfor a technical case also the ITSD lead, for an OIOS case also an OIOS investigator or' +
    '\nthe OIOS Chief. Closing ends the grants at once and purges the tier I data.',
  commands: [
    caseOpening(
      'request',
      'File a written request (8.4a; requester role). --example prints the file to fill in.',
      (c) => c.fileCase,
    ),
    caseOpening(
      'emergency',
      'Record a verbal request in an emergency (8.4b; approver role, naming who asked). --example prints the file.',
      (c) => c.recordEmergency,
    ),
    caseOpening(
      'technical',
      'Open a technical case on a disruption (8.2; ITSD lead): flows only, 72 h at most. --example prints the file.',
      (c) => c.openTechnicalCase,
    ),
    caseOpening(
      'oios',
      'Open an OIOS case (section 9; OIOS investigator): no approval, no notice. --example prints the file.',
      (c) => c.openOiosCase,
    ),
    WRITTEN_REQUEST,
    ...STEPS,
    LIST,
    SHOW,
    ACCESS_GRANT,
    ...caseRecordCommands,
  ],
}

type Designation = CallOf<CaseRoutes['designateForOios']>['body']

export const oiosCommands: CommandSpec = {
  name: 'oios',
  description: 'OIOS arrangements (section 9)',
  commands: [
    {
      name: 'designate',
      description:
        'Designate an ITSD officer (one per category) or alternate (two at most) to assist OIOS (9.2e; admin)',
      options: [
        {
          flags: '--category <name>',
          description: 'resource category, e.g. network',
          required: true,
        },
        {
          flags: '--user <user-id>',
          description: 'the ITSD officer, a user id (u-...)',
          required: true,
        },
        { flags: '--position <position>', description: 'designee or alternate', required: true },
        ...API_OPTIONS,
      ],
      run: async (
        options: ApiOptions & {
          category: string
          user: string
          position: Designation['position']
        },
      ) => {
        const { cases } = await contracts()
        const answer = await api(options, cases.designateForOios, {
          body: { category: options.category, user_id: options.user, position: options.position },
        })
        print(options, answer, () => JSON.stringify(answer))
      },
    },
  ],
}
