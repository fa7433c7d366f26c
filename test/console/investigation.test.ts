/**
 * The investigator's and the receiving official's pages in real Chromium against a real
 * collector (embedded engine), on a case made active through the API and tier I records posted
 * as its agent would: the grant's window and scope, drill-down filters and paging, the
 * collector's refusal of a filter outside the grant, no tier I value in the address bar or the
 * browser's storage, an OIOS case that does not exist for an ITSD user, and a digest mismatch
 * shown when a file of the bundle is altered on its way (page.route). Screenshots go to
 * test-artifacts/console/.
 */
import { randomBytes } from 'node:crypto'
import type { Page } from 'playwright-core'
import { beforeAll, expect, it } from 'vitest'
import type { TestAgent, TestUser } from '../collector/cases-harness.ts'
import { eventually, shot } from './browser.ts'
import {
  activateThroughApi,
  bearer as bearerAt,
  describeInChromium,
  EVERYONE,
  people,
  useConsoleRig,
} from './harness.ts'
import { captureGrant, flow, ingest } from './tier-i.ts'

const hour = 3600_000
const SUBJECT = '192.0.2.10'
const SECOND_SUBJECT = '192.0.2.11'
/** A DNS name only the drill-down may show: tier I, looked for in URLs and storage. */
const SECRET_NAME = `q${randomBytes(6).toString('hex')}.example.org`

interface Entry {
  kind: string
  actor: string
  details: Record<string, unknown>
}

