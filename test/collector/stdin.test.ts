/**
 * The embedded engine ignores the process's standard input. chDB takes fd 0 as the external data
 * of every INSERT, so a collector started with stdin from a file or a pipe that carries data
 * could not store anything (every insert refused, a fresh data directory half migrated). Here
 * the collector and the demo run as real processes with stdin from a regular file with data, a
 * pipe with data, /dev/null and closed, and every one of them stores batches.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { freePort, tmp, waitFor } from '../e2e/harness.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const TALLY = join(ROOT, 'bin', 'tally.ts')

/** What stdin carries: rows chDB would take as INSERT data if it read them. */
const STDIN_DATA = '{"x":1}\n(9999)\nhello\n'

type StdinKind = 'file' | 'pipe' | 'devnull' | 'closed'
const KINDS: StdinKind[] = ['file', 'pipe', 'devnull', 'closed']

const children: ChildProcess[] = []
afterAll(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(-child.pid, 'SIGKILL')
    }
  }
})

/** Starts `tally <args>` with stdin of this kind, in its own process group. */
function start(
  kind: StdinKind,
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const dir = tmp('stdin')
  let stdin: 'pipe' | 'ignore' | number = 'ignore'
  let command = process.execPath
  let argv = [TALLY, ...args]
  if (kind === 'file') {
    const file = join(dir, 'stdin.txt')
    writeFileSync(file, STDIN_DATA)
    stdin = openSync(file, 'r')
  } else if (kind === 'pipe') {
    stdin = 'pipe'
  } else if (kind === 'closed') {
    // spawn cannot leave a descriptor closed; the shell can, then becomes node (same pid).
    command = '/bin/sh'
    argv = ['-c', 'exec "$0" "$@" <&-', process.execPath, TALLY, ...args]
  }
  const child = spawn(command, argv, {
    cwd: ROOT,
    env: { ...process.env, TALLY_CAPTURE_INTERFACE: 'none', ...env },
    stdio: [stdin, 'pipe', 'pipe'],
    detached: true,
  })
  children.push(child)
  if (typeof stdin === 'number') closeSync(stdin)
  if (kind === 'pipe') child.stdin?.end(STDIN_DATA)
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
  })
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  return { child, output: () => output, exited }
}

async function api<T>(url: string, token: string, method: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`)
  return JSON.parse(text) as T
}

interface FleetAgent {
  agent_id: string
  batches: number
  last_seq: number | null
}

async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  return exited
}

describe('the collector stores batches whatever its stdin is', () => {
  it.each(KINDS)('stdin %s', async (kind) => {
    const dataDir = join(tmp('stdin-collector'), 'data')
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const proc = start(kind, ['collector', 'run'], {
      TALLY_DATA_DIR: dataDir,
      TALLY_LISTEN_PORT: String(port),
    })
    try {
      await waitFor(`collector with stdin ${kind}`, async () => {
        if (proc.child.exitCode !== null) throw new Error(`collector exited: ${proc.output()}`)
        return (await fetch(`${url}/readyz`)).ok ? true : undefined
      })
      const admin = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim()
      const issued = await api<{ token: string }>(`${url}/v1/admin/enroll-tokens`, admin, 'POST', {
        site: 'stdin-test',
      })
      const agent = await api<{ agent_id: string; credential: string }>(
        `${url}/v1/agents/enroll`,
        issued.token,
        'POST',
        { hostname: `host-${kind}`, agent_version: 'test' },
      )
      const end = Math.floor(Date.now() / 10_000) * 10_000
      for (const seq of [1, 2]) {
        const ack = await api<{ status: string }>(`${url}/v1/ingest`, agent.credential, 'POST', {
          version: 1,
          agent_id: agent.agent_id,
          seq,
          agent_version: 'test',
          interval: {
            start: end - 20_000 + seq * 10_000 - 10_000,
            end: end - 20_000 + seq * 10_000,
          },
          samples: [{ metric: 'system.uptime', value: 1 }],
        })
        expect(ack.status).toBe('stored')
      }
      const fleet = await api<{ agents: FleetAgent[] }>(`${url}/v1/fleet`, admin, 'GET')
      expect(fleet.agents).toEqual([
        expect.objectContaining({ agent_id: agent.agent_id, batches: 2, last_seq: 2 }),
      ])
    } finally {
      expect(await stop(proc.child, proc.exited)).toBe(0)
    }
  })
})

describe('the demo stores batches whatever its stdin is', () => {
  it.each(KINDS)('stdin %s', async (kind) => {
    const dataDir = join(tmp('stdin-demo'), 'data')
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const proc = start(
      kind,
      ['demo', '--port', String(port), '--data-dir', dataDir, '--interval', '1'],
      {},
    )
    try {
      await waitFor(`demo with stdin ${kind}`, () => {
        if (proc.child.exitCode !== null) throw new Error(`demo exited: ${proc.output()}`)
        return proc.output().includes('Ctrl-C') ? true : undefined
      })
      const admin = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim()
      const agents = await waitFor(
        'two batches from the demo agent',
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`demo exited: ${proc.output()}`)
          const fleet = await api<{ agents: FleetAgent[] }>(`${url}/v1/fleet`, admin, 'GET')
          return fleet.agents.some((a) => a.batches >= 2) ? fleet.agents : undefined
        },
        40_000,
      )
      expect(agents).toHaveLength(1)
      expect(proc.output()).not.toMatch(/inlined and external data/)
    } finally {
      proc.child.kill('SIGINT')
      expect(await proc.exited).toBe(0)
    }
  })
})
