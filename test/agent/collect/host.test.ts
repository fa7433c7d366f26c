import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { HostMetricsCollector } from '../../../agent/collect/host.ts'
import { HostInventory, HostSample, TCP_STATES } from '../../../protocol/v1.ts'

const execFileAsync = promisify(execFile)

const NET_DEV_HEADER = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
`

/** One /proc/net/dev line: receive bytes, packets, errs, drop; transmit the same. */
function devLine(
  name: string,
  rx: [number, number, number, number],
  tx: [number, number, number, number],
) {
  return `${name.padStart(6)}: ${rx.join(' ')} 0 0 0 0 ${tx.join(' ')} 0 0 0 0\n`
}

const STAT_BEFORE = 'cpu  100 10 50 800 20 5 5 10 0 0\ncpu0 100 10 50 800 20 5 5 10 0 0\nintr 1\n'
// user +100, nice +10, system +50, idle +700, iowait +20, irq +5, softirq +5, steal +10, guest +30
const STAT_AFTER =
  'cpu  200 20 100 1500 40 10 10 20 30 0\ncpu0 200 20 100 1500 40 10 10 20 30 0\nintr 2\n'

const MEMINFO = `MemTotal:        1000000 kB
MemFree:          400000 kB
MemAvailable:     700000 kB
Buffers:           50000 kB
Cached:           200000 kB
SwapCached:            0 kB
Active(anon):      10000 kB
SReclaimable:      50000 kB
`

/*
 * Addresses in /proc/net/tcp are little-endian hex. Remote 5DB8D822 is 34.216.184.93, local
 * 0A01A8C0 is 192.168.1.10; the IPv6 remote is 2001:db8::1. Chosen to contain hex letters so that
 * a leak cannot hide as digits inside some unrelated number.
 */
const TCP_HEADER =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n'
const tcpLine = (slot: number, local: string, remote: string, state: string) =>
  `   ${slot}: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000  1000        0 ${40000 + slot} 1 0000000000000000 100 0 0 10 0\n`
const NET_TCP =
  TCP_HEADER +
  tcpLine(0, '0100007F:1F90', '00000000:0000', '0A') +
  tcpLine(1, '00000000:0016', '00000000:0000', '0A') +
  tcpLine(2, '0A01A8C0:D2F0', '5DB8D822:01BB', '01') +
  tcpLine(3, '0A01A8C0:D2F1', '5DB8D822:01BB', '01') +
  tcpLine(4, '0A01A8C0:D2F2', '5DB8D822:01BB', '01') +
  tcpLine(5, '0A01A8C0:D2F3', '5DB8D822:01BB', '06') +
  tcpLine(6, '0A01A8C0:D2F4', '5DB8D822:01BB', '0C') // not a state /proc/net/tcp prints: ignored
const V6_LOCAL = 'B80D0120000000000000000002000000'
const V6_REMOTE = 'B80D0120000000000000000001000000'
const NET_TCP6 =
  TCP_HEADER +
  tcpLine(
    0,
    '00000000000000000000000000000000:0016',
    '00000000000000000000000000000000:0000',
    '0A',
  ) +
  tcpLine(1, `${V6_LOCAL}:D2F0`, `${V6_REMOTE}:01BB`, '01') +
  tcpLine(2, `${V6_LOCAL}:D2F1`, `${V6_REMOTE}:01BB`, '08')
const FIXTURE_ADDRESSES = [
  '5DB8D822',
  '0A01A8C0',
  '0100007F',
  V6_LOCAL,
  V6_REMOTE,
  '34.216.184.93',
  '192.168.1.10',
  '2001:db8::1',
  '2001:db8::2',
  ':01BB',
  ':D2F0',
]

const tmpDirs: string[] = []
afterAll(() => {
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true })
})

function procDir(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tally-proc-'))
  tmpDirs.push(root)
  writeProc(root, files)
  return root
}

function writeProc(root: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), content)
  }
}

function value(samples: HostSample[], metric: string, attributes: Record<string, string> = {}) {
  const found = samples.filter(
    (s) =>
      s.metric === metric &&
      Object.entries(attributes).every(
        ([k, v]) => (s.attributes as Record<string, unknown>)[k] === v,
      ),
  )
  expect(found, `${metric} ${JSON.stringify(attributes)}`).toHaveLength(1)
  return found[0]?.value
}

function interfaceNames(samples: HostSample[]): Set<string | undefined> {
  return new Set(
    samples
      .filter(
        (s) => s.metric.startsWith('system.network.') && s.attributes['network.interface.name'],
      )
      .map((s) => s.attributes['network.interface.name']),
  )
}

function expectValidNetworkDeltas(samples: HostSample[]): void {
  for (const s of samples) {
    expect(() => HostSample.parse(s)).not.toThrow()
    if (s.attributes['network.interface.name'] !== undefined) {
      expect(s.value).toBeGreaterThanOrEqual(0)
      expect(Number.isInteger(s.value)).toBe(true)
    }
  }
}

describe('HostMetricsCollector on this machine', () => {
  it('reports valid tier T metrics over an interval, including real TCP connections', async () => {
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
    const { port } = server.address() as net.AddressInfo
    const client = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve) => client.once('connect', resolve))
    const serverSide = await accepted
    try {
      const collector = new HostMetricsCollector()
      const first = await collector.collect()
      // The first call only sets the counter baselines.
      expect(first.some((s) => s.metric === 'system.cpu.utilization')).toBe(false)
      expect(first.some((s) => s.metric === 'system.network.io')).toBe(false)
      await new Promise((resolve) => setTimeout(resolve, 1000))
      const samples = await collector.collect()
      expect(collector.lastErrors).toEqual([])

      for (const s of samples) expect(() => HostSample.parse(s)).not.toThrow()

      const cpu = samples.filter((s) => s.metric === 'system.cpu.utilization')
      expect(cpu).toHaveLength(7)
      for (const s of cpu) {
        expect(s.value).toBeGreaterThanOrEqual(0)
        expect(s.value).toBeLessThanOrEqual(1)
      }
      expect(Math.abs(cpu.reduce((sum, s) => sum + s.value, 0) - 1)).toBeLessThanOrEqual(0.05)

      const used = value(samples, 'system.memory.usage', { 'system.memory.state': 'used' }) ?? NaN
      const limit = value(samples, 'system.memory.limit') ?? NaN
      expect(used).toBeGreaterThan(0)
      expect(used).toBeLessThanOrEqual(limit)

      expect(samples.some((s) => s.metric === 'system.network.io')).toBe(true)
      expectValidNetworkDeltas(samples)

      const connections = samples.filter((s) => s.metric === 'system.network.connection.count')
      expect(connections.map((s) => s.attributes['network.connection.state']).sort()).toEqual(
        [...TCP_STATES].sort(),
      )
      for (const s of connections) {
        expect(Number.isInteger(s.value)).toBe(true)
        expect(s.value).toBeGreaterThanOrEqual(0)
      }
      const state = (name: string) =>
        value(samples, 'system.network.connection.count', { 'network.connection.state': name }) ?? 0
      expect(state('listen')).toBeGreaterThanOrEqual(1)
      expect(state('established')).toBeGreaterThanOrEqual(1)
    } finally {
      client.destroy()
      serverSide.destroy()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('describes the host in an inventory the wire schema accepts', async () => {
    const collector = new HostMetricsCollector()
    const inventory = await collector.inventory()
    expect(() => HostInventory.parse(inventory)).not.toThrow()
    expect(inventory).not.toHaveProperty('hostname')
    expect(inventory.memory_bytes).toBeGreaterThan(0)
    expect(inventory.interfaces.length).toBeGreaterThan(0)
    for (const nic of inventory.interfaces) {
      for (const address of nic.addresses) expect(address).not.toContain('%')
    }
  })
})

describe('HostMetricsCollector on fixture proc trees', () => {
  it('computes CPU utilization and memory exactly from /proc/stat and /proc/meminfo', async () => {
    const root = procDir({ stat: STAT_BEFORE, meminfo: MEMINFO, 'net/dev': NET_DEV_HEADER })
    const collector = new HostMetricsCollector({ procRoot: root })
    await collector.collect()
    writeProc(root, { stat: STAT_AFTER })
    const samples = await collector.collect()
    const cpu = (mode: string) => value(samples, 'system.cpu.utilization', { 'cpu.mode': mode })
    // Total 900 jiffies: guest is inside user already, softirq is folded into irq.
    expect(cpu('user')).toBeCloseTo(100 / 900)
    expect(cpu('nice')).toBeCloseTo(10 / 900)
    expect(cpu('system')).toBeCloseTo(50 / 900)
    expect(cpu('idle')).toBeCloseTo(700 / 900)
    expect(cpu('iowait')).toBeCloseTo(20 / 900)
    expect(cpu('irq')).toBeCloseTo(10 / 900)
    expect(cpu('steal')).toBeCloseTo(10 / 900)

    const memory = (state: string) =>
      value(samples, 'system.memory.usage', { 'system.memory.state': state })
    const KiB = 1024
    expect(memory('used')).toBe(300000 * KiB) // total - free - buffers - (cached + sreclaimable)
    expect(memory('free')).toBe(400000 * KiB)
    expect(memory('buffers')).toBe(50000 * KiB)
    expect(memory('cached')).toBe(250000 * KiB)
    expect(memory('available')).toBe(700000 * KiB)
    expect(value(samples, 'system.memory.limit')).toBe(1000000 * KiB)
    expect(value(samples, 'system.memory.utilization')).toBeCloseTo(0.3)
  })

  it('counts a reset interface counter from zero instead of going negative', async () => {
    const root = procDir({
      'net/dev':
        NET_DEV_HEADER +
        devLine('lo', [1000, 10, 0, 0], [1000, 10, 0, 0]) +
        devLine('eth0', [5_000_000_000, 900, 3, 2], [800_000, 700, 1, 1]),
    })
    const collector = new HostMetricsCollector({ procRoot: root })
    await collector.collect()
    writeProc(root, {
      'net/dev':
        NET_DEV_HEADER +
        devLine('lo', [1500, 15, 0, 0], [1500, 15, 0, 0]) +
        devLine('eth0', [200, 2, 0, 0], [800_300, 703, 1, 1]),
    })
    const samples = await collector.collect()
    expectValidNetworkDeltas(samples)
    const io = (name: string, direction: string) =>
      value(samples, 'system.network.io', {
        'network.interface.name': name,
        'network.io.direction': direction,
      })
    expect(io('lo', 'receive')).toBe(500)
    expect(io('eth0', 'receive')).toBe(200)
    expect(io('eth0', 'transmit')).toBe(300)
    const eth0Receive = { 'network.interface.name': 'eth0', 'network.io.direction': 'receive' }
    expect(value(samples, 'system.network.packet.count', eth0Receive)).toBe(2)
    expect(value(samples, 'system.network.errors', eth0Receive)).toBe(0)
    expect(value(samples, 'system.network.packet.dropped', eth0Receive)).toBe(0)
  })

  it('handles counters beyond 32 bits exactly', async () => {
    const root = procDir({
      'net/dev': NET_DEV_HEADER + devLine('eth0', [2 ** 40, 1, 0, 0], [2 ** 33, 1, 0, 0]),
    })
    const collector = new HostMetricsCollector({ procRoot: root })
    await collector.collect()
    writeProc(root, {
      'net/dev':
        NET_DEV_HEADER + devLine('eth0', [2 ** 40 + 1234, 2, 0, 0], [2 ** 33 + 5, 2, 0, 0]),
    })
    const samples = await collector.collect()
    const eth0 = (direction: string) =>
      value(samples, 'system.network.io', {
        'network.interface.name': 'eth0',
        'network.io.direction': direction,
      })
    expect(eth0('receive')).toBe(1234)
    expect(eth0('transmit')).toBe(5)
  })

  it('baselines an interface that appears and forgets one that disappears', async () => {
    const root = procDir({
      'net/dev':
        NET_DEV_HEADER +
        devLine('lo', [100, 1, 0, 0], [100, 1, 0, 0]) +
        devLine('eth0', [9000, 90, 0, 0], [9000, 90, 0, 0]),
    })
    const collector = new HostMetricsCollector({ procRoot: root })
    await collector.collect()

    // eth0 renamed to wlan0 with small counters: one disappears, one appears.
    writeProc(root, {
      'net/dev':
        NET_DEV_HEADER +
        devLine('lo', [200, 2, 0, 0], [200, 2, 0, 0]) +
        devLine('wlan0', [10, 1, 0, 0], [10, 1, 0, 0]),
    })
    const second = await collector.collect()
    expectValidNetworkDeltas(second)
    expect(interfaceNames(second)).toEqual(new Set(['lo']))

    // eth0 comes back: it is new again, while wlan0 now has a baseline.
    writeProc(root, {
      'net/dev':
        NET_DEV_HEADER +
        devLine('lo', [300, 3, 0, 0], [300, 3, 0, 0]) +
        devLine('wlan0', [60, 2, 0, 0], [40, 2, 0, 0]) +
        devLine('eth0', [50, 1, 0, 0], [50, 1, 0, 0]),
    })
    const third = await collector.collect()
    expectValidNetworkDeltas(third)
    expect(interfaceNames(third)).toEqual(new Set(['lo', 'wlan0']))
    expect(
      value(third, 'system.network.io', {
        'network.interface.name': 'wlan0',
        'network.io.direction': 'receive',
      }),
    ).toBe(50)

    // Every interface gone.
    writeProc(root, { 'net/dev': NET_DEV_HEADER })
    const fourth = await collector.collect()
    expect(interfaceNames(fourth)).toEqual(new Set())
  })

  it('skips a malformed net/dev line and keeps the others', async () => {
    const good = (n: number) => devLine('eth0', [n, n, 0, 0], [n, n, 0, 0])
    const malformed = [
      '  bad0: 1 2 3\n',
      '  bad1: 1 2 x 4 5 6 7 8 9 10 11 12 13 14 15 16\n',
      'no colon on this line at all\n',
      '  bad2: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n',
    ].join('')
    const root = procDir({ 'net/dev': NET_DEV_HEADER + malformed + good(100) })
    const collector = new HostMetricsCollector({ procRoot: root })
    await collector.collect()
    writeProc(root, { 'net/dev': NET_DEV_HEADER + malformed + good(150) })
    const samples = await collector.collect()
    expectValidNetworkDeltas(samples)
    expect(interfaceNames(samples)).toEqual(new Set(['eth0']))
    expect(
      value(samples, 'system.network.io', {
        'network.interface.name': 'eth0',
        'network.io.direction': 'receive',
      }),
    ).toBe(50)
    expect(collector.lastErrors.some((e) => e.includes('net/dev'))).toBe(true)
  })

  it('counts TCP connections by state exactly and carries no address from the file', async () => {
    const root = procDir({ 'net/tcp': NET_TCP, 'net/tcp6': NET_TCP6 })
    const collector = new HostMetricsCollector({ procRoot: root })
    const samples = await collector.collect()
    const counts = Object.fromEntries(
      samples
        .filter((s) => s.metric === 'system.network.connection.count')
        .map((s) => {
          expect(s.attributes['network.transport']).toBe('tcp')
          return [s.attributes['network.connection.state'], s.value]
        }),
    )
    expect(counts).toEqual({
      established: 4,
      syn_sent: 0,
      syn_recv: 0,
      fin_wait_1: 0,
      fin_wait_2: 0,
      time_wait: 1,
      close: 0,
      close_wait: 1,
      last_ack: 0,
      listen: 3,
      closing: 0,
    })

    // Privacy: nothing the collector returns or remembers mentions an endpoint from the file.
    const everything = JSON.stringify({ samples, errors: collector.lastErrors }).toLowerCase()
    for (const address of FIXTURE_ADDRESSES) {
      expect(everything).not.toContain(address.toLowerCase())
    }
    for (const s of samples) {
      for (const attribute of Object.values(s.attributes)) {
        for (const address of FIXTURE_ADDRESSES) {
          expect(String(attribute).toLowerCase()).not.toContain(address.toLowerCase())
        }
      }
    }
  })

  it('counts IPv4 connections when tcp6 is missing', async () => {
    const root = procDir({ 'net/tcp': NET_TCP })
    const collector = new HostMetricsCollector({ procRoot: root })
    const samples = await collector.collect()
    expect(collector.lastErrors.some((e) => e.startsWith('tcp'))).toBe(false)
    const state = (name: string) =>
      value(samples, 'system.network.connection.count', { 'network.connection.state': name })
    expect(state('listen')).toBe(2)
    expect(state('established')).toBe(3)
  })

  it('skips unavailable sources without throwing and names them in lastErrors', async () => {
    const collector = new HostMetricsCollector({ procRoot: procDir({}) })
    const samples = await collector.collect()
    await collector.collect()
    for (const s of samples) expect(() => HostSample.parse(s)).not.toThrow()
    // Sources that do not come from the proc tree still report.
    expect(samples.some((s) => s.metric === 'system.uptime')).toBe(true)
    expect(samples.some((s) => s.metric === 'system.cpu.load_average.1m')).toBe(true)
    const failed = collector.lastErrors.map((e) => e.split(':')[0])
    expect(failed).toEqual(expect.arrayContaining(['cpu', 'memory', 'network', 'tcp connections']))
  })
})

describe('HostMetricsCollector without a library or a process', () => {
  /** One /proc/self/mountinfo line. */
  const mountLine = (
    id: number,
    device: string,
    mountPoint: string,
    type: string,
    source: string,
  ) => `${id} 1 ${device} / ${mountPoint} rw,relatime shared:${id} - ${type} ${source} rw\n`

  it('reports each stored filesystem once, from statfs, as df counts it', async () => {
    // Real directories as mount points, so statfs answers; the fixture says what is mounted.
    const disk = mkdtempSync(join(tmpdir(), 'tally-mnt-'))
    tmpDirs.push(disk)
    const spaced = join(disk, 'with space')
    mkdirSync(spaced)
    const bind = join(disk, 'a', 'bind')
    mkdirSync(bind, { recursive: true })
    const proc = procDir({
      'self/mountinfo':
        mountLine(20, '0:5', '/proc', 'proc', 'proc') +
        mountLine(21, '0:25', '/run', 'tmpfs', 'tmpfs') +
        mountLine(22, '8:1', bind, 'ext4', '/dev/sda1') + // same device, longer path: elided
        mountLine(23, '8:1', disk, 'ext4', '/dev/sda1') +
        mountLine(24, '8:2', spaced.replace(' ', '\\040'), 'xfs', '/dev/sda2') +
        mountLine(25, '8:3', join(disk, 'gone'), 'ext4', '/dev/sda3') + // statfs fails
        mountLine(26, '8:4', `${disk}/caf\\303\\251`, 'ext4', '/dev/sda4') + // not ASCII
        'a line that is not a mount\n',
    })
    const collector = new HostMetricsCollector({ procRoot: proc })
    const samples = await collector.collect()
    const fs = samples.filter((s) => s.metric.startsWith('system.filesystem.'))
    for (const s of fs) expect(() => HostSample.parse(s)).not.toThrow()
    const mounts = new Set(fs.map((s) => s.attributes['system.filesystem.mountpoint']))
    expect(mounts).toEqual(new Set([disk, spaced]))
    const stats = statfsSync(disk)
    const size = stats.blocks * stats.bsize
    const attributes = {
      'system.filesystem.mountpoint': disk,
      'system.device': '/dev/sda1',
      'system.filesystem.type': 'ext4',
    }
    expect(value(fs, 'system.filesystem.limit', attributes)).toBe(size)
    const part = (state: string) =>
      value(fs, 'system.filesystem.usage', { ...attributes, 'system.filesystem.state': state }) ?? 0
    // Other writers share this disk: the parts are compared to each other, not to a second statfs.
    expect(part('used') + part('free') + part('reserved')).toBe(size)
    expect(Math.abs(part('used') - (stats.blocks - stats.bfree) * stats.bsize)).toBeLessThan(
      size / 100,
    )
    expect(collector.lastErrors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^filesystem .*gone: /),
        'filesystem: skipped a mount whose device, path or type is not printable ASCII',
      ]),
    )
  })

  it('describes the interfaces from sysfs and the distribution from os-release', async () => {
    const sys = procDir({
      'class/net/lo/address': '00:00:00:00:00:00\n',
      'class/net/lo/operstate': 'unknown\n',
      'class/net/eth9/address': '52:54:00:12:34:56\n',
      'class/net/eth9/operstate': 'up\n',
      'class/net/eth9/speed': '1000\n',
      'class/net/veth7/address': '02:00:00:00:00:07\n',
      'class/net/veth7/operstate': 'down\n',
      'class/net/veth7/speed': '-1\n',
    })
    const etc = procDir({
      'os-release':
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n' +
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n',
    })
    const collector = new HostMetricsCollector({
      sysRoot: sys,
      osReleaseFiles: [join(etc, 'absent'), join(etc, 'os-release')],
    })
    const inventory = await collector.inventory()
    expect(() => HostInventory.parse(inventory)).not.toThrow()
    expect(collector.lastErrors).toEqual([])
    expect(inventory.os).toMatchObject({ distro: 'Debian GNU/Linux', release: '12' })
    expect(inventory.interfaces).toEqual([
      { name: 'eth9', mac: '52:54:00:12:34:56', addresses: [], speed_mbps: 1000, up: true },
      expect.objectContaining({ name: 'lo', mac: '00:00:00:00:00:00', up: true }),
      { name: 'veth7', mac: '02:00:00:00:00:07', addresses: [], speed_mbps: null, up: false },
    ])
    // lo's addresses are the host's own, from node:os.
    const lo = inventory.interfaces.find((nic) => nic.name === 'lo')
    expect(lo?.addresses).toContain('127.0.0.1')

    const broken = new HostMetricsCollector({
      sysRoot: join(sys, 'absent'),
      osReleaseFiles: [join(etc, 'absent')],
    })
    const fallback = await broken.inventory()
    expect(() => HostInventory.parse(fallback)).not.toThrow()
    expect(fallback.os.kernel).not.toBe('')
    expect(broken.lastErrors.map((e) => e.split(':')[0])).toEqual(['os info', 'network interfaces'])
  })

  it('starts no process and loads no systeminformation for an interval or an inventory', async () => {
    // A process of its own, so that nothing vitest loaded counts.
    const script = [
      "import { syncBuiltinESMExports, createRequire } from 'node:module'",
      "const cp = createRequire(import.meta.url)('node:child_process')",
      'const started = []',
      "for (const name of ['spawn', 'exec', 'execFile', 'fork']) {",
      '  const original = cp[name]',
      '  cp[name] = (...args) => { started.push(String(args[0])); return original(...args) }',
      '}',
      'syncBuiltinESMExports()',
      `const { HostMetricsCollector } = await import(${JSON.stringify(new URL('../../../agent/collect/host.ts', import.meta.url).pathname)})`,
      'const c = new HostMetricsCollector()',
      'await c.collect(); await c.inventory(); await c.collect()',
      "const loaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => p.includes('systeminformation'))",
      'console.log(JSON.stringify({ started, loaded }))',
    ].join('\n')
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script])
    expect(JSON.parse(stdout)).toEqual({ started: [], loaded: [] })
  })
})
