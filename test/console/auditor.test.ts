/**
 * The auditor's register page in real Chromium, against a collector on a loopback port and
 * `tally register verify` run as a real process on the same collector: the page verifies a real
 * register in the browser (WebCrypto: SHA-256 chain, RFC 6962 roots, Ed25519), and after the
 * store is tampered with as the holder of the data directory could (an entry altered, one
 * deleted, the tail rolled back), it names exactly the problems the CLI names. An ITSD auditor
 * is offered no OIOS register and the page discloses nothing of it.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { tally } from '../cli/run-tally.ts'
import type { TestUser } from '../collector/cases-harness.ts'
import { eventually, shot } from './browser.ts'
import { describeInChromium, people, useConsoleRig } from './harness.ts'

interface Problem {
  seq: number
  kind: string
  message: string
}

describeInChromium("auditor's register page in Chromium", () => {
  const rig = useConsoleRig({ browser: true })
  let auditor: TestUser
  let chief: TestUser
  let stateDir: string
  let page: Page

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'tally-auditor-state-'))
    auditor = await rig.h.user(['auditor'], 'Audrey Auditor')
    ;({ chief } = await people(rig.h, 'chief'))
    // A few more entries in ITSD's register, each append batch under its own signed checkpoint.
    for (let i = 0; i < 6; i++) {
      await rig.h.collector.register.append({
        register: 'itsd',
        kind: 'test.note',
        actor: auditor.user_id,
        details: { note: `entry ${i}`, n: i },
      })
    }
  })
  afterAll(async () => {
    if (stateDir) await rm(stateDir, { recursive: true, force: true })
  })

  /** `tally register verify` as the auditor runs it, with its own kept head (--state). */
  const cliVerify = async (register = 'itsd') => {
    const run = await tally(
      [
        'register',
        'verify',
        '--register',
        register,
        '--collector',
        rig.url,
        '--state',
        join(stateDir, `${register}.json`),
        '--json',
      ],
      { TALLY_TOKEN: auditor.token },
    )
    expect(run.stdout, run.stderr).toMatch(/^\{/)
    const report = JSON.parse(run.stdout) as {
      ok: boolean
      size: number
      root: string
      entries: number
      checkpoints: number
      problems: Problem[]
    }
    return { code: run.code, report }
  }

  /** Opens (or re-runs) the page's verification and reads its verdict and problems. */
  const pageVerify = async (register = 'itsd') => {
    if (page.url().endsWith(`#/register/${register}`)) {
      await page.getByRole('button', { name: 'Verify again' }).click()
    } else {
      await page.goto(`${rig.url}/console/#/register/${register}`)
    }
    await eventually(() => page.locator('#verdict').count()).toBe(1)
    const ok = (await page.locator('#verdict').getAttribute('data-ok')) === 'true'
    const summary = (await page.locator('#summary').textContent()) ?? ''
    const rows = JSON.parse(
      String(
        await page.evaluate(
          `JSON.stringify([...document.querySelectorAll('#problems tbody tr')].map((r) => [...r.cells].map((c) => c.textContent)))`,
        ),
      ),
    ) as string[][]
    const problems = rows.map(([seq, kind, message]) => ({
      seq: Number(seq),
      kind: String(kind),
      message: String(message),
    }))
    return { ok, summary, problems }
  }

  const mutate = (sql: string) =>
    rig.h.store.command({ query: `${sql} SETTINGS mutations_sync = 2` })

  it('says verified on a real register, with the same entries, checkpoints and root as `tally register verify`', async () => {
    // One auditor's browser for the whole file: the head it keeps carries from test to test.
    page = (await rig.as(auditor)).page
    await page.setViewportSize({ width: 1100, height: 760 })
    const seen = await pageVerify()
    expect(seen.ok, JSON.stringify(seen.problems)).toBe(true)
    await eventually(() => page.locator('#verdict').textContent()).toContain('Verified')
    const cli = await cliVerify()
    expect(cli.code).toBe(0)
    expect(cli.report.ok).toBe(true)
    expect(seen.summary).toBe(
      `register itsd: ${cli.report.entries} entries, ${cli.report.checkpoints} checkpoints, ` +
        `root ${cli.report.root.slice(0, 16)}…: OK`,
    )
    // The entries are listed (paged) with their checkpoints.
    await eventually(() => page.locator('#entries tbody tr').first().textContent()).toContain('1')
    expect(await page.locator('#checkpoints tbody tr').count()).toBeGreaterThan(5)
    // The browser keeps the head it verified (public data only), as the CLI keeps its own.
    const kept = JSON.parse(
      String(await page.evaluate('JSON.stringify({ ...localStorage })')),
    ) as Record<string, string>
    const head = JSON.parse(kept[`tally.register-head.${auditor.user_id}.itsd`] ?? '{}')
    expect(head.head.size).toBe(cli.report.size)
    expect(Object.keys(head).sort()).toEqual(
      ['collector', 'head', 'key_id', 'register', 'verified_at', 'version'].sort(),
    )
    expect(JSON.stringify(kept)).not.toContain(auditor.token.slice(6))
    await shot(page, 'register-verified')
    // The README's picture, refreshed on demand only (a test run leaves the tree as it was).
    if (process.env.TALLY_UPDATE_SCREENSHOTS === '1')
      await page.screenshot({ path: join(import.meta.dirname, '../../docs/images/console.png') })
  })

  it('an ITSD auditor is offered no OIOS register, and the page and the API disclose none', async () => {
    expect(await page.getByRole('link', { name: 'OIOS register' }).count()).toBe(0)
    await page.goto(`${rig.url}/console/#/register/oios`)
    await eventually(() => page.locator('#view').textContent()).toContain(
      'No such register for your roles.',
    )
    const same = await page.evaluate(async () => {
      const a = await fetch('/v1/register/oios/entries')
      const b = await fetch('/v1/register/nosuch/entries')
      return [a.status, b.status]
    })
    expect(same).toEqual([404, 404])
    // OIOS's chief reads and verifies it in the browser, and sees no ITSD register.
    const { context, page: oios } = await rig.as(chief)
    await oios.goto(`${rig.url}/console/#/register`)
    await eventually(() => oios.locator('#verdict').getAttribute('data-ok')).toBe('true')
    await eventually(() => oios.locator('#register-title').textContent()).toBe('OIOS register')
    expect(await oios.getByRole('link', { name: 'ITSD special register' }).count()).toBe(0)
    await context.close()
  })

  it('an entry altered in the store: the page names the same problems as the CLI', async () => {
    const seq = 4
    const [row] = (await (
      await rig.h.store.query({
        query: `SELECT entry FROM tally.register_entries WHERE register = 'itsd' AND seq = ${seq}`,
        format: 'JSONEachRow',
      })
    ).json()) as { entry: string }[]
    const original = String(row?.entry)
    const altered = original.replace(/"actor":"[^"]*"/, '"actor":"u-0000000000000000"')
    expect(altered).not.toBe(original)
    const setEntry = (text: string) =>
      mutate(
        `ALTER TABLE tally.register_entries UPDATE entry = '${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}' WHERE register = 'itsd' AND seq = ${seq}`,
      )
    await setEntry(altered)
    try {
      const seen = await pageVerify()
      const cli = await cliVerify()
      expect(cli.code).toBe(1)
      expect(seen.ok).toBe(false)
      expect(seen.problems.map((p) => p.kind)).toContain('changed')
      expect(seen.problems).toEqual(cli.report.problems)
      await shot(page, 'register-entry-altered')
    } finally {
      await setEntry(original)
    }
    expect((await pageVerify()).ok).toBe(true)
  })

  it('an entry deleted from the store: the page names the same problems as the CLI', async () => {
    const seq = 6
    await rig.h.store.command({
      query: 'CREATE TABLE tally.saved_entries AS tally.register_entries ENGINE = Memory',
    })
    await rig.h.store.command({
      query: `INSERT INTO tally.saved_entries SELECT * FROM tally.register_entries WHERE register = 'itsd' AND seq = ${seq}`,
    })
    await mutate(
      `ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq = ${seq}`,
    )
    try {
      const seen = await pageVerify()
      const cli = await cliVerify()
      expect(cli.code).toBe(1)
      expect(seen.ok).toBe(false)
      expect(seen.problems).toContainEqual(
        expect.objectContaining({ seq, kind: 'removed', message: `entry ${seq} is missing` }),
      )
      expect(seen.problems).toEqual(cli.report.problems)
    } finally {
      await rig.h.store.command({
        query: 'INSERT INTO tally.register_entries SELECT * FROM tally.saved_entries',
      })
      await rig.h.store.command({ query: 'DROP TABLE tally.saved_entries' })
    }
    expect((await pageVerify()).ok).toBe(true)
  })

  it('a register that grew since the kept head: the browser checks the consistency proof and both say OK', async () => {
    const kept = await cliVerify()
    expect(kept.report.ok).toBe(true)
    for (let i = 0; i < 5; i++) {
      await rig.h.collector.register.append({
        register: 'itsd',
        kind: 'test.note',
        actor: auditor.user_id,
        details: { note: `later ${i}` },
      })
    }
    // Proofs from the kept size (an odd one, not a power of two) to the new head, checked here.
    const seen = await pageVerify()
    expect(seen.ok, JSON.stringify(seen.problems)).toBe(true)
    await eventually(() => page.locator('#verification').textContent()).toContain(
      `extends the head this browser kept at size ${kept.report.size}`,
    )
    const cli = await cliVerify()
    expect(cli.code).toBe(0)
    expect(seen.summary).toBe(
      `register itsd: ${cli.report.entries} entries, ${cli.report.checkpoints} checkpoints, ` +
        `root ${cli.report.root.slice(0, 16)}…: OK`,
    )
  })

  it('the tail rolled back with its checkpoints: only the kept heads see it, and both name it alike', async () => {
    const before = await cliVerify()
    expect(before.report.ok).toBe(true)
    expect((await pageVerify()).ok).toBe(true)
    const keep = before.report.size - 3
    await mutate(
      `ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq > ${keep}`,
    )
    await mutate(
      `ALTER TABLE tally.register_checkpoints DELETE WHERE register = 'itsd' AND size > ${keep}`,
    )
    const seen = await pageVerify()
    const cli = await cliVerify()
    expect(cli.code).toBe(1)
    expect(seen.ok).toBe(false)
    expect(seen.problems.map((p) => p.kind)).toEqual(
      expect.arrayContaining(['rolled-back', 'removed']),
    )
    expect(seen.problems).toEqual(cli.report.problems)
    await shot(page, 'register-rolled-back')
    // Forgetting the kept head is what would hide it: the register alone now verifies.
    await page.getByRole('button', { name: 'Forget the kept head' }).click()
    expect((await pageVerify()).ok).toBe(true)
  })
})
