#!/usr/bin/env node
/**
 * `npm run build:agent`: bundles the agent (bin/tally-agent.ts) into one file, dist/tally-agent.mjs,
 * that runs on Node 22.12 or newer with nothing beside it:
 *
 *   node tally-agent.mjs run --config /etc/tally/agent.yaml
 *
 * esbuild compiles the TypeScript, so the bundle is plain JavaScript and needs no type stripping.
 * It is not minified: a stack trace from a host should be readable. The build fails, and writes
 * nothing, when the bundle would take anything from collector/ or cli/ (the agent must not carry
 * the collector), or would import at run time anything but a Node built-in (a host has no
 * node_modules).
 *
 * The bundle is pure ASCII: V8 keeps a script's source in memory for as long as it runs, one byte
 * per character when every character is Latin-1 and two bytes otherwise, so one dash (U+2014) in
 * a dependency's comment doubled the 2.3 MB source to 4.6 MB of resident memory. Every character
 * beyond ASCII is written as a `\uXXXX` escape, which means the same in strings, regular
 * expressions (with or without the u flag) and comments.
 *
 * Usage: node scripts/build-agent.ts [--outfile FILE] [--entry FILE] [--composition]
 * (--entry is there for the test that shows the collector guard works; --composition prints the
 * bytes each package and top folder puts in the bundle, from esbuild's metafile.)
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { isBuiltin } from 'node:module'
import { dirname, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { build, type Metafile, type Plugin } from 'esbuild'

const ROOT = new URL('../', import.meta.url).pathname

/**
 * Packages a dependency requires inside try/catch and does without; esbuild leaves them external.
 * Nothing else may stay external.
 */
const OPTIONAL_AT_RUN_TIME = new Set<string>()

/** What the agent must never carry, as metafile input paths (relative to the repository). */
const FORBIDDEN_INPUT = /^(collector|cli)\//

class BuildError extends Error {}

/**
 * agent/version.ts reads the package.json next to the source tree at run time; the bundle has none
 * beside it, so the version is written in at build time instead.
 */
function agentVersion(version: string): Plugin {
  return {
    name: 'agent-version',
    setup(b) {
      b.onLoad({ filter: /[\\/]agent[\\/]version\.ts$/ }, () => ({
        contents: `export const AGENT_VERSION: string = ${JSON.stringify(version)}\n`,
        loader: 'ts',
      }))
    },
  }
}

/** Writes every character beyond ASCII as an escape (see the top of this file). */
export function asciiOnly(text: string): string {
  // UTF-16 units as \uXXXX (a pair for a character beyond the BMP): `\u{...}` would mean
  // something else in a regular expression without the u flag.
  return text.replace(
    /[\u0080-\uffff]/g,
    (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/** Bytes of output per package (node_modules) or top folder of this repository, largest first. */
function composition(metafile: Metafile): Array<[string, number]> {
  const bytes = new Map<string, number>()
  for (const output of Object.values(metafile.outputs)) {
    for (const [path, { bytesInOutput }] of Object.entries(output.inputs)) {
      const name =
        /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1] ?? `${path.split('/')[0]}/`
      bytes.set(name, (bytes.get(name) ?? 0) + bytesInOutput)
    }
  }
  return [...bytes].sort((a, b) => b[1] - a[1])
}

function check(metafile: Metafile): void {
  const forbidden = Object.keys(metafile.inputs).filter((path) => FORBIDDEN_INPUT.test(path))
  if (forbidden.length > 0) {
    throw new BuildError(
      'the agent bundle must not include the collector or the tally CLI, but it takes:\n  ' +
        forbidden.join('\n  '),
    )
  }
  const external = new Set<string>()
  for (const output of Object.values(metafile.outputs)) {
    for (const imported of output.imports) {
      if (!imported.external || isBuiltin(imported.path)) continue
      if (!OPTIONAL_AT_RUN_TIME.has(imported.path)) external.add(imported.path)
    }
  }
  if (external.size > 0) {
    throw new BuildError(
      `the agent bundle would need these beside it at run time: ${[...external].join(', ')}`,
    )
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      outfile: { type: 'string', default: resolve(ROOT, 'dist/tally-agent.mjs') },
      entry: { type: 'string', default: resolve(ROOT, 'bin/tally-agent.ts') },
      composition: { type: 'boolean', default: false },
    },
  })
  const outfile = resolve(values.outfile)
  const { version } = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as {
    version: string
  }
  // The CommonJS dependencies (pino, commander, ...) call require() for Node's
  // built-ins; an ES module has no require, so the bundle makes one.
  const banner = [
    `// Tally agent ${version}, bundled by scripts/build-agent.ts; needs Node 22.12 or newer.`,
    "import { createRequire as __tallyCreateRequire } from 'node:module';",
    'const require = __tallyCreateRequire(import.meta.url);',
  ].join('\n')

  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [resolve(values.entry)],
    outfile,
    write: false,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22.12',
    banner: { js: banner },
    plugins: [agentVersion(version)],
    metafile: true,
    legalComments: 'eof',
    logLevel: 'warning',
  })
  check(result.metafile)

  const [file] = result.outputFiles
  if (file === undefined || result.outputFiles.length !== 1) {
    throw new BuildError(`expected one output file, got ${result.outputFiles.length}`)
  }
  const text = asciiOnly(file.text)
  mkdirSync(dirname(outfile), { recursive: true })
  writeFileSync(outfile, text)
  chmodSync(outfile, 0o755)

  const inputs = Object.keys(result.metafile.inputs)
  const packages = new Set<string>()
  for (const path of inputs) {
    const name = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1]
    if (name !== undefined) packages.add(name)
  }
  const own = inputs.filter((path) => !path.includes('node_modules/')).length
  const shown = relative(process.cwd(), outfile)
  process.stdout.write(
    `${shown.startsWith('..') ? outfile : shown}: ${(text.length / 1024).toFixed(0)} KiB ` +
      `(${text.length} bytes), agent ${version}, ${own} own modules, ` +
      `packages: ${[...packages].sort().join(', ')}\n`,
  )
  if (values.composition) {
    for (const [name, bytes] of composition(result.metafile)) {
      process.stdout.write(`${(bytes / 1024).toFixed(0).padStart(6)} KiB  ${name}\n`)
    }
  }
}

try {
  await main()
} catch (err) {
  // esbuild has already printed its own errors; ours say what the bundle must not do.
  process.stderr.write(`build-agent: ${(err as Error).message}\n`)
  process.exit(1)
}
