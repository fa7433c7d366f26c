/**
 * docs/architecture.md's "Where things are" table is how a newcomer finds a route's handler, service,
 * repository, contract and tests: every path it names must exist, and every route file and
 * contract file must be in it, so files that move or appear cannot leave it behind.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = new URL('../../', import.meta.url).pathname
const design = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8')
const start = design.indexOf('## Where things are')
const end = design.indexOf('\n## ', start + 1)
const section = design.slice(start, end === -1 ? undefined : end)

/** Every repository path the section names in backticks. */
const named = [
  ...new Set(
    [
      ...section.matchAll(/`((?:bin|cli|collector|agent|protocol|common|test|scripts)\/[^`\s]*)`/g),
    ].map((m) => m[1] as string),
  ),
]

const filesIn = (dir: string): string[] =>
  readdirSync(join(ROOT, dir))
    .filter((name) => name.endsWith('.ts'))
    .map((name) => `${dir}/${name}`)

describe('docs/architecture.md, where things are', () => {
  it('finds the table', () => {
    expect(start).toBeGreaterThan(-1)
    expect(named.length).toBeGreaterThan(40)
  })

  it('every path it names exists', () => {
    expect(named.filter((path) => !existsSync(join(ROOT, path)))).toEqual([])
  })

  it('names every route file and every contract file', () => {
    const expected = [
      ...filesIn('collector/routes'),
      'collector/console/routes.ts',
      ...filesIn('protocol/api').filter((f) => !/\/(index|contract|names)\.ts$/.test(f)),
    ]
    expect(expected.filter((path) => !named.includes(path))).toEqual([])
  })

  it('gives every family a handler, a contract (or says why none) and tests', () => {
    const rows = section.split('\n').filter((line) => /^\| (?!family|---)/.test(line))
    expect(rows.length).toBeGreaterThanOrEqual(9)
    for (const row of rows) {
      const cells = row.split(' | ')
      expect(cells[2], row).toMatch(/`collector\//)
      expect(cells[5], row).toMatch(/`protocol\/|none:/)
      expect(cells[6], row).toMatch(/`test\//)
    }
  })
})
