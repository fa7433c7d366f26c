/**
 * A case taken through the command line against a real collector process, each step by its own
 * person with their own token: the request from a file, the steps from flags (the notice's
 * missing flags named by the collector), then export, download into a private folder with its
 * digests checked, and the receiving official's receipt from that folder; then a checkpoint of
 * the register that recorded it all.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agents, cases, register, restricted } from '../../protocol/api/index.ts'
import { call } from '../../protocol/client.ts'
import { CollectorProcess, freePort, tmp } from '../e2e/harness.ts'
import { createPeople, type Person, type Role } from '../e2e/investigation/api.ts'
import { tally } from './run-tally.ts'

describe('a case through tally case', () => {
  const work = tmp('case-cli')
  const oiosBootstrapFile = join(tmp('case-cli-oios'), 'oios-bootstrap.token')
  let collector: CollectorProcess
  let people: Record<Role, Person>
  let agentId = ''

  const as = (role: Role, ...args: string[]) =>
    tally([...args, '--collector', collector.url, '--token', people[role].token])
  /** The case the command printed with --json, read by the contract's schema. */
  const caseOf = (stdout: string) => cases.Case.parse(JSON.parse(stdout))

  beforeAll(async () => {
    collector = await new CollectorProcess(tmp('case-cli-data'), await freePort(), {
      TALLY_OIOS_BOOTSTRAP_TOKEN_FILE: oiosBootstrapFile,
    }).ready()
    people = await createPeople(
      collector.url,
      collector.adminToken(),
      readFileSync(oiosBootstrapFile, 'utf8').trim(),
    )
    const enrollment = {
      collectorUrl: collector.url,
      token: await collector.enrollToken('case-cli-site'),
    }
    const enrolled = await call(enrollment, agents.enrollAgent, {
      body: { hostname: 'ws-subject', agent_version: '0.1.0-test' },
    })
    agentId = enrolled.agent_id
  }, 60_000)
  afterAll(async () => {
    await collector?.stop('SIGKILL')
  })

  it('runs from the request to the receipt', async () => {
    const now = Date.now()
    const request = join(work, 'request.json')
    writeFileSync(
      request,
      JSON.stringify({
        data_required: "Network flows of the subject's workstation",
        categories: ['flows'],
        staff_member: { name: 'Jane Doe', email: 'jane.doe@example.org' },
        supervisor: { name: 'John Roe', email: 'john.roe@example.org' },
        receiving_official: people.receiving_official.user_id,
        requesting_office: 'Office of Human Resources Management',
        justification: 'A test of the command line',
        subjects: [{ agent_id: agentId, addresses: ['10.99.9.2'] }],
        window: {
          start: new Date(now - 1_000).toISOString(),
          end: new Date(now + 10 * 60_000).toISOString(),
        },
      }),
    )
    const filed = await as('requester', 'case', 'request', '-f', request, '--json')
    expect(filed.code, filed.stderr).toBe(0)
    const caseId = caseOf(filed.stdout).case_id

    const consulted = await as('oios_chief', 'case', 'consult', caseId, '--summary', 'no objection')
    expect(consulted.code, consulted.stderr).toBe(0)
    expect(consulted.stdout).toContain(`${caseId}  `)
    const approved = await as(
      'approver',
      ...['case', 'approve', caseId, '--investigator', people.itsd_investigator.user_id],
      '--json',
    )
    expect(approved.code, approved.stderr).toBe(0)
    expect(caseOf(approved.stdout).state).toBe('approved')

    // In person without a witness: the collector names what is missing.
    const given = ['case', 'notice', caseId, '--given-by', 'J. Approver']
    const noWitness = await as('approver', ...given, '--given-at', new Date().toISOString())
    expect(noWitness.code).toBe(1)
    expect(noWitness.stderr).toContain('failed (400)')
    expect(noWitness.stderr).toContain('witness')
    const noticed = await as(
      'approver',
      ...given,
      ...['--witness', 'J. Witness', '--given-at', new Date().toISOString(), '--json'],
    )
    expect(noticed.code, noticed.stderr).toBe(0)
    expect(caseOf(noticed.stdout).state).toBe('active')

    const exported = await as('itsd_investigator', 'case', 'export', caseId, '--json')
    expect(exported.code, exported.stderr).toBe(0)
    const { export_id: exportId, manifest } = restricted.ExportCreated.parse(
      JSON.parse(exported.stdout),
    )

    const folder = join(work, 'bundle')
    const downloaded = await as(
      'receiving_official',
      ...['case', 'download', caseId, exportId, '--out', folder],
    )
    expect(downloaded.code, downloaded.stderr).toBe(0)
    expect(downloaded.stdout).toBe(
      `${manifest.files.length} files in ${folder}, digests checked against the manifest\n`,
    )
    expect(statSync(folder).mode & 0o777).toBe(0o700)
    for (const file of manifest.files) {
      expect(existsSync(join(folder, file.name)), file.name).toBe(true)
      expect(statSync(join(folder, file.name)).mode & 0o777).toBe(0o600)
    }

    const receipt = await as(
      'receiving_official',
      'case',
      'receipt',
      caseId,
      exportId,
      '--dir',
      folder,
    )
    expect(receipt.code, receipt.stderr).toBe(0)
    expect(receipt.stdout).toBe(
      `receipt recorded for ${exportId}; the case's tier I data is purged\n`,
    )
  })

  it('signs a checkpoint of the register the case wrote, and prints it', async () => {
    const signed = await as('approver', 'register', 'checkpoint')
    expect(signed.code, signed.stderr).toBe(0)
    const checkpoint = register.Checkpoint.parse(JSON.parse(signed.stdout))
    expect(checkpoint.register).toBe('itsd')
    expect(signed.stderr).toContain(`register itsd: checkpoint at size ${checkpoint.size}, root `)
  })
})
