/**
 * What every console test file sets up the same way: the cases harness's collector served on a
 * loopback port, a headless Chromium where the file drives pages (browser.ts), both opened in
 * the describe's beforeAll and closed in its afterAll; the same people in every file; and a call
 * with a bearer token, as another person or tool would make it beside the console.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect } from 'vitest'
import { type CasesHarness, openCasesHarness, type TestUser } from '../collector/cases-harness.ts'
import {
  HAVE_CHROMIUM,
  launchBrowser,
  type ServedCollector,
  SKIP_REASON,
  serveCollector,
  signedIn,
} from './browser.ts'

/** A describe that needs Chromium: without it, skipped with the reason in its name. */
export function describeInChromium(name: string, body: () => void): void {
  describe.skipIf(!HAVE_CHROMIUM)(`${name}${HAVE_CHROMIUM ? '' : ` (${SKIP_REASON})`}`, body)
}

export interface ConsoleRig {
  /** The cases harness behind the served collector (its app, store, users and agents). */
  readonly h: CasesHarness
  /** The collector's base URL on loopback. */
  readonly url: string
  /** The describe's browser (only with `{ browser: true }`). */
  readonly browser: Browser
  /** A fresh browser context (its own cookies) signed in to the console as `user`. */
  as(user: TestUser): Promise<{ context: BrowserContext; page: Page }>
}

const opened = <T>(value: T | undefined, what: string): T => {
  if (value === undefined) throw new Error(`the console rig has no ${what} (not opened yet)`)
  return value
}

/** A headless Chromium launched in the describe's beforeAll and closed in its afterAll. */
export function useBrowser(): { readonly browser: Browser } {
  let browser: Browser | undefined
  beforeAll(async () => {
    browser = await launchBrowser()
  })
  afterAll(async () => {
    await browser?.close()
  })
  return {
    get browser() {
      return opened(browser, 'browser')
    },
  }
}

/**
 * Registers the beforeAll that opens the rig and the afterAll that closes it, in the describe
 * (or file) it is called in; the returned rig is usable from the tests and later hooks on.
 */
export function useConsoleRig(options: { browser: boolean }): ConsoleRig {
  let h: CasesHarness | undefined
  let served: ServedCollector | undefined
  beforeAll(async () => {
    h = await openCasesHarness()
    served = await serveCollector(h)
  })
  afterAll(async () => {
    await served?.close()
    await h?.close()
  })
  const chromium = options.browser ? useBrowser() : undefined
  const rig: ConsoleRig = {
    get h() {
      return opened(h, 'cases harness')
    },
    get url() {
      return opened(served, 'served collector').url
    },
    get browser() {
      return opened(chromium, 'browser').browser
    },
    as: (user) => signedIn(rig.browser, rig.url, user),
  }
  return rig
}

/** The people of the console tests, the same name for a role in every file. */
const CAST = {
  requester: { roles: ['requester'], name: 'Rita Requester' },
  approver: { roles: ['approver'], name: 'Alan Approver' },
  chief: { roles: ['oios_chief'], name: 'Olga Chief' },
  investigator: { roles: ['itsd_investigator'], name: 'Ivan Investigator' },
  official: { roles: ['receiving_official'], name: 'Rosa Official' },
} as const

export type Cast = keyof typeof CAST

/** Everyone a case meets from request to receipt, in the order the tests make them. */
export const EVERYONE = ['requester', 'approver', 'chief', 'investigator', 'official'] as const

/** Makes the people named, in the order given (each a user with their role's token). */
export async function people<K extends Cast>(
  h: CasesHarness,
  ...who: K[]
): Promise<Record<K, TestUser>> {
  const made: Partial<Record<K, TestUser>> = {}
  for (const key of who) {
    const { roles, name } = CAST[key]
    made[key] = await h.user([...roles], name)
  }
  return made as Record<K, TestUser>
}

export interface BearerAnswer {
  status: number
  /** The answer's JSON, undefined for an empty body. */
  body: unknown
  text: string
}

/** A call to the collector at `url` with a bearer token, as a tool beside the console makes it. */
export async function bearer(
  url: string,
  who: TestUser | string,
  method: string,
  path: string,
  body?: unknown,
): Promise<BearerAnswer> {
  const token = typeof who === 'string' ? who : who.token
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? null : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), text }
}

/**
 * Takes a requested case to active through the API, as its people would: OIOS's consultation,
 * the approval naming the investigator, the notice given in person with a witness.
 */
export async function activateThroughApi(
  url: string,
  caseId: string,
  by: { chief: TestUser; approver: TestUser; investigator: TestUser },
): Promise<void> {
  const steps = [
    [by.chief, 'consultation', () => ({ summary: 'No objection' })],
    [by.approver, 'approval', () => ({ investigator: by.investigator.user_id })],
    [
      by.approver,
      'notice',
      () => ({
        method: 'in_person',
        given_by: 'Alan Approver',
        witness: 'A Colleague',
        given_at: new Date().toISOString(),
        to: ['staff_member', 'supervisor'],
      }),
    ],
  ] as const
  for (const [who, step, body] of steps) {
    const answer = await bearer(url, who, 'POST', `/v1/cases/${caseId}/${step}`, body())
    expect(answer.status, `${step}: ${answer.text}`).toBe(200)
  }
}
