/**
 * A small LAN on this machine for end-to-end capture tests: a bridge in the root namespace and one
 * network namespace per test host, each joined to the bridge by a veth pair, with IPv4 addresses
 * in a /24 of 10.99.0.0/16. IPv6 and multicast are off on every link, so the bridge carries only
 * what the test sends (and ARP). Nothing is routed anywhere else.
 *
 * Also: the test hosts' servers (servers.ts), a reference capture with tcpdump, and tshark's
 * count of a reference capture.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)
const ROOT = new URL('../../../', import.meta.url).pathname

/** Runs a program, resolving with its stdout; the error names the command and its stderr. */
export async function run(program: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(program, args, { maxBuffer: 256 * 1024 * 1024 })
    return stdout
  } catch (error) {
    const e = error as Error & { stderr?: string }
    throw new Error(`${program} ${args.join(' ')} failed: ${e.message} ${e.stderr ?? ''}`)
  }
}

const quietly = async (program: string, args: string[]): Promise<void> => {
  await run(program, args).catch(() => undefined)
}

function onPath(program: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, program), constants.X_OK)
      return true
    } catch {
      // not in this directory
    }
  }
  return false
}

/**
 * Why these tests cannot run here, or undefined when they can: they need Linux, root (network
 * namespaces, capture) and the given programs.
 */
export function lanUnavailable(programs: string[]): string | undefined {
  if (process.platform !== 'linux')
    return `needs Linux network namespaces (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, veth pairs, packet capture)'
  const missing = programs.filter((p) => !onPath(p))
  if (missing.length > 0)
    return `needs ${missing.join(', ')} on PATH (apt-get install iproute2 procps tcpdump tshark curl dnsutils iputils-ping)`
  return undefined
}

export interface LanHost {
  /** Network namespace name. */
  ns: string
  address: string
}

/**
 * The owner's mark in every name: this process's pid in base 36 (at most 5 characters, so that
 * a veth name stays within the kernel's 15). Two runs of the same test at once (two checkouts,
 * two people on one machine) get a LAN each instead of tearing down each other's.
 */
const OWNER = process.pid.toString(36)

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * `new Lan('1', '10.99.1', 2)` in process 1234 (`ya` in base 36): bridge `tlybr1ya`, namespaces
 * `tlyA1ya` (10.99.1.2) and `tlyB1ya` (10.99.1.3), veths `tlyA1yah` (root side, on the bridge)
 * and `tlyA1yan` (in the namespace).
 */
export class Lan {
  readonly id: string
  readonly bridge: string
  readonly subnet: string
  readonly hosts: LanHost[]
  readonly #children: ChildProcess[] = []

  constructor(id: string, subnet: string, hostCount: number, owner = OWNER) {
    if (!/^[0-9]$/.test(id)) throw new RangeError(`a LAN id is one digit, not ${id}`)
    this.id = id
    this.subnet = subnet
    this.bridge = `tlybr${id}${owner}`
    this.hosts = Array.from({ length: hostCount }, (_, i) => ({
      ns: `tly${String.fromCharCode(65 + i)}${id}${owner}`,
      address: `${subnet}.${i + 2}`,
    }))
  }

  get prefix(): string {
    return `${this.subnet}.0/24`
  }

  host(index: number): LanHost {
    const host = this.hosts[index]
    if (host === undefined) throw new Error(`no host ${index}`)
    return host
  }

  /** Builds the LAN, first removing what a crashed earlier run may have left. */
  async setup(): Promise<void> {
    await this.#removeAbandoned()
    await this.teardown()
    const bridge = this.bridge
    await run('ip', ['link', 'add', bridge, 'type', 'bridge'])
    await run('sysctl', ['-qew', `net.ipv6.conf.${bridge}.disable_ipv6=1`])
    await run('ip', ['link', 'set', bridge, 'multicast', 'off', 'up'])
    for (const { ns, address } of this.hosts) {
      const outer = `${ns}h`
      const inner = `${ns}n`
      await run('ip', ['netns', 'add', ns])
      await this.exec(ns, 'sysctl', [
        '-qew',
        'net.ipv6.conf.all.disable_ipv6=1',
        'net.ipv6.conf.default.disable_ipv6=1',
      ])
      await run('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner])
      await run('sysctl', ['-qew', `net.ipv6.conf.${outer}.disable_ipv6=1`])
      await run('sysctl', ['-qew', `net.ipv6.conf.${inner}.disable_ipv6=1`])
      await run('ip', ['link', 'set', inner, 'multicast', 'off', 'netns', ns])
      await run('ip', ['link', 'set', outer, 'multicast', 'off', 'master', bridge, 'up'])
      await this.exec(ns, 'ip', ['addr', 'add', `${address}/24`, 'dev', inner])
      await this.exec(ns, 'ip', ['link', 'set', inner, 'up'])
      await this.exec(ns, 'ip', ['link', 'set', 'lo', 'up'])
    }
  }

  /** Stops what runs in the namespaces and removes them, the veths and the bridge. */
  async teardown(): Promise<void> {
    for (const child of this.#children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    const existing = await run('ip', ['netns', 'list']).catch(() => '')
    for (const { ns } of this.hosts) {
      if (!existing.split('\n').some((line) => line.split(' ')[0] === ns)) continue
      // Processes left in our namespace by a crashed earlier run of this test.
      const pids = await run('ip', ['netns', 'pids', ns]).catch(() => '')
      for (const pid of pids.split('\n').filter((p) => /^\d+$/.test(p))) {
        try {
          process.kill(Number(pid), 'SIGKILL')
        } catch {
          // already gone
        }
      }
      await quietly('ip', ['netns', 'del', ns])
    }
    for (const { ns } of this.hosts) await quietly('ip', ['link', 'del', `${ns}h`])
    await quietly('ip', ['link', 'del', this.bridge])
  }

  /**
   * Removes the LANs with this id whose owner is no longer running (a run killed before its
   * teardown), and those of older runs that put no owner in the names.
   */
  async #removeAbandoned(): Promise<void> {
    const namespaces = (await run('ip', ['netns', 'list']).catch(() => ''))
      .split('\n')
      .map((line) => /^tly[A-Z](\d)([0-9a-z]*)(?: |$)/.exec(line))
    const bridges = (await run('ip', ['-o', 'link', 'show', 'type', 'bridge']).catch(() => ''))
      .split('\n')
      .map((line) => /^\d+: tlybr(\d)([0-9a-z]*)[:@]/.exec(line))
    const owners = new Set<string>()
    for (const match of [...namespaces, ...bridges]) {
      const [, id, owner] = match ?? []
      if (id !== this.id || owner === undefined || owner === OWNER) continue
      if (owner === '' || !alive(Number.parseInt(owner, 36))) owners.add(owner)
    }
    for (const owner of owners) {
      await new Lan(this.id, this.subnet, this.hosts.length, owner).teardown()
    }
  }

  /** Runs a program inside a namespace and resolves with its stdout. */
  exec(ns: string, program: string, args: string[]): Promise<string> {
    return run('ip', ['netns', 'exec', ns, program, ...args])
  }

  /** Starts servers.ts inside a namespace; resolves when it listens. */
  async startServers(ns: string, options: { httpPort: number; answer: string }): Promise<void> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        join(ROOT, 'test', 'e2e', 'netns', 'servers.ts'),
        '--http-port',
        String(options.httpPort),
        '--answer',
        options.answer,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    this.#children.push(child)
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`servers in ${ns}: no answer ${stderr}`)),
        30_000,
      )
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        if (chunk.includes('ready')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`servers in ${ns} exited (${code}): ${stderr}`))
      })
    })
  }
}

/** A reference capture of everything on an interface, full frames, with tcpdump. */
export class RefCapture {
  readonly #child: ChildProcess
  readonly #exited: Promise<void>
  readonly file: string
  stderr = ''

  private constructor(iface: string, file: string) {
    this.file = file
    this.#child = spawn('tcpdump', ['-i', iface, '-n', '-U', '-w', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    })
    this.#child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
    })
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()))
  }

  /** Starts tcpdump and waits until it is listening. */
  static async start(iface: string, file: string): Promise<RefCapture> {
    const capture = new RefCapture(iface, file)
    const deadline = Date.now() + 30_000
    while (!capture.stderr.includes('listening on')) {
      if (capture.#child.exitCode !== null || Date.now() > deadline)
        throw new Error(`reference tcpdump did not start: ${capture.stderr}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    return capture
  }

  /** Stops tcpdump; resolves with its count of packets dropped by the kernel. */
  async stop(): Promise<{ dropped: number }> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGINT')
    await this.#exited
    const dropped = /(\d+) packets? dropped by kernel/.exec(this.stderr)
    return { dropped: dropped ? Number(dropped[1]) : Number.NaN }
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null)
      this.#child.kill('SIGKILL')
  }
}

