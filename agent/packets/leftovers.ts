/**
 * tcpdump children that outlive their agent. An agent killed outright (kill -9, the OOM killer)
 * outside systemd leaves its tcpdumps running until their next packet hits the closed pipe; with a
 * subject's narrow filter that can be long, and a subject capture would go on with no agent
 * holding the grant. `setpriv --pdeathsig` cannot prevent it: tcpdump's own privilege drop (-Z)
 * clears the parent-death signal. So the agent keeps a list of the tcpdumps it runs in its state
 * directory, and the next agent stops those still running before it starts any capture.
 *
 * A pid alone could since belong to another process: each entry also holds the process's start
 * time (field 22 of /proc/<pid>/stat, in clock ticks since boot, fixed for a process's life) and
 * the program it ran; a process is stopped only when both still match. The list never holds a
 * filter: a subject capture's filter names the subject's addresses.
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { z } from 'zod'
import { readStateFile, writeFileAtomic } from '../../common/atomic-file.ts'

/** The list's name in the agent's state directory. */
export const CAPTURE_CHILDREN_FILE = 'capture-children.json'

/** Grace between SIGTERM and SIGKILL for a leftover, and again after SIGKILL. */
const LEFTOVER_GRACE_MS = 2_000
const POLL_MS = 25

const RecordedChild = z.object({
  pid: z.number().int().positive(),
  /** /proc/<pid>/stat field 22, as text: clock ticks since boot can exceed 2^53 in theory. */
  start: z.string().regex(/^\d+$/),
  /** The program as spawned (`tcpdump` or the configured tcpdump_path). */
  program: z.string().min(1),
  /** The agent that spawned it: while that is still its parent, it is no leftover. */
  parent: z.number().int().positive(),
})
type RecordedChild = z.infer<typeof RecordedChild>

const ChildList = z.object({ children: z.array(RecordedChild) })

/**
 * The process's start time (field 22 of /proc/<pid>/stat), or undefined when there is no such
 * process or it has already exited (a zombie waiting for its parent counts as gone).
 */
export function processStartTime(pid: number): string | undefined {
  return processStat(pid)?.start
}

/** Start time and parent of a running process, from /proc/<pid>/stat. */
function processStat(pid: number): { start: string; parent: number } | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // Field 2 (the command name) is in parentheses and may itself hold spaces and parentheses:
  // the fields after it start behind the LAST closing parenthesis, with field 3 (the state).
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const field = (n: number): string | undefined => rest[n - 3]
  const start = field(22)
  if (field(3) === 'Z' || field(3) === 'X' || start === undefined) return undefined
  return { start, parent: Number(field(4)) }
}

function programOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]
  } catch {
    return undefined
  }
}

/** The recorded process is still running: same start time, same program. */
function stillRunning(child: RecordedChild): boolean {
  if (processStartTime(child.pid) !== child.start) return false
  const program = programOf(child.pid)
  return program !== undefined && basename(program) === basename(child.program)
}

/**
 * Still running, and its agent is gone (it has another parent now). An agent wrongly started
 * on the state directory of one that still runs must not stop that one's captures.
 */
function leftOver(child: RecordedChild): boolean {
  const parent = processStat(child.pid)?.parent
  return parent !== undefined && parent !== child.parent && stillRunning(child)
}

/**
 * The tcpdumps this agent runs, written to a state file as they start and end (atomically: a
 * crash leaves the old list or the new one). Before recordIn() the list is kept in memory only.
 */
export class CaptureChildren {
  #file: string | undefined
  readonly #children = new Map<number, RecordedChild>()

  /** Writes the list to `file` from now on; call after stopLeftoverCaptures() has read it. */
  recordIn(file: string): void {
    this.#file = file
    this.#save()
  }

  /** Stops writing the list (the file stays as it is). */
  stopRecording(): void {
    this.#file = undefined
  }

  /** A tcpdump was spawned as `pid` running `program`. */
  add(pid: number, program: string): void {
    const start = processStartTime(pid)
    // Already gone: nothing can be left over.
    if (start === undefined) return
    this.#children.set(pid, { pid, start, program, parent: process.pid })
    this.#save()
  }

  /** That tcpdump has exited. */
  remove(pid: number): void {
    if (this.#children.delete(pid)) this.#save()
  }

  #save(): void {
    if (this.#file === undefined) return
    try {
      writeFileAtomic(this.#file, `${JSON.stringify({ children: [...this.#children.values()] })}\n`)
    } catch {
      // A full or read-only state directory must not stop a capture: the list only serves to
      // clean up after a crash, and an unwritten entry costs at worst one leftover until its
      // next packet.
    }
  }
}

/**
 * The agent's one list: an agent is one process with one state directory, and both the
 * aggregate capture and every subject capture record into it through LiveCapture.
 */
export const captureChildren = new CaptureChildren()

export interface LeftoverReport {
  /** A leftover tcpdump was stopped (its pid; never its filter). */
  onStopped: (pid: number) => void
  /** The list could not be read; `problem` is one line naming the file. */
  onProblem: (problem: string) => void
}

/**
 * Stops every tcpdump in the list at `file` that is still running (SIGTERM, SIGKILL after a
 * grace), and resolves with how many it stopped. A pid now used by another process is left alone.
 */
export async function stopLeftoverCaptures(file: string, report: LeftoverReport): Promise<number> {
  let list: RecordedChild[]
  try {
    list =
      readStateFile(file, { parse: (data) => ChildList.parse(JSON.parse(data.toString())) })
        ?.children ?? []
  } catch (error) {
    report.onProblem((error as Error).message)
    return 0
  }
  let stopped = 0
  for (const child of list) {
    if (!leftOver(child)) continue
    if (!(await signalUntilGone(child, 'SIGTERM')) && stillRunning(child)) {
      await signalUntilGone(child, 'SIGKILL')
    }
    stopped++
    report.onStopped(child.pid)
  }
  return stopped
}

/** Sends `signal` and waits up to the grace for the process to be gone; true if it is. */
async function signalUntilGone(child: RecordedChild, signal: NodeJS.Signals): Promise<boolean> {
  try {
    process.kill(child.pid, signal)
  } catch {
    return !stillRunning(child)
  }
  const deadline = Date.now() + LEFTOVER_GRACE_MS
  while (Date.now() < deadline) {
    if (!stillRunning(child)) return true
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
  return !stillRunning(child)
}
