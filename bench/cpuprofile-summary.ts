/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function, self time by
 * file, and the inclusive time of a few functions of interest.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof bin/tally.ts agent aggregate FILE --json >/dev/null
 *   node bench/cpuprofile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 25] [--window readPcapFile]
 *
 * The window is the span from the first to the last sample with the `--window` function on the
 * stack: for `agent aggregate`, the read + decode + aggregate loop; before it is startup.
 * Percentages inside the window are of the window.
 */
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

function shortUrl(url: string): string {
  if (url === '') return '(native)'
  const path = url.startsWith('file://') ? new URL(url).pathname : url
  const rel = relative(process.cwd(), path)
  return rel.startsWith('..') ? path : rel
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const name = functionName === '' ? '(anonymous)' : functionName
  return url === '' ? name : `${name}  ${shortUrl(url)}:${lineNumber + 1}`
}

function top(map: Map<string, number>, n: number, total: number): string[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(
      ([name, us]) =>
        `${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${name}`,
    )
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '25' },
      window: { type: 'string', default: 'readPcapFile' },
      inclusive: { type: 'string', multiple: true, default: ['aggregateFile', 'readPcapFile'] },
    },
  })
  const file = positionals[0]
  if (file === undefined) {
    process.stderr.write('usage: node bench/cpuprofile-summary.ts FILE.cpuprofile [--top N]\n')
    process.exit(2)
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id)

  // The hot window: from the first to the last sample with `--window` (a function) on the stack.
  const onStack = (id: number, fn: string): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      if (byId.get(at)?.callFrame.functionName === fn) return true
    }
    return false
  }
  let first = -1
  let last = -1
  profile.samples.forEach((id, i) => {
    if (onStack(id, values.window)) {
      if (first < 0) first = i
      last = i
    }
  })
  const phase = [0, 0, 0]
  const selfInWindow = new Map<string, number>()

  const selfByFunction = new Map<string, number>()
  const selfByFile = new Map<string, number>()
  const inclusive = new Map<string, number>(values.inclusive.map((name) => [name, 0]))
  let total = 0
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0
    const node = byId.get(id)
    if (node === undefined) return
    total += us
    const name = label(node)
    const at = first < 0 || i < first ? 0 : i <= last ? 1 : 2
    phase[at] = (phase[at] ?? 0) + us
    if (at === 1) selfInWindow.set(name, (selfInWindow.get(name) ?? 0) + us)
    selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + us)
    const url = shortUrl(node.callFrame.url)
    selfByFile.set(url, (selfByFile.get(url) ?? 0) + us)
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const fn = byId.get(at)?.callFrame.functionName
      if (fn !== undefined && inclusive.has(fn) && !seen.has(fn)) {
        seen.add(fn)
        inclusive.set(fn, (inclusive.get(fn) ?? 0) + us)
      }
    }
  })
  const n = Number(values.top)
  const lines = [
    `${file}: ${(total / 1000).toFixed(1)} ms sampled (${profile.samples.length} samples)`,
    '',
    'inclusive time:',
    ...[...inclusive.entries()].map(
      ([name, us]) =>
        `${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${name}`,
    ),
    '',
    `phases (window: first to last sample with ${values.window} on the stack):`,
    `${((phase[0] ?? 0) / 1000).toFixed(1).padStart(9)} ms  before (startup: module loading, type stripping)`,
    `${((phase[1] ?? 0) / 1000).toFixed(1).padStart(9)} ms  window (read + decode + aggregate)`,
    `${((phase[2] ?? 0) / 1000).toFixed(1).padStart(9)} ms  after (report, JSON, exit)`,
    '',
    `self time inside the window (top ${n}):`,
    ...top(selfInWindow, n, phase[1] ?? 1),
    '',
    `self time by function, whole profile (top ${n}):`,
    ...top(selfByFunction, n, total),
    '',
    'self time by file (top 15):',
    ...top(selfByFile, 15, total),
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
}

main()
