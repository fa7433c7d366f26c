/**
 * Tier T host metrics and inventory for one agent interval.
 *
 * Everything comes from procfs, sysfs, statfs(2), /etc/os-release and `node:os`, read directly:
 * counters (CPU jiffies, interface counters) so the collector can be pointed at a fixture tree and
 * deltas are exact, and the rest because a library for it (systeminformation) cost the running
 * agent 6 MB of memory and a `df` process every interval (bench/README.md, "Agent footprint").
 * Nothing here needs root or starts a process. A source that fails costs only its own metric
 * group: the failure is named in `lastErrors` and the rest of the interval is still reported.
 */
import { createReadStream } from 'node:fs'
import { readdir, readFile, statfs } from 'node:fs/promises'
import { isIP } from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type {
  HostInventory,
  HostMetricName,
  HostSample,
  SampleAttributes,
  TCP_STATES,
} from '../../protocol/v1.ts'

export interface HostMetricsOptions {
  /** Where procfs is: /proc, or a fixture tree. Mounts come from its self/mountinfo. */
  procRoot?: string
  /** Where sysfs is: /sys, or a fixture tree (class/net/NAME/{address,operstate,speed}). */
  sysRoot?: string
  /** The os-release files to try, in order (os-release(5)). */
  osReleaseFiles?: readonly string[]
}

/**
 * A statfs(2) that has not answered by then (a hung network mount) is reported as failed for this
 * interval; the mount is not asked again until that call returns, so it holds one thread at most.
 */
const STATFS_TIMEOUT_MS = 2_000

type TcpState = (typeof TCP_STATES)[number]

/** Cumulative jiffies of the aggregate `cpu` line of /proc/stat, in our mode names. */
interface CpuTimes {
  user: number
  nice: number
  system: number
  idle: number
  iowait: number
  irq: number
  steal: number
}

const INTERFACE_COUNTERS = [
  'rxBytes',
  'rxPackets',
  'rxErrors',
  'rxDropped',
  'txBytes',
  'txPackets',
  'txErrors',
  'txDropped',
] as const
type InterfaceCounter = (typeof INTERFACE_COUNTERS)[number]
type InterfaceCounters = Record<InterfaceCounter, number>

/** Column of each counter among the 16 numbers after `name:` in /proc/net/dev. */
const NET_DEV_COLUMN: Record<InterfaceCounter, number> = {
  rxBytes: 0,
  rxPackets: 1,
  rxErrors: 2,
  rxDropped: 3,
  txBytes: 8,
  txPackets: 9,
  txErrors: 10,
  txDropped: 11,
}

const INTERFACE_METRICS: ReadonlyArray<{
  metric: HostMetricName
  receive: InterfaceCounter
  transmit: InterfaceCounter
}> = [
  { metric: 'system.network.io', receive: 'rxBytes', transmit: 'txBytes' },
  { metric: 'system.network.packet.count', receive: 'rxPackets', transmit: 'txPackets' },
  { metric: 'system.network.errors', receive: 'rxErrors', transmit: 'txErrors' },
  { metric: 'system.network.packet.dropped', receive: 'rxDropped', transmit: 'txDropped' },
]

/** The kernel's `st` codes (include/net/tcp_states.h) as /proc/net/tcp prints them. */
const TCP_STATE_BY_CODE: ReadonlyMap<number, TcpState> = new Map([
  [0x01, 'established'],
  [0x02, 'syn_sent'],
  [0x03, 'syn_recv'],
  [0x04, 'fin_wait_1'],
  [0x05, 'fin_wait_2'],
  [0x06, 'time_wait'],
  [0x07, 'close'],
  [0x08, 'close_wait'],
  [0x09, 'last_ack'],
  [0x0a, 'listen'],
  [0x0b, 'closing'],
])

/**
 * Privacy: this pattern skips the slot, local and remote address columns without capturing them
 * and captures only the hex state. Tier T carries no remote (or local) endpoint, so addresses are
 * never extracted into a value, let alone kept; only per-state counts leave this module.
 */
const TCP_STATE_COLUMN = /^\s*\d+:\s+\S+\s+\S+\s+([0-9A-Fa-f]{2})\s/

