/**
 * The auth component's layers, read from the sources so that a shortcut taken back fails here:
 * only its repositories (`*-repository.ts`) hold SQL and read or write rows, and its routes
 * neither build error answers nor catch the domain's refusals (app.onError answers them).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const root = new URL('../../', import.meta.url)
const source = (path: string) => readFileSync(new URL(path, root), 'utf8')

const authFiles = readdirSync(new URL('collector/auth/', root))
  .filter((name) => name.endsWith('.ts'))
  .map((name) => `collector/auth/${name}`)
const domainFiles = authFiles.filter((path) => !path.endsWith('-repository.ts'))

describe('auth: SQL only in repositories', () => {
  it('has repositories to check against', () => {
    expect(authFiles.filter((path) => path.endsWith('-repository.ts')).length).toBeGreaterThan(3)
  })

  it.each(domainFiles)('%s', (path) => {
    const text = source(path)
    expect(text, `${path} imports the row helpers`).not.toMatch(/store\/rows\.ts/)
    expect(text, `${path} imports the driver`).not.toMatch(/@clickhouse\/client/)
    expect(text, `${path} writes SQL`).not.toMatch(/\b(SELECT|INSERT INTO|ALTER TABLE)\b/)
  })
})

describe('auth routes: parse, call, let refusals through', () => {
  it.each(['collector/routes/admin.ts', 'collector/routes/agents.ts'])('%s', (path) => {
    const text = source(path)
    for (const shortcut of ['problem(', 'readJson', 'catch (', 'selectParsed', 'insertRows']) {
      expect(text.includes(shortcut), `${path} uses ${shortcut}`).toBe(false)
    }
  })
})
