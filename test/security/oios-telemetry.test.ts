/**
 * Attack 6, "OIOS shows outside OIOS": the unauthenticated /metrics and the table the ITSD
 * dashboards read (tally.collector_metrics) must not tell whether, or how often, OIOS opened a
 * case or drilled down.
 *
 * Replayed as the ITSD side would: the same work is done through two real collectors on one
 * engine, once on an OIOS case and once on an ITSD (technical) case: open the case, the agent's
 * grants poll and tier I ingest, the access grant, drill-downs, a refused drill-down. Then
 * /metrics and the rows each collector writes to tally.collector_metrics are compared: the same
 * series, labels and values, and no label naming OIOS. With the old labelling (route templates:
 * /v1/cases/oios against /v1/cases/technical) the comparison fails.
 *
 * And the cheap side channel: an ITSD role asking about an OIOS case gets exactly what it gets
 * for a case that does not exist.
 */
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCollector } from '../../collector/app.ts'
import { SelfMetrics } from '../../collector/self-metrics.ts'
import { selectRows } from '../../collector/store/rows.ts'
import { createTelemetry, type Telemetry } from '../../collector/telemetry.ts'
import type { RestrictedBatch } from '../../protocol/grants.ts'
import {
  type App,
  type CasesHarness,
  call,
  iso,
  openCasesHarness,
  postTierI,
  type TestAgent,
  type TestUser,
} from '../collector/cases-harness.ts'
import { parsePrometheusText } from '../collector/prometheus-text.ts'

const HOUR = 3_600_000

let h: CasesHarness
let lead: TestUser
let itsdInvestigator: TestUser
let oiosInvestigator: TestUser
let official: TestUser
let itsdAuditor: TestUser

interface Side {
  app: App
  telemetry: Telemetry
  instance: string
  /** Every line the side's collector logged, at debug level: what an admin reading logs sees. */
  log: string[]
}
const sides: Side[] = []

function side(instance: string): Side {
  // Its own provider, so its counters hold only the work below.
  const telemetry = createTelemetry()
  const log: string[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void log.push(line) })
  const { app } = createCollector({
    store: h.store,
    config: h.config,
    logger,
    signingKey: h.signingKey,
    telemetry,
  })
  const made = { app, telemetry, instance, log }
  sides.push(made)
  return made
}

const must = async <T>(answer: ReturnType<typeof call>, status: number, what: string) => {
  const a = await answer
  expect(a.status, `${what}: ${a.text}`).toBe(status)
  return a.body as T
}

/** What both kinds of case go through, step for step; `open` is the only step that differs. */
async function work(
  s: Side,
  agent: TestAgent,
  investigator: TestUser,
  open: () => ReturnType<typeof call>,
): Promise<string> {
  const opened = await must<{ case_id: string; state: string }>(open(), 201, 'open')
  expect(opened.state).toBe('active')
  const caseId = opened.case_id
  const { grants } = await must<{ grants: { grant_id: string }[] }>(
    call(s.app, 'GET', '/v1/agents/grants', agent.credential),
    200,
    'grants poll',
  )
  const grantId = grants[0]?.grant_id as string
  const t = Date.now() + 50
  const batch: RestrictedBatch = {
    version: 1,
    agent_id: agent.agent_id,
    grant_id: grantId,
    seq: 1,
    flows: [
      {
        start: t,
        end: t + 100,
        ip_version: 4,
        protocol: 6,
        src: '10.9.0.5',
        dst: '198.51.100.7',
        src_port: 50_123,
        dst_port: 443,
        bytes: 1_234,
        packets: 3,
        tcp_flags: 0x1b,
        community_id: '1:telemetry-test',
      },
    ],
    dns: [],
    web: [],
    pcap: [],
  }
  const res = await postTierI(s.app, agent.credential, batch)
  expect(res.status, await res.clone().text()).toBe(200)
  const { token } = await must<{ token: string }>(
    call(s.app, 'GET', `/v1/cases/${caseId}/access-grant`, investigator.token),
    200,
    'access grant',
  )
  for (let i = 0; i < 3; i++) {
    const drill = await s.app.request(`/v1/cases/${caseId}/flows`, {
      headers: { authorization: `Bearer ${investigator.token}`, 'x-tally-grant': token },
    })
    const body = (await drill.json()) as { count: number }
    expect(drill.status).toBe(200)
    expect(body.count).toBe(1)
  }
  // A drill-down without the grant is refused; it is counted like any refusal.
  const refused = await s.app.request(`/v1/cases/${caseId}/flows`, {
    headers: { authorization: `Bearer ${investigator.token}` },
  })
  expect(refused.status).toBe(401)
  return caseId
}

/** Every sample of /metrics but the resource's own line, as comparable text. */
async function scrape(s: Side): Promise<string[]> {
  return parsePrometheusText(await s.telemetry.prometheus())
    .filter((x) => x.name !== 'target_info')
    .map((x) => `${x.name}${JSON.stringify(x.labels)} ${x.value}`)
    .sort()
}

