/**
 * The investigation workflow end to end (bulletin 8.4 and 8.5; docs/cases.md), with real
 * processes and real traffic. A bridge tlybr3 joins three network namespaces: tlyA3 (10.99.3.2,
 * host A, the subject), tlyB3 (10.99.3.3, host B, not a subject) and tlyC3 (10.99.3.4: an HTTP
 * server and a DNS responder). One agent in the root namespace captures on the bridge in gateway
 * mode and sends to a collector process; the people of the case are users made through the
 * admin API, each with their own token.
 *
 * Case 1 names host A: request, consultation, approval; nothing before the notice (no access
 * grant, no drill-down, no agent grant); after the notice the agent starts a subject tcpdump for
 * A's address; A and B both browse and resolve names; the drill-down shows A's flows, DNS names
 * and web names and nothing of B, and every call is in the register with its row count and the
 * digest of its answer; export, download and receipt by the receiving official purge tier I;
 * closing stops the agent's subject capture within one interval and refuses every read.
 * Case 2 names host B with a window that ends seconds after its notice: at the end it is
 * expired, its grants are withdrawn and reads are refused. The register verifies with
 * `tally register verify`, and once the collector is stopped no tier I row of either case is
 * left in the store.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentProcess, CollectorProcess, freePort, queryStore, tmp, waitFor } from './harness.ts'
import {
  agentCredential,
  type CaseDoc,
  type Category,
  call,
  createPeople,
  type DnsRow,
  type FlowRow,
  Investigator,
  json,
  type Person,
  problemCode,
  type Role,
  registerEntries,
  sha256,
  sleep,
  tcpdumpsFor,
  type WebRow,
} from './investigation/api.ts'
import { Lan, lanUnavailable } from './netns/lan.ts'

const unavailable = lanUnavailable(['ip', 'sysctl', 'tcpdump', 'curl', 'dig', 'ping', 'pgrep'])
if (unavailable !== undefined) {
  console.warn(`\n*** SKIPPING test/e2e/investigation.test.ts: ${unavailable} ***\n`)
}

const INTERVAL_MS = 1_000
const ROOT = new URL('../../', import.meta.url).pathname
const SITE = 'investigation-lan'
const ALPHA = 'alpha-only.example'
const BRAVO = 'bravo-only.example'
const BRAVO_TWO = 'bravo-two.example'
const CATEGORIES: Category[] = ['flows', 'dns', 'web']
const RESTRICTED_TABLES = ['flows', 'dns', 'web', 'pcap_segments', 'exports'] as const

const iso = (ms: number) => new Date(ms).toISOString()

describe.skipIf(unavailable !== undefined)('an investigation, from request to purge', () => {
  const lan = new Lan('3', '10.99.3', 3)
  const a = lan.host(0)
  const b = lan.host(1)
  const server = lan.host(2)
  const dataDir = tmp('investigation-data')
  const agentDir = tmp('investigation-agent')
  // OIOS's bootstrap token goes outside the collector's data directory, as on a site.
  const oiosBootstrapFile = join(tmp('investigation-oios'), 'oios-bootstrap.token')
  let collector: CollectorProcess
  let agent: AgentProcess
  let agentId = ''
  let agentToken = ''
  let people: Record<Role, Person>
  let investigator: Investigator
  let url = ''

  /** Case 1 (subject A) and case 2 (subject B, short window). */
  let case1 = ''
  let grant1 = ''
  let agentGrant1 = ''
  let case2 = ''
  let grant2 = ''
  let agentGrant2 = ''
  let case2End = 0

  const as = (role: Role) => people[role].token
  const post = (role: Role, path: string, body: unknown) =>
    call(url, 'POST', path, { token: as(role), body })
  const getCase = async (id: string): Promise<CaseDoc> =>
    json<CaseDoc>(await call(url, 'GET', `/v1/cases/${id}`, { token: as('approver') }))
  const agentGrants = async (): Promise<{ grant_id: string; token: string }[]> =>
    json<{ grants: { grant_id: string; token: string }[] }>(
      await call(url, 'GET', '/v1/agents/grants', { token: agentToken }),
    ).grants

  /** The agent's log lines about one grant with this message. */
  const agentLogged = (msg: string, grantId: string) =>
    agent.logged(msg).filter((line) => line.grant_id === grantId)
  const STARTED = 'grant verified: subject capture started'
  const WITHDRAWN = 'grant withdrawn: subject capture stopped, its undelivered records discarded'
  const ENDED = 'grant window ended: subject capture stopped'
  /**
   * Interval boundaries the agent passed between two times: it spools one batch at each, then
   * asks for its grants. Counted on the agent's own log rather than measured on the wall clock,
   * which a loaded machine stretches.
   */
  const boundariesBetween = (from: number, to: number) =>
    agent.logged('batch spooled').filter((l) => Number(l.time) > from && Number(l.time) < to).length

  /** Waits for `n` more batches from the agent: `n` intervals have passed on its clock. */
  const intervals = async (n: number) => {
    const seen = agent.spooledSeqs().length
    await waitFor(`${n} agent intervals`, () =>
      agent.spooledSeqs().length >= seen + n ? true : undefined,
    )
  }

  const fileCase = async (subject: string, until?: number): Promise<string> => {
    const now = Date.now()
    const filed = json<CaseDoc>(
      await post('requester', '/v1/cases', {
        data_required: `Network flows, DNS names and web names of ${subject}'s workstation`,
        categories: CATEGORIES,
        staff_member: { name: 'Jane Doe', email: 'jane.doe@example.org' },
        supervisor: { name: 'John Roe', email: 'john.roe@example.org' },
        receiving_official: people.receiving_official.user_id,
        requesting_office: 'Office of Human Resources Management',
        justification: 'End-to-end test of the investigation workflow',
        subjects: [{ agent_id: agentId, addresses: [subject] }],
        window: { start: iso(now - 1_000), end: iso(now + 10 * 60_000) },
      }),
      201,
    )
    expect(filed.state).toBe('requested')
    const consulted = json<CaseDoc>(
      await post('oios_chief', `/v1/cases/${filed.case_id}/consultation`, {
        summary: 'OIOS consulted; no objection',
      }),
    )
    expect(consulted.state).toBe('requested')
    const approved = json<CaseDoc>(
      await post('approver', `/v1/cases/${filed.case_id}/approval`, {
        investigator: people.itsd_investigator.user_id,
        ...(until === undefined ? {} : { until: iso(until) }),
      }),
    )
    expect(approved.state).toBe('approved')
    return filed.case_id
  }

  const giveNotice = async (caseId: string): Promise<CaseDoc> =>
    json<CaseDoc>(
      await post('approver', `/v1/cases/${caseId}/notice`, {
        method: 'in_person',
        given_by: 'J. Approver',
        witness: 'J. Witness',
        given_at: iso(Date.now()),
        to: ['staff_member', 'supervisor'],
      }),
    )

  /** The access grant of a case, and the grant the agent verified and started a capture for. */
  const afterNotice = async (caseId: string): Promise<{ access: string; agentGrant: string }> => {
    const granted = json<{ token: string }>(await investigator.accessGrant(caseId))
    const started = await waitFor(
      `the agent to start a subject capture for ${caseId}`,
      () => agent.logged(STARTED).find((line) => line.case_id === caseId),
      10_000,
    )
    return { access: granted.token, agentGrant: String(started.grant_id) }
  }

  const curl = (ns: string, name: string) =>
    lan.exec(ns, 'curl', [
      '-sS',
      '-o',
      '/dev/null',
      '--max-time',
      '5',
      '--resolve',
      `${name}:80:${server.address}`,
      `http://${name}/`,
    ])
  const dig = async (ns: string, name: string) => {
    const out = await lan.exec(ns, 'dig', [`@${server.address}`, name, 'A', '+tries=1', '+time=3'])
    expect(out).toContain('status: NOERROR')
  }

  beforeAll(async () => {
    await lan.setup()
    await lan.startServers(server.ns, { httpPort: 80, answer: server.address })
    collector = new CollectorProcess(dataDir, await freePort(), {
      TALLY_OIOS_BOOTSTRAP_TOKEN_FILE: oiosBootstrapFile,
    })
    url = collector.url
    await collector.ready()
    const enrollToken = await collector.enrollToken(SITE)
    agent = new AgentProcess(agentDir, url, {
      TALLY_ENROLLMENT_TOKEN: enrollToken,
      TALLY_ENROLLMENT_HOSTNAME: 'investigation-gateway',
      TALLY_CAPTURE_INTERFACE: lan.bridge,
      TALLY_CAPTURE_MODE: 'gateway',
      TALLY_CAPTURE_SITE_PREFIXES: `[${lan.prefix}]`,
      TALLY_INTERVAL_SECONDS: String(INTERVAL_MS / 1000),
    })
    const enrolled = await waitFor('the agent to enroll', () => agent.logged('agent enrolled')[0])
    agentId = String(enrolled.agent_id)
    agentToken = agentCredential(agentDir)
    await waitFor('the agent capturing on the bridge', () =>
      agent.logged('traffic capture started').length > 0 ? true : undefined,
    )
    people = await createPeople(
      url,
      collector.adminToken(),
      readFileSync(oiosBootstrapFile, 'utf8').trim(),
    )
    investigator = new Investigator(url, people.itsd_investigator)
  }, 60_000)

  afterAll(async () => {
    await agent?.stop('SIGKILL')
    await collector?.stop('SIGKILL')
    await lan.teardown()
  })

  it('refuses access and runs no capture before the notice (8.4c, 8.5a)', async () => {
    expect(await tcpdumpsFor(a.address), 'no subject capture yet').toEqual([])
    case1 = await fileCase(a.address)

    // Approved, but no notice on record: no access grant, no drill-down, no agent grant.
    const grant = await investigator.accessGrant(case1)
    expect(grant.status).toBe(409)
    expect(problemCode(grant)).toBe('wrong_state')
    for (const category of CATEGORIES) {
      const none = await investigator.raw(case1, category)
      expect(none.status, `${category} without a grant`).toBe(401)
      expect(problemCode(none)).toBe('grant_required')
      const forged = await investigator.raw(case1, category, 'eyJhbGciOiJub25lIn0.e30.')
      expect(forged.status, `${category} with a forged grant`).toBe(401)
    }
    const notInvestigator = await call(url, 'GET', `/v1/cases/${case1}/flows`, {
      token: as('requester'),
    })
    expect(notInvestigator.status).toBe(403)
    expect(
      (await call(url, 'POST', `/v1/cases/${case1}/exports`, { token: as('itsd_investigator') }))
        .status,
    ).toBe(401)
    expect(await agentGrants()).toEqual([])
    await intervals(2)
    expect(agent.logged(STARTED)).toEqual([])
    expect(await tcpdumpsFor(a.address)).toEqual([])
    expect(investigator.calls).toEqual([])
  })

  it("after the notice, the agent runs a subject capture for A's address", async () => {
    const active = await giveNotice(case1)
    expect(active.state).toBe('active')
    const listed = await agentGrants()
    expect(listed).toHaveLength(1)
    ;({ access: grant1, agentGrant: agentGrant1 } = await afterNotice(case1))
    expect(listed[0]?.grant_id).toBe(agentGrant1)
    const running = await waitFor('a tcpdump filtering on A', async () => {
      const lines = await tcpdumpsFor(a.address)
      return lines.length > 0 ? lines : undefined
    })
    expect(running).toHaveLength(1)
    expect(running[0]).toContain(lan.bridge)
    expect(await tcpdumpsFor(b.address), 'nothing captures B').toEqual([])
    // tcpdump has its socket open well within an interval; give it one.
    await intervals(1)
  })

  it("drill-down returns A's flows, DNS and web names and nothing of B", async () => {
    await Promise.all([
      (async () => {
        await dig(a.ns, ALPHA)
        await curl(a.ns, ALPHA)
      })(),
      (async () => {
        await dig(b.ns, BRAVO)
        await curl(b.ns, BRAVO)
      })(),
    ])
    await intervals(2)

    const flows = await waitFor('A\u2019s flows to the server', async () => {
      const rows = await investigator.rows(case1, 'flows', grant1)
      const dns = rows.some((r) => r.protocol === 17 && r.dst_port === 53)
      const http = rows.some((r) => r.protocol === 6 && r.dst_port === 80)
      return dns && http ? rows : undefined
    })
    const endpoints = (r: FlowRow) => [r.src, r.dst]
    for (const row of flows) {
      expect(row.agent_id).toBe(agentId)
      expect(endpoints(row), 'every flow is A\u2019s').toContain(a.address)
      expect(endpoints(row), 'no flow is B\u2019s').not.toContain(b.address)
    }
    const http = flows.find((r) => r.protocol === 6 && r.dst_port === 80)
    expect(http).toMatchObject({ src: a.address, dst: server.address })
    expect(http?.packets).toBeGreaterThan(5)

    const dns = await investigator.rows(case1, 'dns', grant1)
    const names = (rows: DnsRow[]) => rows.map((r) => r.query)
    expect(names(dns)).toContain(ALPHA)
    expect(names(dns)).not.toContain(BRAVO)
    for (const row of dns) {
      expect(row.client).toBe(a.address)
      expect(row.server).toBe(server.address)
    }
    expect(dns.find((r) => r.query === ALPHA)).toMatchObject({ qtype: 'A', rcode: 'NOERROR' })

    const web = await investigator.rows(case1, 'web', grant1)
    const hosts = (rows: WebRow[]) => rows.map((r) => r.name)
    expect(hosts(web)).toContain(ALPHA)
    expect(hosts(web)).not.toContain(BRAVO)
    for (const row of web) expect([row.client, row.server]).not.toContain(b.address)

    // Nothing of B in any answer, in any field.
    for (const category of CATEGORIES) {
      const text = (await investigator.raw(case1, category, grant1)).text
      expect(text).not.toContain(b.address)
      expect(text).not.toContain('bravo')
    }
    // Asking for B's address is reading beyond the grant.
    const wider = await investigator.raw(case1, 'flows', grant1, `?address=${b.address}`)
    expect(wider.status).toBe(403)
    expect(problemCode(wider)).toBe('outside_scope')
  })

  it('every drill-down call is in the register with its rows and the digest of its answer', async () => {
    const entries = await registerEntries(url, people.auditor, case1)
    const drilled = entries.filter((e) => e.kind === 'drilldown')
    const made = investigator.calls.filter((c) => c.case_id === case1)
    expect(made.length).toBeGreaterThanOrEqual(6)
    expect(
      drilled.map((e) => ({
        actor: e.actor,
        category: e.details.category,
        rows: e.details.rows,
        sha256: e.details.sha256,
      })),
    ).toEqual(
      made.map((c) => ({
        actor: people.itsd_investigator.user_id,
        category: c.category,
        rows: c.rows,
        sha256: c.sha256,
      })),
    )
    for (const entry of drilled) expect(entry.details.grant_id).toBeTypeOf('string')
    const refused = entries.filter((e) => e.kind === 'drilldown_refused')
    expect(refused).toHaveLength(1)
    expect(refused[0]?.details).toMatchObject({ category: 'flows', reason: 'outside_scope' })
    const kinds = entries.map((e) => e.kind)
    for (const kind of [
      'case_requested',
      'oios_consulted',
      'case_approved',
      'notice_given',
      'grants_issued',
      'restricted_ingest',
    ]) {
      expect(kinds).toContain(kind)
    }
    expect(kinds.indexOf('notice_given')).toBeLessThan(kinds.indexOf('restricted_ingest'))
    expect(kinds.indexOf('notice_given')).toBeLessThan(kinds.indexOf('drilldown'))
  })

  it('export, download and receipt by the receiving official purge tier I (8.5c, 8.5e)', async () => {
    interface Created {
      export_id: string
      manifest_sha256: string
      manifest: { case_id: string; files: { name: string; bytes: number; sha256: string }[] }
    }
    const created = json<Created>(
      await call(url, 'POST', `/v1/cases/${case1}/exports`, {
        token: as('itsd_investigator'),
        grant: grant1,
      }),
      201,
    )
    expect(created.manifest.case_id).toBe(case1)
    expect(created.manifest.files.map((f) => f.name).sort()).toEqual(
      ['dns.csv', 'dns.json', 'flows.csv', 'flows.json', 'web.csv', 'web.json'].sort(),
    )
    const base = `/v1/cases/${case1}/exports/${created.export_id}`
    const official = { token: as('receiving_official') }
    const manifest = await call(url, 'GET', `${base}/manifest`, official)
    expect(manifest.status).toBe(200)
    expect(sha256(manifest.bytes)).toBe(created.manifest_sha256)
    for (const file of created.manifest.files) {
      const got = await call(url, 'GET', `${base}/files/${file.name}`, official)
      expect(got.status, file.name).toBe(200)
      expect(got.bytes.length).toBe(file.bytes)
      expect(sha256(got.bytes)).toBe(file.sha256)
      expect(got.text, `${file.name} holds nothing of B`).not.toContain(b.address)
      if (file.name === 'dns.csv') expect(got.text).toContain(ALPHA)
      if (file.name === 'flows.json') {
        const rows = JSON.parse(got.text) as FlowRow[]
        expect(rows.length).toBeGreaterThan(0)
        for (const row of rows) expect([row.src, row.dst]).toContain(a.address)
      }
    }
    // Nobody else signs the receipt.
    const receipt = {
      manifest_sha256: created.manifest_sha256,
      files: created.manifest.files.map((f) => ({ name: f.name, sha256: f.sha256 })),
    }
    expect((await post('itsd_investigator', `${base}/receipt`, receipt)).status).toBe(403)
    const signed = json<{ receipt: string; purged: boolean }>(
      await post('receiving_official', `${base}/receipt`, receipt),
    )
    expect(signed).toMatchObject({ receipt: 'signed', purged: true })

    // Tier I is gone: the grant still holds, but nothing is left to read.
    for (const category of CATEGORIES) {
      const answer = await investigator.raw(case1, category, grant1)
      if (answer.status === 200) expect(JSON.parse(answer.text)).toMatchObject({ count: 0 })
      else expect([403, 409]).toContain(answer.status)
    }
    expect((await call(url, 'GET', `${base}/manifest`, official)).status).toBe(404)
    const kinds = (await registerEntries(url, people.auditor, case1)).map((e) => e.kind)
    for (const kind of ['export_created', 'export_downloaded', 'receipt_signed', 'tier_i_purged'])
      expect(kinds).toContain(kind)
    expect(kinds.lastIndexOf('receipt_signed')).toBeLessThan(kinds.lastIndexOf('tier_i_purged'))
  })

  it('records taken after the receipt, while the grant still holds, are readable', async () => {
    await lan.exec(a.ns, 'ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', server.address])
    await intervals(2)
    const rows = await waitFor('A\u2019s pings after the receipt', async () => {
      const flows = await investigator.rows(case1, 'flows', grant1)
      return flows.some((r) => r.protocol === 1) ? flows : undefined
    })
    for (const row of rows) expect([row.src, row.dst]).toContain(a.address)
  })

  it("closing revokes at once and the agent stops A's capture within one interval (8.5f)", async () => {
    expect(await tcpdumpsFor(a.address)).toHaveLength(1)
    const closedAt = Date.now()
    const closed = json<CaseDoc>(
      await post('approver', `/v1/cases/${case1}/closing`, { outcome: 'Delivered' }),
    )
    const answeredAt = Date.now()
    expect(closed.state).toBe('closed')
    expect(await agentGrants()).toEqual([])

    const withdrawn = await waitFor(
      'the agent to withdraw the grant',
      () => agentLogged(WITHDRAWN, agentGrant1)[0],
      5_000,
    )
    const loggedAt = Number(withdrawn.time)
    // The agent asks at every interval: the first ask after the close stops the capture.
    expect(
      boundariesBetween(answeredAt, loggedAt),
      'stopped within one interval of the close',
    ).toBeLessThanOrEqual(1)
    expect(loggedAt).toBeGreaterThan(closedAt)
    await waitFor(
      'A\u2019s tcpdump to exit',
      async () => ((await tcpdumpsFor(a.address)).length === 0 ? true : undefined),
      2_000,
    )
    expect(agentLogged(STARTED, agentGrant1)).toHaveLength(1)

    for (const category of CATEGORIES) {
      const after = await investigator.raw(case1, category, grant1)
      expect(after.status, `${category} after close`).toBe(403)
      expect(['grant_revoked', 'case_not_active']).toContain(problemCode(after))
    }
    expect(
      (
        await call(url, 'POST', `/v1/cases/${case1}/exports`, {
          token: as('itsd_investigator'),
          grant: grant1,
        })
      ).status,
    ).toBe(403)
    expect((await investigator.accessGrant(case1)).status).toBe(409)
    // It stays stopped.
    await intervals(2)
    expect(await tcpdumpsFor(a.address)).toEqual([])
    expect(agent.logged(STARTED).filter((l) => l.case_id === case1)).toHaveLength(1)
    const kinds = (await registerEntries(url, people.auditor, case1)).map((e) => e.kind)
    expect(kinds).toContain('case_closed')
  })

  it('a case whose window ends expires: reads refused, grants withdrawn, capture stopped', async () => {
    // Long enough for filing, notice, grants, a tcpdump start, a query and its upload on a
    // loaded machine (6 s ran out under load); the test then waits for the window's end.
    case2 = await fileCase(b.address, Date.now() + 12_000)
    const active = await giveNotice(case2)
    expect(active.state).toBe('active')
    case2End = Date.parse(active.window.end)
    ;({ access: grant2, agentGrant: agentGrant2 } = await afterNotice(case2))
    expect((await agentGrants()).map((g) => g.grant_id)).toEqual([agentGrant2])
    await waitFor('a tcpdump filtering on B', async () =>
      (await tcpdumpsFor(b.address)).length === 1 ? true : undefined,
    )
    expect(await tcpdumpsFor(a.address)).toEqual([])
    await sleep(300)
    await dig(b.ns, BRAVO_TWO)
    const seen = await waitFor(
      'B\u2019s name in case 2',
      async () => {
        const rows = await investigator.rows(case2, 'dns', grant2)
        return rows.some((r) => r.query === BRAVO_TWO) ? rows : undefined
      },
      Math.max(1_000, case2End - Date.now() - 300),
    )
    for (const row of seen) expect(row.client).toBe(b.address)

    await sleep(Math.max(0, case2End - Date.now()) + 200)
    for (const category of CATEGORIES) {
      const after = await investigator.raw(case2, category, grant2)
      expect([401, 403], `${category} after the window`).toContain(after.status)
    }
    expect((await getCase(case2)).state).toBe('expired')
    expect(await agentGrants()).toEqual([])
    expect((await investigator.accessGrant(case2)).status).toBe(409)
    const stopped = await waitFor(
      'the agent to stop B\u2019s capture',
      () => [...agentLogged(WITHDRAWN, agentGrant2), ...agentLogged(ENDED, agentGrant2)][0],
      5_000,
    )
    expect(
      boundariesBetween(case2End, Number(stopped.time)),
      'stopped within one interval of the window end',
    ).toBeLessThanOrEqual(1)
    await waitFor(
      'B\u2019s tcpdump to exit',
      async () => ((await tcpdumpsFor(b.address)).length === 0 ? true : undefined),
      2_000,
    )
    const entries = await registerEntries(url, people.auditor, case2)
    const expired = entries.find((e) => e.kind === 'case_expired')
    expect(expired?.actor).toBe('system')
    expect(entries.map((e) => e.kind)).toContain('tier_i_purged')
  })

  it('the register verifies with `tally register verify`', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        join(ROOT, 'bin', 'tally.ts'),
        'register',
        'verify',
        '--token',
        as('auditor'),
        '--collector',
        url,
        // The auditor's kept head belongs to this run, not to whoever runs the suite.
        '--state',
        join(dataDir, 'auditor-register-head.json'),
      ],
      { cwd: ROOT },
    )
    expect(stdout).not.toBe('')
  })

  it('once the collector is stopped, no tier I row of either case is in the store', async () => {
    expect(await agent.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    expect(await tcpdumpsFor(a.address)).toEqual([])
    expect(await tcpdumpsFor(b.address)).toEqual([])
    expect(await collector.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    const cases = `('${case1}', '${case2}')`
    const counts = await queryStore<{ name: string; n: number | string }>(
      dataDir,
      RESTRICTED_TABLES.map(
        (t) =>
          `SELECT '${t}' AS name, count() AS n FROM tally_restricted.${t} WHERE case_id IN ${cases}`,
      ).join(' UNION ALL '),
    )
    expect(Object.fromEntries(counts.map((row) => [row.name, Number(row.n)]))).toEqual(
      Object.fromEntries(RESTRICTED_TABLES.map((t) => [t, 0])),
    )
    const keys = await queryStore<{ case_id: string; live: number | string }>(
      dataDir,
      `SELECT case_id, countIf(key_ciphertext != '') AS live FROM tally.case_keys
       WHERE case_id IN ${cases} GROUP BY case_id`,
    )
    for (const key of keys) expect(Number(key.live), `${key.case_id}'s keys destroyed`).toBe(0)
  })
})
