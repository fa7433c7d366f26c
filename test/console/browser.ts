/**
 * The console's tests drive Debian's Chromium (/usr/bin/chromium) through playwright-core: one
 * headless browser per test file, started in beforeAll and closed in afterAll (playwright kills
 * its process group), and the collector of the cases harness served on a loopback port.
 *
 * Without Chromium the tests skip, and say so loudly: CI installs it (.ci/run).
 */
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { serve } from '@hono/node-server'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { expect } from 'vitest'
import type { CasesHarness, TestUser } from '../collector/cases-harness.ts'

export const CHROMIUM = process.env.TALLY_CHROMIUM ?? '/usr/bin/chromium'
export const HAVE_CHROMIUM = existsSync(CHROMIUM)
export const SKIP_REASON = `SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium; CI installs it)`
if (!HAVE_CHROMIUM) console.warn(`\n*** console browser tests ${SKIP_REASON}\n`)

export const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts/console')

export async function launchBrowser(): Promise<Browser> {
  await mkdir(ARTIFACTS, { recursive: true })
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in CI: Chromium's sandbox needs user namespaces it may not have there.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  })
}

export interface ServedCollector {
  url: string
  close(): Promise<void>
}

/** The harness's collector on 127.0.0.1, a free port. */
export async function serveCollector(h: CasesHarness): Promise<ServedCollector> {
  const server = await new Promise<ReturnType<typeof serve>>((ready) => {
    const s = serve({ fetch: h.app.fetch, hostname: '127.0.0.1', port: 0 }, () => ready(s))
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        if ('closeAllConnections' in server) server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A fresh browser context (its own cookies) signed in to the console as `user`. */
export async function signedIn(
  browser: Browser,
  url: string,
  user: TestUser,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext()
  // Far inside the test's own timeout, so that a missing element fails with its name.
  context.setDefaultTimeout(15_000)
  const page = await context.newPage()
  await page.goto(`${url}/console/`)
  await page.getByLabel('User token').fill(user.token)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await eventually(() => page.locator('#nav').isVisible()).toBe(true)
  return { context, page }
}

/**
 * expect.poll with room for a loaded machine (its own default is 1 s): a page's answer waits on
 * the engine's writes. Far inside the test's timeout, and no bound on how fast anything is.
 */
export const eventually = <T>(read: () => T | Promise<T>) =>
  expect.poll(read, { timeout: 20_000, interval: 100 })

export const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
