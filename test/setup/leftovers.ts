/**
 * Finds the processes a test run started and left running.
 *
 * Every process the tests start inherits the environment, so the run puts a tag in it
 * (TALLY_TEST_RUN for the run, TALLY_TEST_FILE for one test file) and a leftover is a live process
 * whose environment carries the tag: it is found even when its parent has died and it was
 * re-parented, or when it made a process group or a session of its own. Processes that a test
 * starts with a clean environment are found as long as they are still below the process that
 * started them. Other runs (other checkouts, other people's vitest) carry other tags and are not
 * touched.
 */
import { readdirSync, readFileSync } from 'node:fs'

export const RUN_TAG = 'TALLY_TEST_RUN'
export const FILE_TAG = 'TALLY_TEST_FILE'

export interface Leftover {
  pid: number
  ppid: number
  pgid: number
  command: string
}

function pids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1')
  } catch {
    return undefined // gone, or not ours to read
  }
}

/** ppid, pgid and state from /proc/PID/stat; undefined when the process is gone. */
function stat(pid: number): { ppid: number; pgid: number; state: string } | undefined {
  const text = read(`/proc/${pid}/stat`)
  if (text === undefined) return undefined
  // The command name is in brackets and may hold spaces and brackets itself.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return { state: fields[0] ?? '', ppid: Number(fields[1]), pgid: Number(fields[2]) }
}

function describe(pid: number): Leftover | undefined {
  const s = stat(pid)
  // A zombie has finished; its parent has only not collected it yet.
  if (s === undefined || s.state === 'Z' || s.state === 'X') return undefined
  const command = (read(`/proc/${pid}/cmdline`) ?? '').split('\0').join(' ').trim()
  return { pid, ppid: s.ppid, pgid: s.pgid, command }
}

/**
 * Live processes (other than `exclude`) whose environment has `name=value`, and live descendants
 * of `root` when given.
 */
export function findLeftovers(
  name: string,
  value: string,
  options: { root?: number; exclude?: number[] } = {},
): Leftover[] {
  const needle = `\0${name}=${value}\0`
  const exclude = new Set([process.pid, ...(options.exclude ?? [])])
  const all = pids()
  const found = new Set<number>()
  for (const pid of all) {
    if (exclude.has(pid)) continue
    const environ = read(`/proc/${pid}/environ`)
    if (environ !== undefined && `\0${environ}`.includes(needle)) found.add(pid)
  }
  if (options.root !== undefined) {
    const children = new Map<number, number[]>()
    for (const pid of all) {
      const s = stat(pid)
      if (s === undefined) continue
      children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid])
    }
    const queue = [...(children.get(options.root) ?? [])]
    for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
      if (!exclude.has(pid)) found.add(pid)
      queue.push(...(children.get(pid) ?? []))
    }
  }
  return [...found]
    .sort((a, b) => a - b)
    .map(describe)
    .filter((p): p is Leftover => p !== undefined)
}

/** Waits up to `graceMs` for leftovers to end by themselves (a kill just sent, an exit running). */
export async function settleLeftovers(
  find: () => Leftover[],
  graceMs: number,
): Promise<Leftover[]> {
  const deadline = Date.now() + graceMs
  let left = find()
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100))
    left = find()
  }
  return left
}

/** SIGKILL to each leftover. */
export function killLeftovers(leftovers: Leftover[]): void {
  for (const { pid } of leftovers) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // ended in the meantime
    }
  }
}

export const formatLeftovers = (leftovers: Leftover[]): string =>
  leftovers
    .map((p) => `  pid ${p.pid} (parent ${p.ppid}, group ${p.pgid}): ${p.command.slice(0, 300)}`)
    .join('\n')
