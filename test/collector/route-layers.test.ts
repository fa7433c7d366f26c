/**
 * The case and tier I routes only parse, call their service and map its answer: the rules (who,
 * when, what is registered, what is read) live in cases/workflow.ts with cases/transitions.ts and
 * in restricted/service.ts. Read from the sources, so a rule moved back into a route fails here.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const source = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')

/** What a route must not call itself: register writes, tier I reads and writes, access checks. */
const RULES = [
  'record(',
  'checkAccess',
  'queryRecords',
  'buildBundle',
  'storeBundle',
  'readBundleFile',
  'receiptMismatches',
  'ingestRestricted',
  'register.append',
  '.purge(',
  'cases.current(',
  'selectRows',
  'insertRows',
] as const

describe('routes parse, call and map', () => {
  it.each(['collector/routes/cases.ts', 'collector/routes/restricted.ts'])('%s', (path) => {
    const text = source(path)
    for (const rule of RULES) expect(text.includes(rule), `${path} calls ${rule}`).toBe(false)
    // Who may do what is the service's: no route compares a user with a case's people.
    expect(text).not.toMatch(/\.(investigator|receiving_official|requester)\s*[!=]==/)
  })
})