/** The rows a side wrote to tally.collector_metrics, without their time and instance. */
async function metricRows(s: Side): Promise<string[]> {
  const rows = await selectRows<{ metric: string; labels: Record<string, string>; value: number }>(
    h.store,
    `SELECT metric, labels, value FROM tally.collector_metrics WHERE instance = {i:String}`,
    { i: s.instance },
  )
  return rows.map((r) => `${r.metric}${JSON.stringify(r.labels)} ${Number(r.value)}`).sort()
}

beforeAll(async () => {
  h = await openCasesHarness()
  lead = await h.user(['itsd_lead'], 'lead')
  itsdInvestigator = await h.user(['itsd_investigator'], 'itsd investigator')
  oiosInvestigator = await h.user(['oios_investigator'], 'oios investigator')
  official = await h.user(['receiving_official'], 'official')
  itsdAuditor = await h.user(['auditor'], 'itsd auditor')
})

afterAll(async () => {
  for (const s of sides) await s.telemetry.shutdown()
  await h?.close()
})

describe('OIOS work leaves the same telemetry as ITSD work', () => {
  let oios: Side
  let itsd: Side
  let oiosCase: string

  beforeAll(async () => {
    oios = side('oios-side')
    itsd = side('itsd-side')
    const agentO = await h.agent('pc-oios-subject')
    const agentI = await h.agent('pc-itsd-subject')
    const now = Date.now()
    oiosCase = await work(oios, agentO, oiosInvestigator, () =>
      call(oios.app, 'POST', '/v1/cases/oios', oiosInvestigator.token, {
        description: 'an OIOS matter (test)',
        categories: ['flows'],
        subjects: [{ agent_id: agentO.agent_id, addresses: [] }],
        window: { start: iso(now - HOUR), end: iso(now + 6 * HOUR) },
        receiving_official: official.user_id,
      }),
    )
    await work(itsd, agentI, itsdInvestigator, () =>
      call(itsd.app, 'POST', '/v1/cases/technical', lead.token, {
        description: 'a disruption (test)',
        subjects: [{ agent_id: agentI.agent_id, addresses: [] }],
        investigator: itsdInvestigator.user_id,
        hours: 6,
        notify: [{ name: 'Delegation contact', email: 'contact@example.org' }],
      }),
    )
  })

  it('/metrics: the same series, labels and values, none naming OIOS', async () => {
    const [o, i] = [await scrape(oios), await scrape(itsd)]
    expect(o.some((line) => line.startsWith('tally_http_requests_total'))).toBe(true)
    expect(o).toEqual(i)
    expect(o.filter((line) => /oios|register|restricted|flows/i.test(line))).toEqual([])
  })

  it('the collector log: the same lines, none naming OIOS or its case', async () => {
    const shape = (s: Side) =>
      s.log.map((line) => {
        const { msg, route, status } = JSON.parse(line) as Record<string, unknown>
        return JSON.stringify({ msg, route, status })
      })
    expect(oios.log.length).toBeGreaterThan(0)
    expect(shape(oios)).toEqual(shape(itsd))
    expect(oios.log.filter((line) => /oios/i.test(line) || line.includes(oiosCase))).toEqual([])
  })

  it('tally.collector_metrics: the same rows, none naming OIOS', async () => {
    for (const s of [oios, itsd]) {
      const metrics = new SelfMetrics({
        store: h.store,
        telemetry: s.telemetry,
        instance: s.instance,
      })
      expect(await metrics.snapshot()).toBeGreaterThan(0)
    }
    const [o, i] = [await metricRows(oios), await metricRows(itsd)]
    expect(o.some((row) => row.startsWith('http.requests'))).toBe(true)
    expect(o).toEqual(i)
    expect(o.filter((row) => /oios/i.test(row))).toEqual([])
  })

  it('an ITSD role asking about the OIOS case gets what a case that does not exist gets', async () => {
    const unknown = 'c-0000000000000000'
    const ask = async (id: string, path: string, headers: Record<string, string> = {}) => {
      const res = await itsd.app.request(`/v1/cases/${id}${path}`, {
        headers: { authorization: `Bearer ${itsdAuditor.token}`, ...headers },
      })
      return { status: res.status, text: (await res.text()).replaceAll(id, '<id>') }
    }
    for (const path of ['', '/access-grant', '/flows']) {
      expect(await ask(oiosCase, path), path).toEqual(await ask(unknown, path))
    }
    const asInvestigator = async (id: string) => {
      const res = await itsd.app.request(`/v1/cases/${id}/flows`, {
        headers: { authorization: `Bearer ${itsdInvestigator.token}`, 'x-tally-grant': 'x.y.z' },
      })
      return { status: res.status, text: (await res.text()).replaceAll(id, '<id>') }
    }
    expect(await asInvestigator(oiosCase)).toEqual(await asInvestigator(unknown))
    const register = await call(itsd.app, 'GET', '/v1/register/oios/entries', itsdAuditor.token)
    const nowhere = await call(itsd.app, 'GET', '/v1/no-such-route', itsdAuditor.token)
    expect(register.status).toBe(404)
    expect(register.text.replace('/v1/register/oios/entries', '<p>')).toBe(
      nowhere.text.replace('/v1/no-such-route', '<p>'),
    )
  })
})
