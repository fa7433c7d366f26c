/**
 * Tier T host metrics and inventory for one agent interval.
 *
 * Counters (CPU jiffies, interface counters) come from procfs directly, so the collector can be
 * pointed at a fixture tree and deltas are exact; gauges that need no history come from `node:os`
 * and `systeminformation`. Nothing here needs root. A source that fails costs only its own metric
 * group: the failure is named in `lastErrors` and the rest of the interval is still reported.
 */
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Systeminformation } from 'systeminformation'
import si from 'systeminformation'
import { z } from 'zod'
import type {
  HostInventory,
  HostMetricName,
  HostSample,
  SampleAttributes,
  TCP_STATES,
} from '../../protocol/v1.ts'

export interface HostMetricsOptions {
  procRoot?: string
}

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
const HOST_ADDRESS = z.union([z.ipv4(), z.ipv6()])

export class HostMetricsCollector {
  readonly #procRoot: string
  #cpuBaseline: CpuTimes | undefined
  /** Absent until the first collect(); then the counters of every interface seen last time. */
  #interfaceBaseline: Map<string, InterfaceCounters> | undefined
  #lastErrors: readonly string[] = []

  constructor(options: HostMetricsOptions = {}) {
    this.#procRoot = options.procRoot ?? '/proc'
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
      guarded('filesystem', () => filesystems(errors)),
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
    let osData: Pick<
      Systeminformation.OsData,
      'platform' | 'distro' | 'release' | 'kernel' | 'arch'
    >
    try {
      osData = await si.osInfo()
    } catch (error) {
      errors.push(`os info: ${describe(error)}`)
      osData = {
        platform: os.platform(),
        distro: '',
        release: os.release(),
        kernel: os.release(),
        arch: os.arch(),
      }
    }
    let interfaces: HostInventory['interfaces'] = []
    try {
      interfaces = await hostInterfaces()
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

async function filesystems(errors: string[]): Promise<HostSample[]> {
  const entries = await si.fsSize()
  if (entries.length === 0) throw new Error('no filesystems reported')
  const samples: HostSample[] = []
  for (const fs of entries) {
    if (PSEUDO_FILESYSTEM_TYPES.has(fs.type) || !(fs.size > 0)) continue
    // The wire schema bounds these names; a mount point that does not fit is left out, not mangled.
    if (!LOCAL_NAME.test(fs.fs) || !LOCAL_NAME.test(fs.mount) || !LOCAL_NAME.test(fs.type)) {
      errors.push('filesystem: skipped a mount whose device, path or type is not printable ASCII')
      continue
    }
    const used = clamp(fs.used, 0, fs.size)
    const free = clamp(
      Number.isFinite(fs.available) ? fs.available : fs.size - used,
      0,
      fs.size - used,
    )
    // Blocks kept for root: neither used nor available to users, so used + free + reserved = limit.
    const reserved = fs.size - used - free
    const base = {
      'system.device': fs.fs,
      'system.filesystem.mountpoint': fs.mount,
      'system.filesystem.type': fs.type,
    }
    samples.push(
      sample('system.filesystem.usage', used, { ...base, 'system.filesystem.state': 'used' }),
      sample('system.filesystem.usage', free, { ...base, 'system.filesystem.state': 'free' }),
      sample('system.filesystem.usage', reserved, {
        ...base,
        'system.filesystem.state': 'reserved',
      }),
      sample('system.filesystem.limit', fs.size, base),
      sample('system.filesystem.utilization', used / fs.size, base),
    )
  }
  return samples
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

/**
 * The host's own interfaces. systeminformation reports at most one IPv4 and one IPv6 address per
 * interface, so the rest come from `os.networkInterfaces()`; both are the host's own addresses,
 * which tier T may carry.
 */
async function hostInterfaces(): Promise<HostInventory['interfaces']> {
  const reported:
    | Systeminformation.NetworkInterfacesData[]
    | Systeminformation.NetworkInterfacesData = await si.networkInterfaces()
  const list = Array.isArray(reported) ? reported : [reported]
  const osAddresses = os.networkInterfaces()
  const interfaces: HostInventory['interfaces'] = []
  for (const nic of list) {
    if (!LOCAL_NAME.test(nic.iface)) continue
    const candidates = [nic.ip4, nic.ip6, ...(osAddresses[nic.iface] ?? []).map((a) => a.address)]
    const addresses = [
      ...new Set(
        candidates
          // A link-local IPv6 carries its zone (`fe80::1%eth0`), which is not an address.
          .map((a) => (a ?? '').split('%')[0] ?? '')
          .filter((a) => HOST_ADDRESS.safeParse(a).success),
      ),
    ].slice(0, 64)
    interfaces.push({
      name: nic.iface,
      mac: clip(nic.mac ?? '', 32),
      addresses,
      speed_mbps:
        typeof nic.speed === 'number' && Number.isFinite(nic.speed) && nic.speed >= 0
          ? nic.speed
          : null,
      // Drivers without carrier tracking (loopback, tun, wireguard) say `unknown` while they pass
      // traffic; an interface that is administratively or physically down says `down`.
      up: nic.operstate === 'up' || nic.operstate === 'unknown',
    })
    if (interfaces.length === 256) break
  }
  return interfaces
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
