/**
 * Real processes for end-to-end tests: the collector and the agent started from bin/tally.ts as an
 * operator would, configured through the environment, with their JSON logs captured.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runQueryStore } from './store-dump.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const TALLY = join(ROOT, 'bin', 'tally.ts')

export const tmp = (prefix: string): string => mkdtempSync(join(tmpdir(), `tally-${prefix}-`))

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      )
    })
  })
}

export interface LogLine {
  msg?: string
  level?: number
  [key: string]: unknown
}

export class TallyProcess {
  readonly child: ChildProcess
  readonly lines: LogLine[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stderr = ''

  constructor(args: string[], env: Record<string, string>) {
    // A process group of its own: stop('SIGKILL') takes its children (an agent's tcpdump) too.
    this.child = spawn(process.execPath, [TALLY, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let partial = ''
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
      partial += chunk
      const complete = partial.split('\n')
      partial = complete.pop() ?? ''
      for (const line of complete) {
        if (!line.startsWith('{')) continue
        try {
          this.lines.push(JSON.parse(line) as LogLine)
        } catch {
          // a line cut by kill -9; the test reads only complete ones
        }
      }
    })
    this.child.stdout?.resume()
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    )
  }

  logged(msg: string): LogLine[] {
    return this.lines.filter((l) => l.msg === msg)
  }

  /**
   * Signals the process and resolves when it has exited. SIGKILL goes to its whole group, even
   * after the process itself is gone: nothing it started outlives a kill -9 in a test. Other
   * signals go to the process alone, which stops its children itself.
   */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const running = this.child.exitCode === null && this.child.signalCode === null
    if (signal === 'SIGKILL' && this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL')
      } catch {
        // the group has ended
      }
    } else if (running) {
      this.child.kill(signal)
    }
    return this.exited
  }
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      lastError = err
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`)
}

export class CollectorProcess extends TallyProcess {
  readonly url: string
  readonly dataDir: string
  constructor(dataDir: string, port: number, env: Record<string, string> = {}) {
    super(['collector', 'run'], {
      TALLY_DATA_DIR: dataDir,
      TALLY_LISTEN_PORT: String(port),
      TALLY_LOG_LEVEL: 'info',
      ...env,
    })
    this.url = `http://127.0.0.1:${port}`
    this.dataDir = dataDir
  }

  async ready(): Promise<this> {
    await waitFor(`collector at ${this.url}`, async () => {
      if (this.child.exitCode !== null) throw new Error(`collector exited: ${this.stderr}`)
      const response = await fetch(`${this.url}/readyz`)
      return response.ok ? true : undefined
    })
    return this
  }

  adminToken(): string {
    return readFileSync(join(this.dataDir, 'admin.token'), 'utf8').trim()
  }

  async api<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    token = this.adminToken(),
  ): Promise<T> {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
    })
    if (!response.ok)
      throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
    return (await response.json()) as T
  }

  async enrollToken(site: string, maxUses = 1): Promise<string> {
    const issued = await this.api<{ token: string }>('POST', '/v1/admin/enroll-tokens', {
      site,
      max_uses: maxUses,
    })
    return issued.token
  }

  async fleet(): Promise<FleetEntry[]> {
    return (await this.api<{ agents: FleetEntry[] }>('GET', '/v1/fleet')).agents
  }
}

export interface FleetEntry {
  agent_id: string
  host: string
  site: string
  version: string | null
  last_seen: string | null
  last_seq: number | null
  batches: number
}

export class AgentProcess extends TallyProcess {
  constructor(stateDir: string, collectorUrl: string, env: Record<string, string> = {}) {
    super(['agent', 'run'], {
      TALLY_STATE_DIR: stateDir,
      TALLY_COLLECTOR_URL: collectorUrl,
      TALLY_INTERVAL_SECONDS: '1',
      TALLY_LOG_LEVEL: 'info',
      // No capture unless a test names its interface (a bridge or lo of its own): otherwise the
      // agent would capture on this machine's real interface, and a kill -9 of the agent would
      // leave its tcpdump running.
      TALLY_CAPTURE_INTERFACE: 'none',
      ...env,
    })
  }

  /** The spool's depth the agent logged as it stopped (what its drain could not deliver). */
  leftAtStop(): number | undefined {
    const stopped = this.logged('agent stopped').at(-1)
    return stopped === undefined ? undefined : Number(stopped.spool_depth)
  }

  /** Sequence numbers this process put into its spool. */
  spooledSeqs(): number[] {
    return this.logged('batch spooled').map((l) => Number(l.seq))
  }
}

/** The seqs of the records in an agent's spool on disk (agent/ship/spool.ts names the files). */
export function spooledOnDisk(stateDir: string): number[] {
  const dir = join(stateDir, 'spool')
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .map((name) => /^(\d{16})\.batch$/.exec(name)?.[1])
    .filter((seq): seq is string => seq !== undefined)
    .map(Number)
}

/**
 * Reads the embedded engine of a stopped collector, from a separate process: chDB binds one data
 * directory per process, and a test may look at several.
 */
export async function queryStore<T>(dataDir: string, sql: string): Promise<T[]> {
  return JSON.parse(await runQueryStore([dataDir, sql])) as T[]
}
