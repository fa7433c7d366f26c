/**
 * `tally case ...`: the investigation workflow from the command line, for the people of the
 * bulletin, each with their own token (TALLY_TOKEN or --token-file). Requests and openings are
 * YAML or JSON files, since they carry many fields; steps take flags. `--json` prints the API's
 * answer for scripts.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Command } from 'commander'
import type { RouteContract } from '../protocol/api/contract.ts'
import type * as Api from '../protocol/api/index.ts'
import { type ApiOptions, api, apiOptions, contracts, print, targetOf } from './api-options.ts'

type Routes = typeof Api.cases
/** A route answered with the case: an opening or a step. */
type CaseRoute = RouteContract & {
  readonly answer: { readonly description: string; readonly schema: Routes['Case'] }
}
type CaseStepRoute = CaseRoute
type CaseOpeningRoute = CaseRoute

import { type CaseFileKind, caseFileExample } from '../collector/cases/examples.ts'
import type { Case } from '../protocol/api/cases.ts'

async function readBody(file: string): Promise<unknown> {
  const { parse } = await import('yaml')
  return parse(readFileSync(file, 'utf8'))
}

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

type Step = (command: Command) => Command

const CASE_ID = 'the case id (c-..., as `tally case list` shows it)'

function caseStep(
  parent: Command,
  name: string,
  description: string,
  define: Step,
  step: (routes: Routes) => CaseStepRoute,
  body: (options: Record<string, unknown>) => unknown,
): void {
  apiOptions(
    define(parent.command(name).description(description).argument('<case-id>', CASE_ID)),
  ).action(async (caseId: string, options: ApiOptions & Record<string, unknown>) => {
    const route = step((await contracts()).cases)
    const answer = await api(options, route, {
      params: { id: caseId },
      body: body(options),
    } as never)
    print(options, answer, () => summary(answer))
  })
}

const FILE = 'the case file, YAML or JSON (--example prints one to fill in; see docs/cases.md)'
const EXAMPLE = 'print a commented template of the file and exit'

/** With --example, prints the template of the file instead of calling the collector. */
function example(kind: CaseFileKind, options: { example?: boolean; file?: string }): boolean {
  if (options.example === true) {
    process.stdout.write(caseFileExample(kind))
    return true
  }
  if (options.file === undefined) throw new Error('-f, --file <file> is required (or --example)')
  return false
}

function fileStep(
  parent: Command,
  name: CaseFileKind,
  description: string,
  opening: (routes: Routes) => CaseOpeningRoute,
): void {
  apiOptions(
    parent
      .command(name)
      .description(description)
      .option('-f, --file <file>', FILE)
      .option('--example', EXAMPLE),
  ).action(async (options: ApiOptions & { file?: string; example?: boolean }) => {
    if (example(name, options)) return
    const route = opening((await contracts()).cases)
    const answer = await api(options, route, {
      body: await readBody(options.file as string),
    } as never)
    print(options, answer, () => summary(answer))
  })
}

/** The access grant of a case, fetched with the investigator's own token, for drill-down calls. */
async function accessGrant(
  options: ApiOptions & { grant?: string },
  caseId: string,
): Promise<string> {
  if (options.grant !== undefined) return options.grant
  const { cases } = await contracts()
  const answer = await api(options, cases.getAccessGrant, { params: { id: caseId } })
  return answer.token
}

