/**
 * Writes the dashboards' JSON from their sources in ./src, formatted as Biome formats JSON:
 * `node dashboards/build.ts`. test/dashboards checks that the files hold what the sources build.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { DASHBOARDS } from './src/index.ts'

const files = DASHBOARDS.map(({ file, build }) => {
  const path = fileURLToPath(new URL(file, import.meta.url))
  writeFileSync(path, `${JSON.stringify(build(), null, 2)}\n`)
  return path
})
const biome = fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url))
execFileSync(biome, ['format', '--write', ...files], { stdio: 'inherit' })
