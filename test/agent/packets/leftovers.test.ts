/**
 * A tcpdump whose agent was killed outright (kill -9, outside systemd) runs on until its next
 * packet; with a subject's narrow filter that can be long. The next agent started on the same
 * state directory stops it, says so without its filter, and leaves alone a process that merely
 * reuses a recorded pid. Real tcpdump on lo, a real agent from bin/tally.ts.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  CAPTURE_CHILDREN_FILE,
  captureChildren,
  processStartTime,
  stopLeftoverCaptures,
} from '../../../agent/packets/leftovers.ts'
import { LiveCapture } from '../../../agent/packets/tcpdump.ts'
import { AgentProcess, freePort, tmp, waitFor } from '../../e2e/harness.ts'

function which(program: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}
const tcpdump = which('tcpdump')
const root = process.getuid?.() === 0
const skipReason =
  tcpdump === undefined
    ? 'SKIPPED: tcpdump is not installed'
    : !root
      ? 'SKIPPED: capturing on lo needs root'
      : ''

const dir = tmp('leftovers')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A subject-like filter: addresses nothing on lo sends to, so tcpdump never sees a packet. */
const SUBJECT_FILTER = 'host 127.0.0.77 and udp port 9'

/** Process groups this file started; each is killed whole after each test. */
const groups: number[] = []
const agents: AgentProcess[] = []
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop('SIGKILL')))
  for (const group of groups.splice(0)) {
    try {
      process.kill(-group, 'SIGKILL')
    } catch {
      // the group has ended
    }
  }
  captureChildren.stopRecording()
})

/** A detached (own process group) child, killed with its group after the test. */
function spawnGroup(command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'], detached: true })
  if (child.pid !== undefined) groups.push(child.pid)
  return child
}

interface Listed {
  pid: number
  start: string
  program: string
  parent: number
}
const listed = (file: string): Listed[] =>
  (JSON.parse(readFileSync(file, 'utf8')) as { children: Listed[] }).children

const alive = (pid: number): boolean => processStartTime(pid) !== undefined

describe.skipIf(skipReason !== '')(`leftover tcpdumps ${skipReason}`, () => {
  it('lists a running tcpdump with its start time and drops it when it exits', async () => {
    const file = join(dir, 'list-one.json')
    captureChildren.recordIn(file)
    let started: number | undefined
    const capture = new LiveCapture({
      interface: 'lo',
      filter: SUBJECT_FILTER,
      tcpdumpPath: tcpdump,
      onPacket: () => {},
      onEvent: (event) => {
        if (event.kind === 'started') started = event.pid
      },
    })
    try {
      capture.start()
      const pid = await waitFor('tcpdump listening', () => started, 20_000)
      expect(listed(file)).toEqual([
        { pid, start: processStartTime(pid), program: tcpdump as string, parent: process.pid },
      ])
      // The list names the process, never what it captures.
      expect(readFileSync(file, 'utf8')).not.toContain('127.0.0.77')
    } finally {
      await capture.stop()
    }
    expect(listed(file)).toEqual([])
  })

  it('the next agent stops a tcpdump its killed predecessor left, and only that', async () => {
    const stateDir = join(dir, 'state')
    mkdirSync(stateDir, { recursive: true })
    const file = join(stateDir, CAPTURE_CHILDREN_FILE)

    // The predecessor's capture side, recording its tcpdump as the agent does.
    const predecessor = spawnGroup(process.execPath, [
      new URL('./capture-child.ts', import.meta.url).pathname,
      file,
      tcpdump as string,
      SUBJECT_FILTER,
    ])
    let out = ''
    predecessor.stdout?.setEncoding('utf8').on('data', (text: string) => {
      out += text
    })
    const leftover = await waitFor(
      'the predecessor to start tcpdump',
      () => {
        if (out.includes('unavailable')) throw new Error(out)
        const pid = /started (\d+)/.exec(out)?.[1]
        return pid === undefined ? undefined : Number(pid)
      },
      20_000,
    )
    expect(listed(file).map((c) => c.pid)).toEqual([leftover])

    // While its agent runs, a tcpdump is no leftover (an agent wrongly started on the same state
    // directory must not stop it).
    const stopped: number[] = []
    const report = { onStopped: (pid: number) => stopped.push(pid), onProblem: () => {} }
    expect(await stopLeftoverCaptures(file, report)).toBe(0)
    expect(stopped).toEqual([])
    expect(alive(leftover)).toBe(true)

    const parent = predecessor.pid as number
    const exited = new Promise((resolve) => predecessor.once('exit', resolve))
    process.kill(predecessor.pid as number, 'SIGKILL')
    await exited
    // The problem itself: its agent is gone, the subject's capture is not.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(alive(leftover)).toBe(true)

    // Two processes that now hold pids the list names, but are not the processes it recorded:
    // one is the recorded program but started at another time (the pid was reused), the other
    // started at the recorded time but runs another program.
    const reusedPid = spawnGroup('sleep', ['600'])
    const otherProgram = spawnGroup('sleep', ['600'])
    const starts = await waitFor('sleep to run', () => {
      const a = reusedPid.pid === undefined ? undefined : processStartTime(reusedPid.pid)
      const b = otherProgram.pid === undefined ? undefined : processStartTime(otherProgram.pid)
      return a !== undefined && b !== undefined ? [a, b] : undefined
    })
    const children = [
      ...listed(file),
      { pid: reusedPid.pid, start: String(Number(starts[0]) - 1), program: 'sleep', parent },
      { pid: otherProgram.pid, start: starts[1], program: tcpdump, parent },
    ]
    writeFileSync(file, JSON.stringify({ children }))

    const agent = new AgentProcess(stateDir, `http://127.0.0.1:${await freePort()}`, {
      TALLY_ENROLLMENT_TOKEN: 'no-collector-answers-here',
    })
    agents.push(agent)
    const message = `stopped a capture left by a previous agent (pid ${leftover})`
    const said = await waitFor(
      'the agent to stop the leftover',
      () => {
        if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.stderr}`)
        return agent.logged(message)[0]
      },
      30_000,
    )
    expect(said.pid).toBe(leftover)
    expect(alive(leftover)).toBe(false)
    // Another process's pid is not a leftover.
    expect(alive(reusedPid.pid as number)).toBe(true)
    expect(alive(otherProgram.pid as number)).toBe(true)
    expect(agent.lines.filter((l) => l.msg?.startsWith('stopped a capture'))).toHaveLength(1)
    // No tier I value in the log: the subject's filter names its address.
    expect(agent.stderr).not.toContain('127.0.0.77')
    // The agent keeps its own list from now on: the leftover is no longer in it.
    await waitFor('the new list', () => (listed(file).length === 0 ? true : undefined))
  })
})