/**
 * Filesystem types that describe no persistent storage, or storage that is full by construction:
 * kernel and memory-backed pseudo filesystems (tmpfs etc. mirror RAM, already in memory metrics),
 * and read-only images (squashfs snaps, iso9660 media) that always report 100 % used and would only
 * trip disk-full alerts. `overlay` is kept: it is a container's root, and its usage is the upper
 * directory's real disk.
 */
const PSEUDO_FILESYSTEM_TYPES: ReadonlySet<string> = new Set([
  'autofs',
  'binfmt_misc',
  'bpf',
  'cgroup',
  'cgroup2',
  'configfs',
  'debugfs',
  'devfs',
  'devpts',
  'devtmpfs',
  'efivarfs',
  'fusectl',
  'hugetlbfs',
  'iso9660',
  'mqueue',
  'none',
  'nsfs',
  'proc',
  'pstore',
  'ramfs',
  'rpc_pipefs',
  'securityfs',
  'selinuxfs',
  'squashfs',
  'sysfs',
  'tmpfs',
  'tracefs',
  'udf',
])

/** Same rule as the wire schema's names of local devices and mount points. */
const LOCAL_NAME = /^[\x20-\x7e]{1,256}$/

export class HostMetricsCollector {
  readonly #procRoot: string
  readonly #sysRoot: string
  readonly #osReleaseFiles: readonly string[]
  /** Mount points whose statfs call is still out (see STATFS_TIMEOUT_MS). */
  readonly #statfsPending = new Set<string>()
  #cpuBaseline: CpuTimes | undefined
  /** Absent until the first collect(); then the counters of every interface seen last time. */
  #interfaceBaseline: Map<string, InterfaceCounters> | undefined
  #lastErrors: readonly string[] = []

  constructor(options: HostMetricsOptions = {}) {
    this.#procRoot = options.procRoot ?? '/proc'
    this.#sysRoot = options.sysRoot ?? '/sys'
    this.#osReleaseFiles = options.osReleaseFiles ?? ['/etc/os-release', '/usr/lib/os-release']
  }

  /** What failed in the most recent collect() or inventory() call, one entry per source. */
  get lastErrors(): readonly string[] {
    return this.#lastErrors
  }