describeInChromium('console investigation and receipt in Chromium', () => {
  const rig = useConsoleRig({ browser: true })
  let approver: TestUser
  let investigator: TestUser
  let official: TestUser
  let agent: TestAgent
  let caseId: string

  const bearer = (user: TestUser, method: string, path: string, body?: unknown) =>
    bearerAt(rig.url, user, method, path, body)
  const entries = async (kind: string): Promise<Entry[]> => {
    const answer = await bearer(
      approver,
      'GET',
      `/v1/register/itsd/entries?case_id=${caseId}&limit=1000`,
    )
    expect(answer.status, answer.text).toBe(200)
    return (answer.body as { entries: Entry[] }).entries.filter((e) => e.kind === kind)
  }

  beforeAll(async () => {
    const cast = await people(rig.h, ...EVERYONE)
    const { requester, chief } = cast
    ;({ approver, investigator, official } = cast)
    agent = await rig.h.agent()
    // An active case through the API (the whole-case test takes these steps in the browser).
    const filed = await bearer(requester, 'POST', '/v1/cases', {
      data_required: 'Flows, DNS and sites of the workstation',
      categories: ['flows', 'dns', 'web'],
      staff_member: { name: 'Jane Doe' },
      supervisor: { name: 'John Roe' },
      receiving_official: official.user_id,
      requesting_office: 'OHRM',
      justification: 'Referral 2026/21',
      subjects: [{ agent_id: agent.agent_id, addresses: [SUBJECT, SECOND_SUBJECT] }],
      window: {
        start: new Date(Date.now() - hour).toISOString(),
        end: new Date(Date.now() + 6 * hour).toISOString(),
      },
    })
    expect(filed.status, filed.text).toBe(201)
    caseId = (filed.body as { case_id: string }).case_id
    // The notice's time is taken when it is sent: not before the approval.
    await activateThroughApi(rig.url, caseId, { chief, approver, investigator })
    // 60 flows one second apart: 20 to 443/tcp, 20 to 53/udp, 20 to 80/tcp; the last 10 from
    // the second address. Three DNS answers, one web record.
    const grant = await captureGrant(rig.h.app, agent, caseId)
    const t0 = grant.window.start + 1000
    const flows = Array.from({ length: 60 }, (_, i) =>
      flow(
        t0 + i * 1000,
        i < 50 ? SUBJECT : SECOND_SUBJECT,
        `203.0.113.${i + 1}`,
        [443, 53, 80][i % 3] ?? 443,
        i % 3 === 1 ? 17 : 6,
      ),
    )
    const dns = [0, 1, 2].map((i) => ({
      ts: t0 + i * 1000,
      client: SUBJECT,
      server: '198.51.100.53',
      query: i === 0 ? SECRET_NAME : `other${i}.example.org`,
      qtype: 'A',
      rcode: 'NOERROR',
    }))
    const web = [
      {
        ts: t0,
        client: SUBJECT,
        server: '203.0.113.1',
        server_port: 443,
        kind: 'tls-sni' as const,
        name: SECRET_NAME,
      },
    ]
    await ingest(rig.h.app, agent, grant, 1, { flows, dns, web })
  })
  /** Clicks a button of the drill-down and waits for its answer to be shown. */
  const press = async (page: Page, name: string) => {
    await page.getByRole('button', { name }).click()
    await eventually(() => page.locator('#drill-results').getAttribute('aria-busy')).toBe('false')
  }
  const caption = (page: Page) => page.locator('#drill-results caption').textContent()
  const column = (page: Page, n: number) =>
    page.locator(`#drill-results tbody tr td:nth-child(${n})`).allTextContents()
  const openInvestigation = async () => {
    const session = await rig.as(investigator)
    await session.page.getByRole('link', { name: 'Investigations' }).click()
    await session.page.getByRole('link', { name: caseId }).click()
    await session.page.getByRole('button', { name: 'Show records' }).waitFor()
    return session
  }

  it("shows the grant's window and scope, pages the flows and narrows them with the API's filters, each call registered", async () => {
    const before = (await entries('drilldown')).length
    const { context, page } = await openInvestigation()
    const scope = (await page.locator('section[aria-labelledby=scope-title]').textContent()) ?? ''
    expect(scope).toContain('flows, dns, web')
    expect(scope).toContain(SUBJECT)
    expect(scope).toContain('Grant window')
    await page.getByLabel('Rows per page').selectOption('25')
    await press(page, 'Show records')
    await eventually(() => caption(page)).toBe('flows records 1–25 (page 1)')
    expect(await page.locator('#drill-results tbody tr').count()).toBe(25)
    // Table headers a screen reader reads with each cell; the result said in the live region.
    expect(await page.locator('#drill-results th[scope=col]').count()).toBe(10)
    await eventually(() => page.getByRole('status').textContent()).toContain('flows records 1–25')
    await press(page, 'Next page')
    await eventually(() => caption(page)).toBe('flows records 26–50 (page 2)')
    await press(page, 'Next page')
    await eventually(() => caption(page)).toBe('flows records 51–60 (page 3)')
    expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true)
    expect(await column(page, 5)).toEqual(Array(10).fill(SECOND_SUBJECT))
    await shot(page, '20-investigation-flows-page-3')
    await press(page, 'Previous page')
    await eventually(() => caption(page)).toBe('flows records 26–50 (page 2)')
    // Filters: the port, the protocol, one of the subject's addresses.
    await page.getByLabel('Port', { exact: true }).fill('443')
    await press(page, 'Show records')
    await eventually(() => caption(page)).toBe('flows records 1–20 (page 1)')
    expect(new Set(await column(page, 8))).toEqual(new Set(['443']))
    await page.getByLabel('Port', { exact: true }).fill('')
    await page.getByLabel('Protocol').fill('udp')
    await press(page, 'Show records')
    await eventually(() => caption(page)).toBe('flows records 1–20 (page 1)')
    expect(new Set(await column(page, 4))).toEqual(new Set(['UDP']))
    await page.getByLabel('Protocol').fill('')
    await page.getByLabel('Subject address').fill(SECOND_SUBJECT)
    await press(page, 'Show records')
    await eventually(() => caption(page)).toBe('flows records 1–10 (page 1)')
    await page.getByLabel('Subject address').fill('')
    await page.getByLabel('Records').selectOption('dns')
    // DNS takes no port: the field goes, and is not sent.
    expect(await page.getByLabel('Port', { exact: true }).isVisible()).toBe(false)
    await press(page, 'Show records')
    await eventually(() => caption(page)).toBe('dns records 1–3 (page 1)')
    expect(await column(page, 5)).toContain(SECRET_NAME)
    await shot(page, '21-investigation-dns')
    // Every field labelled, every help bound.
    const unlabelled = await page.evaluate(
      `[...document.querySelectorAll('#view input, #view select')].filter((e) => e.labels.length === 0).map((e) => e.id)`,
    )
    expect(unlabelled).toEqual([])
    // Each page and each filter was one registered call: 8 calls, their narrowing on record.
    const calls = (await entries('drilldown')).slice(before)
    expect(calls.map((e) => e.actor)).toEqual(Array(8).fill(investigator.user_id))
    expect(calls.map((e) => (e.details.params as { limit: number }).limit)).toEqual([
      25, 50, 75, 50, 25, 25, 25, 25,
    ])
    const params = calls.map((e) => e.details.params as { port?: number; address?: string })
    expect(params[4]?.port).toBe(443)
    expect(params[6]?.address).toBe(SECOND_SUBJECT)
    await context.close()
  })

  it("shows the collector's refusal of a filter outside the grant, and the refusal is registered", async () => {
    const before = (await entries('drilldown_refused')).length
    const { context, page } = await openInvestigation()
    // A day before the grant's window: the API refuses (403 outside_scope), the page says why.
    const dayBefore = new Date(Date.now() - 24 * hour)
    const local = new Date(dayBefore.getTime() - dayBefore.getTimezoneOffset() * 60_000)
      .toISOString()
      .slice(0, 19)
    await page.getByLabel('From').fill(local)
    await press(page, 'Show records')
    await eventually(() => page.locator('#alert').textContent()).toContain('Refused')
    expect(await page.locator('#alert').textContent()).toContain("grant's window")
    expect(await page.locator('#drill-results').textContent()).toContain('refused')
    expect(await page.locator('#drill-results table').count()).toBe(0)
    expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true)
    await shot(page, '22-investigation-outside-scope')
    // An address the grant does not name.
    await page.getByLabel('From').fill('')
    await page.getByLabel('Subject address').fill('198.51.100.7')
    await press(page, 'Show records')
    await eventually(() => page.locator('#alert').textContent()).toContain(
      "not one of the subject's addresses",
    )
    const refused = (await entries('drilldown_refused')).slice(before)
    expect(refused.map((e) => e.details.reason)).toEqual(['outside_scope', 'outside_scope'])
    await context.close()
  })

  it("keeps tier I values out of the address bar, the browser's storage and the page once left", async () => {
    const { context, page } = await openInvestigation()
    await page.getByLabel('Records').selectOption('web')
    await page.getByLabel('Subject address').fill(SUBJECT)
    await page.getByLabel('Port', { exact: true }).fill('443')
    await press(page, 'Show records')
    await eventually(() => caption(page)).toBe('web records 1–1 (page 1)')
    expect(await page.content()).toContain(SECRET_NAME)
    // The address bar holds the page and the case, nothing of the query or its answer.
    expect(page.url()).toBe(`${rig.url}/console/#/investigate/${caseId}`)
    const stored = {
      local: await page.evaluate('JSON.stringify({ ...localStorage })'),
      session: await page.evaluate('JSON.stringify({ ...sessionStorage })'),
      cookie: await page.evaluate('document.cookie'),
      caches: await page.evaluate('caches.keys().then((k) => JSON.stringify(k))'),
      indexedDb: await page.evaluate(
        'indexedDB.databases().then((d) => JSON.stringify(d.map((x) => x.name)))',
      ),
    }
    expect(stored).toEqual({
      local: '{}',
      session: '{}',
      cookie: '',
      caches: '[]',
      indexedDb: '[]',
    })
    // The filter form is not remembered by the browser's autofill.
    expect(await page.locator('#drill-address').getAttribute('autocomplete')).toBe('off')
    expect(
      await page
        .locator('#drill-results')
        .locator('..')
        .locator('form')
        .getAttribute('autocomplete'),
    ).toBe('off')
    // Leaving the page leaves nothing of the answer in the document.
    await page.getByRole('link', { name: 'Overview' }).click()
    await eventually(() => page.getByRole('heading', { level: 1 }).textContent()).not.toContain(
      'Investigation',
    )
    expect(await page.content()).not.toContain(SECRET_NAME)
    expect(page.url()).not.toContain(SECRET_NAME)
    await context.close()
  })

  it("an ITSD user cannot open an OIOS case's pages: not found, as the API answers", async () => {
    const oios = await rig.h.user(['oios_investigator'], 'Otto OIOS')
    const description = `OIOS matter ${randomBytes(4).toString('hex')}`
    const opened = await bearer(oios, 'POST', '/v1/cases/oios', {
      description,
      categories: ['flows'],
      subjects: [{ agent_id: agent.agent_id, addresses: [] }],
      window: {
        start: new Date().toISOString(),
        end: new Date(Date.now() + 2 * hour).toISOString(),
      },
      receiving_official: official.user_id,
    })
    expect(opened.status, opened.text).toBe(201)
    const oiosCase = (opened.body as { case_id: string }).case_id
    const api = await bearer(investigator, 'GET', `/v1/cases/${oiosCase}`)
    expect(api.status).toBe(404)
    const { context, page } = await rig.as(investigator)
    for (const path of [`investigate/${oiosCase}`, `case/${oiosCase}`]) {
      await page.goto(`${rig.url}/console/#/${path}`)
      await eventually(() => page.locator('#view [role=alert]').textContent()).toBe(
        (api.body as { message: string }).message,
      )
      expect(await page.content()).not.toContain(description)
    }
    await shot(page, '23-oios-case-not-found-for-itsd')
    // The OIOS investigator sees it, and its drill-down.
    const own = await rig.as(oios)
    await own.page.goto(`${rig.url}/console/#/investigate/${oiosCase}`)
    await eventually(() => own.page.locator('section[aria-labelledby=scope-title]').count()).toBe(1)
    await own.context.close()
    await context.close()
  })

  it('shows the receiving official a digest mismatch when a file of the bundle is altered on its way, and offers no receipt', async () => {
    const { context, page } = await openInvestigation()
    await page.getByRole('button', { name: 'Make an export bundle' }).click()
    await eventually(() => page.locator('#export-id').count()).toBe(1)
    const exportId = (await page.locator('#export-id').textContent()) ?? ''
    const manifestSha256 = (await page.locator('#export-manifest-sha256').textContent()) ?? ''
    expect(exportId).toMatch(/^x-[0-9a-f]{16}$/)
    await shot(page, '24-investigation-export')
    await context.close()

    const receiving = await rig.as(official)
    const rp = receiving.page
    // One byte of flows.csv changed between the collector and the page.
    await rp.route(`**/v1/cases/${caseId}/exports/${exportId}/files/flows.csv`, async (route) => {
      const original = await route.fetch()
      const body = Buffer.from(await original.body())
      body[body.length - 2] = body[body.length - 2] === 0x31 ? 0x32 : 0x31
      await route.fulfill({ response: original, body })
    })
    // The official picks the bundle from the case's list, not from an id told out of band.
    await rp.goto(`${rig.url}/console/#/receive/${caseId}`)
    await rp.getByRole('button', { name: `Pick ${exportId}` }).click()
    expect(await rp.getByLabel('Export id').inputValue()).toBe(exportId)
    await rp.getByRole('button', { name: 'Download and check' }).click()
    await eventually(() => rp.locator('#receive-verdict').textContent()).toContain(
      'Digest mismatch: flows.csv does not match',
    )
    expect(await rp.locator('#alert').textContent()).toContain('does not match')
    expect(await rp.getByRole('button', { name: 'Sign the receipt' }).count()).toBe(0)
    await shot(rp, '25-receive-digest-mismatch')
    // The bytes as served, but a manifest digest other than the investigator's.
    await rp.unroute(`**/v1/cases/${caseId}/exports/${exportId}/files/flows.csv`)
    await rp.getByLabel('Manifest digest from the investigator (optional)').fill('0'.repeat(64))
    await rp.getByRole('button', { name: 'Download and check' }).click()
    await eventually(() => rp.locator('#receive-verdict').textContent()).toContain(
      'Digest mismatch: manifest.json does not match',
    )
    expect(await rp.getByRole('button', { name: 'Sign the receipt' }).count()).toBe(0)
    // The investigator's digest: every file verified, the receipt offered.
    await rp.getByLabel('Manifest digest from the investigator (optional)').fill(manifestSha256)
    await rp.getByRole('button', { name: 'Download and check' }).click()
    await eventually(() => rp.locator('#receive-verdict').textContent()).toContain('Verified')
    expect(await rp.getByRole('button', { name: 'Sign the receipt' }).count()).toBe(1)
    expect(await rp.locator('#receive-digests th[scope=row]').allTextContents()).toContain(
      'flows.csv',
    )
    // The case is not received yet: nothing was purged by checking.
    expect((await rig.h.collector.cases.current(caseId))?.purged_at).toBeUndefined()
    await receiving.context.close()
  })
})
