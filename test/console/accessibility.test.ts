/**
 * Every console page checked against WCAG 2.1 A/AA by axe-core, the standard rules engine, run
 * inside the page in real Chromium (its file from node_modules; nothing downloaded): sign-in,
 * overview, the four request forms (also with their validation errors shown), the approvals
 * queue, the case page, the investigation with a table of records, the receipt with its digest
 * result and the verified register. A violation of impact serious or critical fails the test with
 * its rule, target and help. Then a keyboard-only walk from sign-in to a filed written request
 * (Tab, Shift+Tab, Enter, Space and typing; no click) with a visible focus outline on each control.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Page } from 'playwright-core'
import { beforeAll, expect, it } from 'vitest'
import type { TestAgent, TestUser } from '../collector/cases-harness.ts'
import { eventually, shot } from './browser.ts'
import {
  activateThroughApi,
  bearer,
  describeInChromium,
  EVERYONE,
  people,
  useConsoleRig,
} from './harness.ts'
import { captureGrant, flow, ingest } from './tier-i.ts'

const hour = 3600_000
const SUBJECT = '192.0.2.20'

/**
 * axe-core's own browser build. The console's CSP (script-src 'self') refuses the inline script
 * playwright's addScriptTag({ path }) would add, so the source is evaluated through the DevTools
 * protocol instead, which the page's CSP does not govern: the page keeps its real CSP under test.
 */
const AXE_SOURCE = readFileSync(
  createRequire(import.meta.url).resolve('axe-core/axe.min.js'),
  'utf8',
)

const WCAG_A_AA = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']

interface Violation {
  id: string
  impact: string | null
  help: string
  targets: string[]
}

/** axe's serious and critical WCAG 2.1 A/AA violations on the page as it stands. */
async function violations(page: Page): Promise<Violation[]> {
  if (!(await page.evaluate('typeof window.axe === "object"'))) await page.evaluate(AXE_SOURCE)
  // A string, run in the page (the project's TypeScript has no DOM types).
  return page.evaluate<Violation[]>(`(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ${JSON.stringify(WCAG_A_AA)} },
    })
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        targets: v.nodes.map((n) => n.target.join(' ')),
      }))
  })()`)
}

/** Fails with every serious or critical violation of the page, one line each. */
async function expectAccessible(page: Page, name: string): Promise<void> {
  const found = await violations(page)
  const lines = found.map((v) => `${v.impact} ${v.id} at ${v.targets.join(', ')}: ${v.help}`)
  expect(lines, `axe on ${name}`).toEqual([])
}

