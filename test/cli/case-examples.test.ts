/**
 * Every case file has a documented format and a template: `tally case <kind> --example` prints a
 * commented file that the collector's own schema accepts as printed, and with its optional lines
 * uncommented; docs/cases.md names every field; --help and the docs say who may close a case.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import type { z } from 'zod'
import { CASE_FILE_KINDS, type CaseFileKind } from '../../collector/cases/examples.ts'
import {
  CaseRequest,
  EmergencyRequest,
  OiosOpening,
  TechnicalOpening,
} from '../../protocol/api/cases.ts'
import { ROOT, tally } from './run-tally.ts'

const SCHEMAS: Record<CaseFileKind, z.ZodObject> = {
  request: CaseRequest,
  emergency: EmergencyRequest,
  'written-request': CaseRequest,
  technical: TechnicalOpening,
  oios: OiosOpening,
}

const docs = readFileSync(`${ROOT}/docs/cases.md`, 'utf8')

describe.each(CASE_FILE_KINDS)('tally case %s --example', (kind) => {
  it('prints a commented template the real schema accepts', async () => {
    const result = await tally(['case', kind, '--example'])
    expect(result.code, result.stderr).toBe(0)
    const lines = result.stdout.split('\n')
    expect(lines.filter((l) => l.startsWith('#')).length).toBeGreaterThan(3)
    const parsed = SCHEMAS[kind].safeParse(parse(result.stdout))
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true)

    // The optional lines, uncommented, are accepted too.
    const uncommented = result.stdout.replace(/^ {2}# {3}addresses:/m, '    addresses:')
    expect(uncommented).not.toBe(result.stdout)
    const full = SCHEMAS[kind].safeParse(parse(uncommented))
    expect(full.success, JSON.stringify(full.error?.issues)).toBe(true)
  })

  it('names every field of the file in docs/cases.md', () => {
    const section = docs.slice(docs.indexOf(`<a id="file-${kind}"></a>`))
    expect(section.length).toBeLessThan(docs.length)
    for (const field of Object.keys(SCHEMAS[kind].shape))
      expect(section, `${kind}: ${field}`).toContain(`\`${field}\``)
  })
})

describe('who may close a case', () => {
  it('is said in --help and in docs/cases.md', async () => {
    for (const args of [
      ['case', '--help'],
      ['case', 'close', '--help'],
    ]) {
      const help = await tally(args)
      expect(help.stdout.replace(/\s+/g, ' ')).toMatch(
        /approver, (its|the) requester or (its|the) investigator/,
      )
    }
    expect(docs).toContain('Who may close a case')
  })

  it('a file is still required without --example', async () => {
    const result = await tally(['case', 'request', '--token', 'x'])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('-f, --file <file> is required (or --example)')
  })
})