  /** Samples for the interval since the previous call. The first call only sets baselines for counters. */
  async collect(): Promise<HostSample[]> {
    const errors: string[] = []
    const guarded = async (
      source: string,
      read: () => Promise<HostSample[]>,
    ): Promise<HostSample[]> => {
      try {
        return await read()
      } catch (error) {
        errors.push(`${source}: ${describe(error)}`)
        return []
      }
    }
    const groups = await Promise.all([
      guarded('cpu', () => this.#cpuUtilization()),
      guarded('load average', async () => loadAverage()),
      guarded('memory', () => this.#memory()),
      guarded('filesystem', () => this.#filesystems(errors)),
      guarded('network', () => this.#interfaceCounters(errors)),
      guarded('tcp connections', () => this.#tcpConnections()),
      guarded('uptime', async () => [sample('system.uptime', os.uptime())]),
    ])
    this.#lastErrors = errors
    // A NaN or infinite value would fail the wire schema and take the whole batch with it.
    return groups.flat().filter((s) => Number.isFinite(s.value))
  }

  /** The host's own description. Its name is not here: the collector takes it from the credential. */
  async inventory(): Promise<HostInventory> {
    const errors: string[] = []
    const osData = {
      platform: os.platform(),
      distro: '',
      release: os.release(),
      kernel: os.release(),
      arch: os.arch(),
    }
    try {
      Object.assign(osData, await this.#distribution())
    } catch (error) {
      errors.push(`os info: ${describe(error)}`)
    }
    let interfaces: HostInventory['interfaces'] = []
    try {
      interfaces = await this.#interfaces()
    } catch (error) {
      errors.push(`network interfaces: ${describe(error)}`)
    }
    const cpus = os.cpus()
    this.#lastErrors = errors
    return {
      os: {
        platform: clip(osData.platform, 64),
        distro: clip(osData.distro, 128),
        release: clip(osData.release, 128),
        kernel: clip(osData.kernel, 128),
        arch: clip(osData.arch, 32),
      },
      cpu: { model: clip(cpus[0]?.model.trim() ?? '', 256), cores: cpus.length },
      memory_bytes: os.totalmem(),
      interfaces,
    }
  }

  async #cpuUtilization(): Promise<HostSample[]> {
    // Cleared first: after a failed read the next interval would span two, so it is a baseline.
    const previous = this.#cpuBaseline
    this.#cpuBaseline = undefined
    const current = parseCpuTimes(await readFile(join(this.#procRoot, 'stat'), 'utf8'))
    this.#cpuBaseline = current
    if (previous === undefined) return []
    const delta = {} as CpuTimes
    let total = 0
    for (const mode of Object.keys(current) as Array<keyof CpuTimes>) {
      delta[mode] = current[mode] - previous[mode]
      // Jiffies only grow; a decrease means the baseline is not comparable (another proc tree,
      // CPU hot-unplug), so this interval is a new baseline rather than a made-up value.
      if (delta[mode] < 0) return []
      total += delta[mode]
    }
    // Less than one tick since the last call: there is no interval to divide over.
    if (total === 0) return []
    return (Object.keys(delta) as Array<keyof CpuTimes>).map((mode) =>
      sample('system.cpu.utilization', delta[mode] / total, { 'cpu.mode': mode }),
    )
  }

  async #memory(): Promise<HostSample[]> {
    const m = parseMeminfo(await readFile(join(this.#procRoot, 'meminfo'), 'utf8'))
    const total = m.get('MemTotal')
    const free = m.get('MemFree')
    if (total === undefined || free === undefined || total <= 0) {
      throw new Error('meminfo has no MemTotal or MemFree')
    }
    const buffers = m.get('Buffers') ?? 0
    // As `free` and the OpenTelemetry host metrics count it: reclaimable slab is cache too.
    const cached = (m.get('Cached') ?? 0) + (m.get('SReclaimable') ?? 0)
    let used = total - free - buffers - cached
    // Cached can exceed what is left (shmem is counted in it); fall back to "not free".
    if (used < 0) used = total - free
    used = Math.min(Math.max(used, 0), total)
    // used + free + buffers + cached = total; `available` overlaps free and cached, so it is
    // reported for alerting but must not be summed with the others.
    const samples = [
      sample('system.memory.usage', used, { 'system.memory.state': 'used' }),
      sample('system.memory.usage', free, { 'system.memory.state': 'free' }),
      sample('system.memory.usage', buffers, { 'system.memory.state': 'buffers' }),
      sample('system.memory.usage', cached, { 'system.memory.state': 'cached' }),
    ]
    const available = m.get('MemAvailable')
    if (available !== undefined) {
      samples.push(sample('system.memory.usage', available, { 'system.memory.state': 'available' }))
    }
    samples.push(
      sample('system.memory.limit', total),
      sample('system.memory.utilization', used / total),
    )
    return samples
  }

  /**
   * Deltas of the interface counters since the previous call, never negative:
   * - a counter lower than before was reset (driver reload, interface recreated under the same
   *   name, or a 32-bit counter wrapped): it counts from zero, so the delta is its current value.
   *   For a wrap that undercounts by the part before the wrap; we cannot know the counter width.
   * - an interface seen for the first time (new, renamed, or back after missing an interval) only
   *   sets its baseline; its traffic shows from the next interval on.
   * - an interface that is gone is forgotten; what it did after the last call is lost with it.
   * The kernel's counters are 64-bit; as doubles they are exact up to 2^53 bytes (8 PiB), which
   * an interface counter does not reach in practice, and beyond that a delta is off by a few
   * units at most.
   */
  async #interfaceCounters(errors: string[]): Promise<HostSample[]> {
    // Cleared first: after a failed read the next interval would span two, so it is a baseline.
    const previous = this.#interfaceBaseline
    this.#interfaceBaseline = undefined
    const text = await readFile(join(this.#procRoot, 'net', 'dev'), 'utf8')
    const { counters: current, malformed } = parseNetDev(text)
    if (malformed > 0) errors.push(`network: skipped ${malformed} malformed line(s) in net/dev`)
    this.#interfaceBaseline = current
    if (previous === undefined) return []
    const samples: HostSample[] = []
    for (const [name, now] of current) {
      const before = previous.get(name)
      if (before === undefined) continue
      for (const { metric, receive, transmit } of INTERFACE_METRICS) {
        for (const [direction, counter] of [
          ['receive', receive],
          ['transmit', transmit],
        ] as const) {
          const delta =
            now[counter] >= before[counter] ? now[counter] - before[counter] : now[counter]
          samples.push(
            sample(metric, delta, {
              'network.interface.name': name,
              'network.io.direction': direction,
            }),
          )
        }
      }
    }
    return samples
  }

  /**
   * Usage of every mounted filesystem that stores something (not the pseudo and read-only image
   * types), once per device: a device mounted at several places (bind mounts, a container's
   * files) is reported at its shortest mount point, as df(1) does. Blocks are statfs(2)'s, so
   * used + free + reserved = limit as df counts them.
   */
  async #filesystems(errors: string[]): Promise<HostSample[]> {
    const mounts = parseMountinfo(await readFile(join(this.#procRoot, 'self', 'mountinfo'), 'utf8'))
    const byDevice = new Map<string, Mount>()
    let unprintable = false
    for (const mount of mounts) {
      if (PSEUDO_FILESYSTEM_TYPES.has(mount.type)) continue
      // The wire schema bounds these names; a mount point that does not fit is left out, not mangled.
      if (![mount.device, mount.mount, mount.type].every((name) => LOCAL_NAME.test(name))) {
        unprintable = true
        continue
      }
      const kept = byDevice.get(mount.deviceId)
      if (kept === undefined || mount.mount.length < kept.mount.length) {
        byDevice.set(mount.deviceId, mount)
      }
    }
    if (unprintable) {
      errors.push('filesystem: skipped a mount whose device, path or type is not printable ASCII')
    }
    if (byDevice.size === 0) throw new Error('no filesystems mounted')
    const measured = await Promise.all(
      [...byDevice.values()].map(async (mount) => {
        try {
          return { mount, stats: await this.#statfs(mount.mount) }
        } catch (error) {
          errors.push(`filesystem ${mount.mount}: ${describe(error)}`)
          return undefined
        }
      }),
    )
    const samples: HostSample[] = []
    for (const entry of measured) {
      if (entry === undefined) continue
      const { mount, stats } = entry
      const size = stats.blocks * stats.bsize
      if (!(size > 0)) continue
      const used = clamp((stats.blocks - stats.bfree) * stats.bsize, 0, size)
      const free = clamp(stats.bavail * stats.bsize, 0, size - used)
      // Blocks kept for root: neither used nor available to users, so used + free + reserved = limit.
      const reserved = size - used - free
      const base = {
        'system.device': mount.device,
        'system.filesystem.mountpoint': mount.mount,
        'system.filesystem.type': mount.type,
      }
      samples.push(
        sample('system.filesystem.usage', used, { ...base, 'system.filesystem.state': 'used' }),
        sample('system.filesystem.usage', free, { ...base, 'system.filesystem.state': 'free' }),
        sample('system.filesystem.usage', reserved, {
          ...base,
          'system.filesystem.state': 'reserved',
        }),
        sample('system.filesystem.limit', size, base),
        sample('system.filesystem.utilization', used / size, base),
      )
    }
    return samples
  }

  async #statfs(
    path: string,
  ): Promise<{ bsize: number; blocks: number; bfree: number; bavail: number }> {
    if (this.#statfsPending.has(path)) throw new Error('a previous statfs has not returned yet')
    this.#statfsPending.add(path)
    const call = statfs(path).finally(() => this.#statfsPending.delete(path))
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`statfs did not answer within ${STATFS_TIMEOUT_MS} ms`)),
        STATFS_TIMEOUT_MS,
      )
    })
    try {
      return await Promise.race([call, late])
    } finally {
      clearTimeout(timer)
      call.catch(() => {}) // a late failure after the timeout is already reported
    }
  }

  /** Distribution name and release from os-release(5), as `NAME` and `VERSION` say them. */
  async #distribution(): Promise<{ distro: string; release: string }> {
    let lastError: unknown
    for (const file of this.#osReleaseFiles) {
      try {
        const fields = parseOsRelease(await readFile(file, 'utf8'))
        const version = (fields.get('VERSION') ?? '').split('(')[0]?.trim() ?? ''
        return {
          distro: fields.get('NAME') ?? fields.get('ID') ?? '',
          release: version || fields.get('VERSION_ID') || os.release(),
        }
      } catch (error) {
        lastError = error
      }
    }
    throw lastError ?? new Error('no os-release file')
  }

  /**
   * The host's own interfaces from sysfs (every one, with or without an address), with their
   * addresses from `os.networkInterfaces()`: both are the host's own, which tier T may carry.
   */
  async #interfaces(): Promise<HostInventory['interfaces']> {
    const classNet = join(this.#sysRoot, 'class', 'net')
    const names = (await readdir(classNet)).filter((name) => LOCAL_NAME.test(name)).sort()
    const osAddresses = os.networkInterfaces()
    const attribute = async (name: string, file: string): Promise<string | undefined> => {
      try {
        return (await readFile(join(classNet, name, file), 'utf8')).trim()
      } catch {
        // Absent or unreadable (speed of a virtual link reads as EINVAL): not known.
        return undefined
      }
    }
    const interfaces: HostInventory['interfaces'] = []
    for (const name of names.slice(0, 256)) {
      const [mac, operstate, speed] = await Promise.all([
        attribute(name, 'address'),
        attribute(name, 'operstate'),
        attribute(name, 'speed'),
      ])
      const addresses = [
        ...new Set(
          (osAddresses[name] ?? [])
            // A link-local IPv6 carries its zone (`fe80::1%eth0`), which is not an address.
            .map((a) => a.address.split('%')[0] ?? '')
            .filter((a) => isIP(a) !== 0),
        ),
      ].slice(0, 64)
      const mbps = speed === undefined ? Number.NaN : Number(speed)
      interfaces.push({
        name,
        mac: clip(mac, 32),
        addresses,
        speed_mbps: Number.isFinite(mbps) && mbps >= 0 ? mbps : null,
        // Drivers without carrier tracking (loopback, tun, wireguard) say `unknown` while they pass
        // traffic; an interface that is administratively or physically down says `down`.
        up: operstate === 'up' || operstate === 'unknown',
      })
    }
    return interfaces
  }

  /** Every TCP state with its count, zeros included, so dashboards see a stable set of series. */
  async #tcpConnections(): Promise<HostSample[]> {
    const counts = new Map<TcpState, number>()
    for (const state of TCP_STATE_BY_CODE.values()) counts.set(state, 0)
    await countTcpStates(join(this.#procRoot, 'net', 'tcp'), counts)
    try {
      await countTcpStates(join(this.#procRoot, 'net', 'tcp6'), counts)
    } catch (error) {
      // No tcp6 means IPv6 is disabled: there are no IPv6 connections to count.
      if (!isMissingFile(error)) throw error
    }
    return [...counts].map(([state, count]) =>
      sample('system.network.connection.count', count, {
        'network.transport': 'tcp',
        'network.connection.state': state,
      }),
    )
  }
}

function sample(
  metric: HostMetricName,
  value: number,
  attributes: SampleAttributes = {},
): HostSample {
  return { metric, value, attributes }
}

function loadAverage(): HostSample[] {
  const [one, five, fifteen] = os.loadavg()
  return [
    sample('system.cpu.load_average.1m', one ?? 0),
    sample('system.cpu.load_average.5m', five ?? 0),
    sample('system.cpu.load_average.15m', fifteen ?? 0),
  ]
}

/** Reads the aggregate `cpu` line: user nice system idle iowait irq softirq steal [guest guest_nice]. */
function parseCpuTimes(stat: string): CpuTimes {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '))
  if (line === undefined) throw new Error('stat has no aggregate cpu line')
  const fields = line.trim().split(/\s+/).slice(1).map(Number)
  if (fields.length < 4 || fields.some((n) => !Number.isFinite(n) || n < 0)) {
    throw new Error('stat cpu line is malformed')
  }
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    fields
  // guest and guest_nice are already inside user and nice; adding them would count them twice.
  // The wire format has no softirq mode: interrupt time is one mode, hard and soft together.
  return { user, nice, system, idle, iowait, irq: irq + softirq, steal }
}

/** `Key:   123 kB` lines, in bytes. */
function parseMeminfo(text: string): Map<string, number> {
  const values = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?\s*$/.exec(line)
    if (match?.[1] === undefined || match[2] === undefined) continue
    const unit = line.trimEnd().endsWith('kB') ? 1024 : 1
    values.set(match[1], Number(match[2]) * unit)
  }
  return values
}

/**
 * /proc/net/dev: two header lines, then `name: 16 counters` (8 receive, 8 transmit). A line that
 * does not have that shape is skipped and counted, so one odd line cannot hide the others.
 */
function parseNetDev(text: string): {
  counters: Map<string, InterfaceCounters>
  malformed: number
} {
  const counters = new Map<string, InterfaceCounters>()
  let malformed = 0
  for (const line of text.split('\n')) {
    // The two header lines are the ones with column separators.
    if (line.trim() === '' || line.includes('|')) continue
    const colon = line.indexOf(':')
    const name = colon > 0 ? line.slice(0, colon).trim() : ''
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
    if (
      !LOCAL_NAME.test(name) ||
      counters.has(name) ||
      fields.length < 16 ||
      fields.some((f) => !/^\d+$/.test(f))
    ) {
      malformed++
      continue
    }
    const values = {} as InterfaceCounters
    for (const counter of INTERFACE_COUNTERS)
      values[counter] = Number(fields[NET_DEV_COLUMN[counter]])
    counters.set(name, values)
  }
  return { counters, malformed }
}

/** Streams the file so a host with many connections costs no more memory than one with few. */
async function countTcpStates(path: string, counts: Map<TcpState, number>): Promise<void> {
  const stream = createReadStream(path, { encoding: 'utf8' })
  // Surface open errors (ENOENT) as a rejection rather than an unhandled 'error' event.
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve())
    stream.once('error', reject)
  })
  await opened
  for await (const line of createInterface({
    input: stream,
    crlfDelay: Number.POSITIVE_INFINITY,
  })) {
    const code = TCP_STATE_COLUMN.exec(line)?.[1]
    if (code === undefined) continue
    const state = TCP_STATE_BY_CODE.get(Number.parseInt(code, 16))
    if (state !== undefined) counts.set(state, (counts.get(state) ?? 0) + 1)
  }
}

interface Mount {
  /** major:minor of the device: one filesystem mounted at several places has one. */
  deviceId: string
  device: string
  mount: string
  type: string
}

/**
 * /proc/self/mountinfo (proc(5)): `id parent major:minor root mount-point options [optional
 * fields] - type source super-options`, with space, tab, newline and backslash in paths written
 * as octal escapes. A line without that shape is skipped.
 */
function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = []
  const unescaped = (field: string) =>
    field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
      String.fromCharCode(Number.parseInt(octal, 8)),
    )
  for (const line of text.split('\n')) {
    const fields = line.split(' ')
    const separator = fields.indexOf('-', 6)
    const deviceId = fields[2]
    const mount = fields[4]
    const type = fields[separator + 1]
    const source = fields[separator + 2]
    if (separator < 0 || !deviceId || !mount || !type || source === undefined) continue
    mounts.push({ deviceId, device: unescaped(source), mount: unescaped(mount), type })
  }
  return mounts
}

/** os-release(5): `KEY=value` lines, the value optionally in single or double quotes. */
function parseOsRelease(text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (match?.[1] === undefined || match[2] === undefined) continue
    let value = match[2]
    const quote = value[0]
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1).replace(/\\(["'$`\\])/g, '$1')
    }
    fields.set(match[1], value)
  }
  return fields
}

function clip(value: string | undefined, max: number): string {
  return (value ?? '').slice(0, max)
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(Number.isFinite(value) ? value : min, min), max)
}

function isMissingFile(error: unknown): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === 'ENOENT'
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