describeInChromium(
  'console accessibility: axe-core on every page, and a keyboard-only walk',
  () => {
    const rig = useConsoleRig({ browser: true })
    let requester: TestUser
    let approver: TestUser
    let chief: TestUser
    let investigator: TestUser
    let official: TestUser
    let lead: TestUser
    let oios: TestUser
    let auditor: TestUser
    let agent: TestAgent
    let queuedCase: string
    let activeCase: string

    const api = (who: TestUser, method: string, path: string, body?: unknown) =>
      bearer(rig.url, who, method, path, body)
    const writtenRequest = () => ({
      data_required: 'Flows and DNS names of the workstation',
      categories: ['flows', 'dns'],
      staff_member: { name: 'Jane Doe' },
      supervisor: { name: 'John Roe' },
      receiving_official: official.user_id,
      requesting_office: 'OHRM',
      justification: 'Referral 2026/40',
      subjects: [{ agent_id: agent.agent_id, addresses: [SUBJECT] }],
      window: {
        start: new Date(Date.now() - hour).toISOString(),
        end: new Date(Date.now() + 6 * hour).toISOString(),
      },
    })
    const file = async () => {
      const filed = await api(requester, 'POST', '/v1/cases', writtenRequest())
      expect(filed.status, filed.text).toBe(201)
      return (filed.body as { case_id: string }).case_id
    }

    beforeAll(async () => {
      ;({ requester, approver, chief, investigator, official } = await people(rig.h, ...EVERYONE))
      lead = await rig.h.user(['itsd_lead'], 'Lena Lead')
      oios = await rig.h.user(['oios_investigator'], 'Otto OIOS')
      auditor = await rig.h.user(['auditor'], 'Aude Auditor')
      agent = await rig.h.agent()
      // One case waiting in the approvals queue, one active with tier I records (through the API:
      // the whole-case test takes these steps in the browser).
      queuedCase = await file()
      activeCase = await file()
      await activateThroughApi(rig.url, activeCase, { chief, approver, investigator })
      const grant = await captureGrant(rig.h.app, agent, activeCase)
      const t0 = grant.window.start + 1000
      await ingest(rig.h.app, agent, grant, 1, {
        flows: [0, 1, 2, 3].map((i) => flow(t0 + i * 1000, SUBJECT, `203.0.113.${i + 1}`, 443)),
      })
    })

    const heading = (page: Page) => page.getByRole('heading', { level: 1 }).textContent()

    it('sign-in and overview have no serious or critical WCAG 2.1 A/AA violation', async () => {
      const context = await rig.browser.newContext()
      context.setDefaultTimeout(15_000)
      const page = await context.newPage()
      await page.goto(`${rig.url}/console/`)
      await page.getByLabel('User token').waitFor()
      await expectAccessible(page, 'sign-in')
      // The engine does run here and can fail the test: a field without a label, grey on grey.
      await page.evaluate(`{
        const bad = document.createElement('p')
        bad.style.cssText = 'color:#aaa;background:#bbb'
        bad.append('faint text', document.createElement('input'))
        document.getElementById('sign-in').append(bad)
      }`)
      expect((await violations(page)).map((v) => v.id).sort()).toEqual(['color-contrast', 'label'])
      await context.close()
      const session = await rig.as(requester)
      await eventually(() => heading(session.page)).toBeTruthy()
      await expectAccessible(session.page, 'overview')
      await session.context.close()
    })

    it('the four request forms, blank and with their validation errors shown, have none', async () => {
      const forms = [
        { who: requester, link: 'Written request', kind: 'written' },
        { who: approver, link: 'Emergency (verbal) request', kind: 'emergency' },
        { who: lead, link: 'Technical case', kind: 'technical' },
        { who: oios, link: 'OIOS case', kind: 'oios' },
      ] as const
      for (const form of forms) {
        const { context, page } = await rig.as(form.who)
        await page.getByRole('link', { name: form.link }).click()
        await page.getByRole('button', { name: 'Check and send' }).waitFor()
        await expectAccessible(page, `${form.kind} form`)
        await page.getByRole('button', { name: 'Check and send' }).click()
        await eventually(() => page.locator('#alert').textContent()).toContain('problem')
        expect(await page.locator('[aria-invalid=true]').count()).toBeGreaterThan(0)
        await expectAccessible(page, `${form.kind} form with its errors`)
        await shot(page, `50-accessibility-${form.kind}-errors`)
        await context.close()
      }
    })

    it('the approvals queue and the case page have none', async () => {
      const { context, page } = await rig.as(approver)
      await page.getByRole('link', { name: 'Approvals queue' }).click()
      await page.getByRole('link', { name: queuedCase }).waitFor()
      await expectAccessible(page, 'approvals queue')
      await page.getByRole('link', { name: queuedCase }).click()
      await eventually(() => heading(page)).toBe(`Case ${queuedCase}`)
      await page.getByRole('button', { name: 'Approve' }).waitFor()
      await expectAccessible(page, 'case page')
      await context.close()
    })

    it('the investigation with a table of records, and the receipt with its digest result, have none', async () => {
      const investigating = await rig.as(investigator)
      const iv = investigating.page
      await iv.getByRole('link', { name: 'Investigations' }).click()
      await iv.getByRole('link', { name: activeCase }).click()
      await iv.getByRole('button', { name: 'Show records' }).click()
      await eventually(() => iv.locator('#drill-results caption').textContent()).toContain(
        'flows records 1–4',
      )
      await expectAccessible(iv, 'investigation with its records')
      await iv.getByRole('button', { name: 'Make an export bundle' }).click()
      await eventually(() => iv.locator('#export-id').count()).toBe(1)
      await expectAccessible(iv, 'investigation with its export')
      const exportId = (await iv.locator('#export-id').textContent()) ?? ''
      await investigating.context.close()

      const receiving = await rig.as(official)
      const ro = receiving.page
      await ro.getByRole('link', { name: 'Receive bundles' }).click()
      await ro.getByRole('link', { name: activeCase }).click()
      await ro.getByLabel('Export id').fill(exportId)
      await expectAccessible(ro, 'receive')
      await ro.getByRole('button', { name: 'Download and check' }).click()
      await eventually(() => ro.locator('#receive-verdict').textContent()).toContain('Verified')
      await expectAccessible(ro, 'receive with its digests')
      await receiving.context.close()
    })

    it('the register, verified, has none', async () => {
      const { context, page } = await rig.as(auditor)
      await page.goto(`${rig.url}/console/#/register`)
      await eventually(() => page.locator('#verdict').textContent()).toContain('Verified')
      await expectAccessible(page, 'register verified')
      await context.close()
    })

    it('a keyboard alone signs in and files a written request, the focus visible on every control', async () => {
      const context = await rig.browser.newContext()
      context.setDefaultTimeout(15_000)
      const page = await context.newPage()
      await page.goto(`${rig.url}/console/`)
      interface Focus {
        id: string
        tag: string
        text: string
        outline: string
        outlined: boolean
      }
      const focused = () =>
        page.evaluate<Focus | undefined>(`(() => {
          const el = document.activeElement
          if (el === null || el === document.body) return undefined
          const style = getComputedStyle(el)
          return {
            id: el.id,
            tag: el.tagName.toLowerCase(),
            text: (el.textContent ?? '').trim(),
            outline: style.outlineStyle + ' ' + style.outlineWidth,
            outlined: style.outlineStyle !== 'none' && Number.parseFloat(style.outlineWidth) >= 2,
          }
        })()`)
      /** Tab (or Shift+Tab) once; the control reached must show its focus. */
      const tab = async (back = false): Promise<Focus> => {
        await page.keyboard.press(back ? 'Shift+Tab' : 'Tab')
        const now = await focused()
        if (now === undefined) throw new Error('Tab left the focus nowhere')
        expect(
          now.outlined,
          `focus outline on ${now.tag}#${now.id} "${now.text}" (${now.outline})`,
        ).toBe(true)
        return now
      }
      /** Tabs until `reached` says so; at most `limit` presses, so a trap fails by name. */
      const tabTo = async (
        what: string,
        reached: (f: Focus) => boolean | Promise<boolean>,
        limit = 60,
      ) => {
        for (let i = 0; i < limit; i += 1) {
          const now = await tab()
          if (await reached(now)) return now
        }
        throw new Error(`${limit} Tabs did not reach ${what}`)
      }

      // Sign-in: the token field has the focus on arrival, and is outlined when tabbed back to.
      await eventually(async () => (await focused())?.id).toBe('token')
      await page.keyboard.type(requester.token)
      await tab()
      await tab(true)
      expect((await focused())?.id).toBe('token')
      await page.keyboard.press('Enter')
      await eventually(() => page.locator('#nav').isVisible()).toBe(true)
      // The router moves the focus to the page once it is drawn: Tab from there.
      await eventually(async () => (await focused())?.id).toBe('main')

      // To the written request form through the navigation.
      await tabTo('the Written request link', (f) => f.tag === 'a' && f.text === 'Written request')
      await page.keyboard.press('Enter')
      await page.getByRole('button', { name: 'Check and send' }).waitFor()
      await eventually(async () => (await focused())?.id).toBe('main')

      // Through the form: type into each field reached, Space on the checkboxes, Enter to send.
      const typed: Record<string, string> = {
        data_required: 'Network flows of the workstation',
        'staff_member-name': 'Jane Doe',
        'supervisor-name': 'John Roe',
        receiving_official: official.user_id,
        requesting_office: 'OHRM',
        justification: 'Referral 2026/41',
        'subject-0-agent': agent.agent_id,
      }
      const toCheck = new Set(['cat-flows', 'cat-dns'])
      await tabTo(
        'the Check and send button',
        async (now) => {
          const text = typed[now.id]
          if (text !== undefined) await page.keyboard.type(text)
          if (toCheck.has(now.id)) await page.keyboard.press('Space')
          return now.tag === 'button' && now.text === 'Check and send'
        },
        120,
      )
      await page.keyboard.press('Enter')
      await eventually(
        async () =>
          `${await page.locator('#result').textContent()} ${await page.locator('#alert').textContent()}`,
      ).toMatch(/is on record/)
      const caseId =
        ((await page.locator('#result').textContent()) ?? '').match(
          /Case (\S+) is on record/,
        )?.[1] ?? ''
      const filed = await rig.h.collector.cases.current(caseId)
      expect(filed?.categories).toEqual(['flows', 'dns'])
      expect(filed?.subjects[0]?.agent_id).toBe(agent.agent_id)
      await shot(page, '51-accessibility-keyboard-filed')
      await context.close()
    }, 120_000)
  },
)