export function caseCommand(): Command {
  const cases = new Command('case')
    .description(
      'Investigations (bulletin 8 and 9): request, approve, notify, drill down, export, receipt. ' +
        'Each step is taken by its own role with its own token; docs/cases.md has the workflow.',
    )
    .addHelpText(
      'after',
      '\nWho may close a case (tally case close): its approver, its requester or its investigator;' +
        '\nfor a technical case also the ITSD lead, for an OIOS case also an OIOS investigator or' +
        '\nthe OIOS Chief. Closing ends the grants at once and purges the tier I data.',
    )
  fileStep(
    cases,
    'request',
    'File a written request (8.4a; requester role). --example prints the file to fill in.',
    (c) => c.fileCase,
  )
  fileStep(
    cases,
    'emergency',
    'Record a verbal request in an emergency (8.4b; approver role, naming who asked). --example prints the file.',
    (c) => c.recordEmergency,
  )
  fileStep(
    cases,
    'technical',
    'Open a technical case on a disruption (8.2; ITSD lead): flows only, 72 h at most. --example prints the file.',
    (c) => c.openTechnicalCase,
  )
  fileStep(
    cases,
    'oios',
    'Open an OIOS case (section 9; OIOS investigator): no approval, no notice. --example prints the file.',
    (c) => c.openOiosCase,
  )
  apiOptions(
    cases
      .command('written-request')
      .description(
        'File the written request after a verbal one (8.4b; the person who asked). --example prints the file.',
      )
      .argument('[case-id]', CASE_ID)
      .option('-f, --file <file>', FILE)
      .option('--example', EXAMPLE),
  ).action(
    async (
      caseId: string | undefined,
      options: ApiOptions & { file?: string; example?: boolean },
    ) => {
      if (example('written-request', options)) return
      if (caseId === undefined) throw new Error('the case id is required')
      const { cases } = await contracts()
      const answer = await api(options, cases.fileWrittenRequest, {
        params: { id: caseId },
        body: (await readBody(options.file as string)) as never,
      })
      print(options, answer, () => summary(answer))
    },
  )
  caseStep(
    cases,
    'consult',
    'Record the OIOS consultation (8.4d; OIOS Chief of Investigations)',
    (c) => c.requiredOption('--summary <text>', 'what OIOS said'),
    (c) => c.recordConsultation,
    (o) => ({ summary: o.summary }),
  )
  caseStep(
    cases,
    'confirm',
    'Confirm an emergency before its approval (8.4b; another approver or the OIOS Chief, neither its recorder nor who asked)',
    (c) =>
      c.requiredOption('--statement <text>', 'how the emergency was confirmed, for the register'),
    (c) => c.confirmEmergency,
    (o) => ({ statement: o.statement }),
  )
  caseStep(
    cases,
    'approve',
    'Approve a request and name the investigator (8.4c; approver role, not the requester)',
    (c) =>
      c
        .requiredOption(
          '--investigator <user-id>',
          'an ITSD investigator, neither requester nor approver',
        )
        .option('--until <time>', 'an earlier end than requested, never later (ISO 8601)')
        .option('--comment <text>', 'a comment for the register'),
    (c) => c.approveCase,
    (o) => ({ investigator: o.investigator, until: o.until, comment: o.comment }),
  )
  caseStep(
    cases,
    'deny',
    'Deny a request (approver role, not the requester)',
    (c) => c.requiredOption('--reason <text>', 'why, for the register and the requester'),
    (c) => c.denyCase,
    (o) => ({ reason: o.reason }),
  )
  caseStep(
    cases,
    'notice',
    'Record the notice to the staff member and supervisor (8.5a; an approver who is neither the requester nor the investigator): --outbox sends it, or give it in person before a witness. Grants are issued only then.',
    (c) =>
      c
        .option('--outbox', 'send through the configured webhook or SMTP; on record once delivered')
        .option('--given-by <name>', 'who gave the notice in person')
        .option('--witness <name>', 'who else was present when it was given')
        .option('--given-at <time>', 'when (ISO 8601; not in the future, not before the approval)')
        .option('--to <who...>', 'staff_member and/or supervisor', ['staff_member', 'supervisor']),
    (c) => c.recordNotice,
    (o) =>
      o.outbox
        ? { method: 'outbox' }
        : {
            method: 'in_person',
            given_by: o.givenBy,
            witness: o.witness,
            given_at: o.givenAt,
            to: o.to,
          },
  )
  caseStep(
    cases,
    'extend',
    'Extend the window: a new approval (8.5f; approver role)',
    (c) =>
      c
        .requiredOption('--until <time>', 'the new end (ISO 8601)')
        .requiredOption('--justification <text>', 'why the case needs longer'),
    (c) => c.extendCase,
    (o) => ({ until: o.until, justification: o.justification }),
  )
  caseStep(
    cases,
    'close',
    'Close the case with its outcome (8.5f): grants end, tier I data is purged, the staff ' +
      'member is told. Who may close: the approver, the requester or the investigator of the ' +
      'case; for a technical case also the ITSD lead, for an OIOS case also an OIOS ' +
      'investigator or the OIOS Chief.',
    (c) =>
      c.requiredOption('--outcome <text>', 'how the case ended, for the register and the notice'),
    (c) => c.closeCase,
    (o) => ({ outcome: o.outcome }),
  )

  apiOptions(cases.command('list').description('The cases you may see')).action(
    async (options: ApiOptions) => {
      const { cases } = await contracts()
      const answer = await api(options, cases.listCases)
      print(options, answer, () =>
        answer.cases.length === 0 ? 'no cases' : answer.cases.map(summary).join('\n'),
      )
    },
  )
  apiOptions(cases.command('show').description('One case').argument('<case-id>', CASE_ID)).action(
    async (caseId: string, options: ApiOptions) => {
      const { cases } = await contracts()
      const answer = await api(options, cases.getCase, { params: { id: caseId } })
      print(options, answer, () => summary(answer))
    },
  )
  apiOptions(
    cases
      .command('access-grant')
      .description("Print the case's access grant (its investigator only)")
      .argument('<case-id>', CASE_ID),
  ).action(async (caseId: string, options: ApiOptions) => {
    const { cases } = await contracts()
    const answer = await api(options, cases.getAccessGrant, { params: { id: caseId } })
    print(options, answer, () => answer.token)
  })
  for (const category of ['flows', 'dns', 'web'] as const) {
    apiOptions(
      cases
        .command(category)
        .description(
          `Retrieve the case's ${category} records (investigator; every call is registered)`,
        )
        .argument('<case-id>', CASE_ID)
        .option('--grant <token>', 'the access grant (default: fetched with your token)')
        .option('--from <time>', 'records from this time (ISO 8601), inside the case window')
        .option('--to <time>', 'records until this time (ISO 8601)')
        .option('--address <ip>', 'only records with this address at either end')
        .option('--port <n>', 'only records with this port at either end')
        .option('--limit <n>', 'at most this many records'),
    ).action(
      async (
        caseId: string,
        options: ApiOptions & {
          grant?: string
          from?: string
          to?: string
          address?: string
          port?: string
          limit?: string
        },
      ) => {
        const { from, to, address, port, limit } = options
        const grant = await accessGrant(options, caseId)
        const { restricted } = await contracts()
        const route = {
          flows: restricted.drillFlows,
          dns: restricted.drillDns,
          web: restricted.drillWeb,
        }[category]
        const answer = await api(options, route, {
          params: { id: caseId },
          query: { from, to, address, port, limit },
          headers: { 'x-tally-grant': grant },
        })
        print(
          options,
          answer,
          () => answer.rows.map((r) => JSON.stringify(r)).join('\n') || 'no records',
        )
      },
    )
  }
  apiOptions(
    cases
      .command('export')
      .description('Make an export bundle (investigator)')
      .argument('<case-id>', CASE_ID)
      .option('--grant <token>', 'the access grant (default: fetched with your token)'),
  ).action(async (caseId: string, options: ApiOptions & { grant?: string }) => {
    const grant = await accessGrant(options, caseId)
    const { restricted } = await contracts()
    const answer = await api(options, restricted.createExport, {
      params: { id: caseId },
      body: {} as never,
      headers: { 'x-tally-grant': grant },
    })
    print(
      options,
      answer,
      () => `export ${answer.export_id}\n${JSON.stringify(answer.manifest, null, 2)}`,
    )
  })
  apiOptions(
    cases
      .command('download')
      .description('Download an export bundle into a folder (investigator or receiving official)')
      .argument('<case-id>', CASE_ID)
      .argument('<export-id>', 'the export id `tally case export` printed')
      .requiredOption(
        '--out <dir>',
        'a private folder for the bundle (made 0700; files 0600); not inside a git checkout',
      ),
  ).action(async (caseId: string, exportId: string, options: ApiOptions & { out: string }) => {
    const { download: downloadFile } = await import('../protocol/client.ts')
    const target = await targetOf(options)
    const base = `/v1/cases/${encodeURIComponent(caseId)}/exports/${encodeURIComponent(exportId)}`
    const manifestBytes = await downloadFile(target, `${base}/manifest`)
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as {
      files: { name: string; sha256: string }[]
    }
    mkdirSync(options.out, { recursive: true, mode: 0o700 })
    writeFileSync(join(options.out, 'manifest.json'), manifestBytes, { mode: 0o600 })
    for (const file of manifest.files) {
      const bytes = await downloadFile(target, `${base}/files/${encodeURIComponent(file.name)}`)
      const digest = createHash('sha256').update(bytes).digest('hex')
      if (digest !== file.sha256)
        throw new Error(
          `${file.name}: SHA-256 ${digest} does not match the manifest's ${file.sha256}`,
        )
      writeFileSync(join(options.out, file.name), bytes, { mode: 0o600 })
    }
    print(
      options,
      manifest,
      () =>
        `${manifest.files.length} files in ${options.out}, digests checked against the manifest`,
    )
  })
  apiOptions(
    cases
      .command('receipt')
      .description(
        "Acknowledge a downloaded bundle (8.5c; the receiving official named in the case): the case's tier I data is then purged",
      )
      .argument('<case-id>', CASE_ID)
      .argument('<export-id>', 'the export id `tally case export` printed')
      .requiredOption('--dir <dir>', 'the folder `tally case download` wrote'),
  ).action(async (caseId: string, exportId: string, options: ApiOptions & { dir: string }) => {
    const manifestBytes = readFileSync(join(options.dir, 'manifest.json'))
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as { files: { name: string }[] }
    const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')
    const body = {
      manifest_sha256: sha(manifestBytes),
      files: manifest.files.map((f) => ({
        name: f.name,
        sha256: sha(readFileSync(join(options.dir, f.name))),
      })),
    }
    const { restricted } = await contracts()
    const answer = await api(options, restricted.signReceipt, {
      params: { id: caseId, export_id: exportId },
      body,
    })
    print(
      options,
      answer,
      () => `receipt recorded for ${exportId}; the case's tier I data is purged`,
    )
  })
  return cases
}

export function oiosCommand(): Command {
  const oios = new Command('oios').description('OIOS arrangements (section 9)')
  apiOptions(
    oios
      .command('designate')
      .description(
        'Designate an ITSD officer (one per category) or alternate (two at most) to assist OIOS (9.2e; admin)',
      )
      .requiredOption('--category <name>', 'resource category, e.g. network')
      .requiredOption('--user <user-id>', 'the ITSD officer, a user id (u-...)')
      .requiredOption('--position <position>', 'designee or alternate'),
  ).action(async (options: ApiOptions & { category: string; user: string; position: string }) => {
    const { cases } = await contracts()
    const answer = await api(options, cases.designateForOios, {
      body: {
        category: options.category,
        user_id: options.user,
        position: options.position as 'designee',
      },
    })
    print(options, answer, () => JSON.stringify(answer))
  })
  return oios
}
