/**
 * The repository cites only what it contains: no file names a document that lives elsewhere, and
 * every relative link of every Markdown file, and every docs/ page any file names, exists.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = new URL('../../', import.meta.url).pathname

/** Tracked files; outside a git checkout, the tree without what git ignores anyway. */
function repositoryFiles(): string[] {
  try {
    return execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
      .split('\0')
      .filter((f) => f !== '' && existsSync(join(ROOT, f)))
  } catch {
    const out: string[] = []
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        if (['.git', 'node_modules', 'data', 'dist', 'coverage'].includes(name)) continue
        const path = join(dir, name)
        if (statSync(path).isDirectory()) walk(path)
        else out.push(relative(ROOT, path))
      }
    }
    walk(ROOT)
    return out
  }
}

const files = repositoryFiles()
const textOf = (file: string): string | undefined => {
  const bytes = readFileSync(join(ROOT, file))
  return bytes.includes(0) ? undefined : bytes.toString('utf8')
}

// Spelled in parts so that this file does not match itself.
const OUTSIDE = new RegExp(['DESIGN\\.', 'md|\\.\\./', 'shared|design ', 'card'].join(''), 'i')

describe('references', () => {
  it('finds the repository', () => {
    expect(files).toContain('README.md')
    expect(files.length).toBeGreaterThan(100)
  })

  it('no file cites a document outside the repository', () => {
    const citing = files.filter((file) => {
      const text = textOf(file)
      return text !== undefined && OUTSIDE.test(text)
    })
    expect(citing).toEqual([])
  })

  it('every relative link of every Markdown file leads to a file that exists', () => {
    const broken: string[] = []
    for (const file of files.filter((f) => f.endsWith('.md'))) {
      const text = textOf(file) ?? ''
      // Inline links and images, and reference definitions ([x]: target).
      const targets = [
        ...[...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]),
        ...[...text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1]),
      ]
      for (const target of targets as string[]) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue
        const path = decodeURIComponent(target.split('#')[0] as string)
        const resolved = path.startsWith('/') ? join(ROOT, path) : join(ROOT, dirname(file), path)
        if (!existsSync(resolved)) broken.push(`${file} -> ${target}`)
      }
    }
    expect(broken).toEqual([])
  })

  it('every docs/ page a file names exists', () => {
    const missing: string[] = []
    for (const file of files) {
      const text = textOf(file)
      if (text === undefined) continue
      for (const m of text.matchAll(/(?<![\w/.-])docs\/[\w./-]*\.md\b/g))
        if (!existsSync(join(ROOT, m[0]))) missing.push(`${file} -> ${m[0]}`)
    }
    expect(missing).toEqual([])
  })
})