export interface Counted {
  packets: number
  /** Sum of frame.len: the frames' original lengths. */
  bytes: number
  /** Distinct conversations (see `tsharkCount`). */
  flows: number
}

/**
 * tshark's count of the frames of a capture that match a display filter: packets, bytes
 * (frame.len) and conversations, by tshark's stream index for TCP and UDP and by address pair
 * otherwise (all ICMP between two addresses is one conversation).
 */
export async function tsharkCount(file: string, filter: string): Promise<Counted> {
  const out = await run('tshark', [
    '-r',
    file,
    '-n',
    '-Y',
    filter,
    '-T',
    'fields',
    '-E',
    'separator=/t',
    '-e',
    'frame.len',
    '-e',
    'tcp.stream',
    '-e',
    'udp.stream',
    '-e',
    'ip.src',
    '-e',
    'ip.dst',
  ])
  const conversations = new Set<string>()
  let packets = 0
  let bytes = 0
  for (const line of out.split('\n')) {
    if (line.trim() === '') continue
    const [len = '', tcp = '', udp = '', src = '', dst = ''] = line.split('\t')
    packets += 1
    bytes += Number(len)
    const first = (s: string) => s.split(',')[0] ?? ''
    if (tcp !== '') conversations.add(`tcp ${first(tcp)}`)
    else if (udp !== '') conversations.add(`udp ${first(udp)}`)
    else conversations.add(`ip ${[first(src), first(dst)].sort().join(' ')}`)
  }
  return { packets, bytes, flows: conversations.size }
}

/** Verbose text of every frame of a capture (tshark -V -x: decoded fields and hex/ASCII dump). */
export async function tsharkText(file: string): Promise<string> {
  return run('tshark', ['-r', file, '-n', '-V', '-x'])
}
