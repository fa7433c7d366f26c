/**
 * The trusted side of the comparison: tcpdump writes the capture file, tshark reads it, and the
 * test sums tshark's fields with the definitions of the README (bytes are `frame.len`; a flow is
 * both endpoints, with ports for TCP and UDP; the service is the side with the well-known port).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { SERVICE_TABLE } from '../../../protocol/services.ts'

const run = promisify(execFile)

// ---------------------------------------------------------------------------------------------
// tcpdump

export interface RunningCapture {
  /** Stops tcpdump with SIGTERM and waits for it to exit; returns its stderr. */
  stop: () => Promise<string>
}

/**
 * `tcpdump -i IF -s 128 -U -w FILE FILTER`, resolved once it says "listening on". With
 * --immediate-mode: otherwise the kernel holds packets in its ring buffer for up to a second, and
 * a SIGTERM soon after the traffic would lose them.
 */
export async function startTcpdump(
  iface: string,
  file: string,
  filter: string,
): Promise<RunningCapture> {
  const child: ChildProcess = spawn(
    'tcpdump',
    ['-i', iface, '-s', '128', '-U', '--immediate-mode', '-n', '-Z', 'root', '-w', file, filter],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  const started = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${stderr}`)), 30_000)
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
      if (stderr.includes('listening on')) {
        clearTimeout(timer)
        resolve()
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`tcpdump exited (${code}) before listening: ${stderr}`))
    })
  })
  // A tcpdump that never said it listens is not the caller's to stop: it must not outlive this.
  await started.catch((error: unknown) => {
    child.kill('SIGKILL')
    throw error
  })
  return {
    stop: async () => {
      child.kill('SIGTERM')
      const code = await exited
      if (code !== 0) throw new Error(`tcpdump exited with ${code}: ${stderr}`)
      return stderr
    },
  }
}

// ---------------------------------------------------------------------------------------------
// tshark

export type Transport = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'other'

export interface TsharkPacket {
  length: number
  /** 0: not IP. */
  version: 0 | 4 | 6
  transport: Transport
  src: string
  dst: string
  /** TCP/UDP ports, undefined when tshark saw none (another protocol, a non-first fragment). */
  srcPort: number | undefined
  dstPort: number | undefined
}

const FIELDS = [
  'frame.len',
  'frame.protocols',
  'ip.proto',
  'ipv6.fraghdr.nxt',
  'ip.src',
  'ip.dst',
  'ipv6.src',
  'ipv6.dst',
  'tcp.srcport',
  'tcp.dstport',
  'udp.srcport',
  'udp.dstport',
]

/** Layers between the IPv6 header and the transport, as tshark names them in frame.protocols. */
const IPV6_EXTENSIONS = new Set([
  'ipv6.hopopts',
  'ipv6.dstopts',
  'ipv6.routing',
  'ipv6.fraghdr',
  'ah',
])
const TRANSPORT_LAYERS = new Set<string>(['tcp', 'udp', 'icmp', 'icmpv6'])
const PROTOCOL_TRANSPORTS: Record<string, Transport> = {
  '6': 'tcp',
  '17': 'udp',
  '1': 'icmp',
  '58': 'icmpv6',
}

/**
 * Every frame of `file` as tshark decodes it. Only the outermost header of each kind counts
 * (`occurrence=f`): an ICMP error's quoted packet is not the frame's transport. Reassembly is off
 * so that every fragment is a frame of its own.
 */
export async function tsharkPackets(file: string): Promise<TsharkPacket[]> {
  const args = ['-r', file, '-n', '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=f']
  args.push('-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE')
  for (const field of FIELDS) args.push('-e', field)
  const { stdout } = await run('tshark', args, { maxBuffer: 256 * 1024 * 1024, timeout: 60_000 })
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [len = '', protocols = '', ipProto = '', fragNext = '', ...rest] = line.split('\t')
      const [ipSrc = '', ipDst = '', ip6Src = '', ip6Dst = '', tcpS, tcpD, udpS, udpD] = rest
      const layers = protocols.split(':')
      const at = layers.findIndex((l) => l === 'ip' || l === 'ipv6')
      if (at < 0) {
        return {
          length: Number(len),
          version: 0,
          transport: 'other',
          src: '',
          dst: '',
          srcPort: undefined,
          dstPort: undefined,
        } satisfies TsharkPacket
      }
      const version = layers[at] === 'ip' ? 4 : 6
      let next = at + 1
      if (version === 6) while (IPV6_EXTENSIONS.has(layers[next] ?? '')) next++
      const layer = layers[next] ?? ''
      let transport: Transport
      if (TRANSPORT_LAYERS.has(layer)) transport = layer as Transport
      else {
        // No transport layer decoded (a non-first fragment, or another protocol): the number.
        const number = version === 4 ? ipProto : fragNext
        transport = PROTOCOL_TRANSPORTS[number] ?? 'other'
      }
      const port = (text: string | undefined) =>
        text === undefined || text === '' ? undefined : Number(text)
      const ports =
        transport === 'tcp'
          ? [port(tcpS), port(tcpD)]
          : transport === 'udp'
            ? [port(udpS), port(udpD)]
            : []
      return {
        length: Number(len),
        version,
        transport,
        src: version === 4 ? ipSrc : ip6Src,
        dst: version === 4 ? ipDst : ip6Dst,
        srcPort: ports[0],
        dstPort: ports[1],
      } satisfies TsharkPacket
    })
}

// ---------------------------------------------------------------------------------------------
// The definitions, applied to tshark's fields

function wellKnown(transport: 'tcp' | 'udp', port: number | undefined): string | undefined {
  if (port === undefined) return undefined
  return SERVICE_TABLE.find((s) => s[transport]?.includes(port))?.name
}

export function serviceOf(p: TsharkPacket): string {
  if (p.transport !== 'tcp' && p.transport !== 'udp') return p.transport
  const src = wellKnown(p.transport, p.srcPort)
  const dst = wellKnown(p.transport, p.dstPort)
  if (src !== undefined && dst !== undefined) {
    return (p.srcPort ?? 0) < (p.dstPort ?? 0) ? src : dst
  }
  return dst ?? src ?? `other-${p.transport}`
}

/**
 * The conversation, the same in both directions: ports only for TCP and UDP. A non-first
 * fragment has no ports (`-`); it starts no flow of its own, as in the aggregator.
 */
export function flowOf(p: TsharkPacket): string {
  const ports = p.transport === 'tcp' || p.transport === 'udp'
  const end = (address: string, port: number | undefined) =>
    ports ? `${address}/${port ?? '-'}` : address
  const ends = [end(p.src, p.srcPort), end(p.dst, p.dstPort)].sort()
  return `v${p.version} ${p.transport} ${ends.join(' ')}`
}

export interface Counts {
  packets: number
  bytes: number
  flows: number
}

export interface Summary {
  packets: number
  bytes: number
  nonIp: number
  nonIpBytes: number
  /** By `v4 tcp http`: what tally reports summed over direction and peer class. */
  byService: Record<string, Counts>
  byTransport: Record<string, Counts>
}

/**
 * Sums the packets. Flows are distinct conversations, counted where the first packet of each
 * falls (the capture is shorter than the flow idle time, so none is counted twice).
 */
export function summarize(packets: readonly TsharkPacket[]): Summary {
  const summary: Summary = {
    packets: 0,
    bytes: 0,
    nonIp: 0,
    nonIpBytes: 0,
    byService: {},
    byTransport: {},
  }
  const seen = new Set<string>()
  const add = (table: Record<string, Counts>, key: string, p: TsharkPacket, flow: boolean) => {
    const row = table[key] ?? { packets: 0, bytes: 0, flows: 0 }
    row.packets += 1
    row.bytes += p.length
    if (flow) row.flows += 1
    table[key] = row
  }
  for (const p of packets) {
    summary.packets += 1
    summary.bytes += p.length
    if (p.version === 0) {
      summary.nonIp += 1
      summary.nonIpBytes += p.length
      continue
    }
    // A later fragment (no ports) starts no flow, as in the aggregator.
    const laterFragment =
      (p.transport === 'tcp' || p.transport === 'udp') && p.srcPort === undefined
    const flow = flowOf(p)
    const isNew = !laterFragment && !seen.has(flow)
    if (!laterFragment) seen.add(flow)
    add(summary.byService, `v${p.version} ${p.transport} ${serviceOf(p)}`, p, isNew)
    add(summary.byTransport, p.transport, p, isNew)
  }
  return summary
}

export interface TallyUsage {
  direction: string
  ip_version: number
  transport: string
  service: string
  peer_class: string
  bytes: number
  packets: number
  flows: number
}

export interface TallyReport {
  link_type: number
  stats: {
    packets: number
    bytes: number
    decoded: number
    non_ip: number
    malformed: Record<string, number>
  }
  usage: TallyUsage[]
  traffic: { direction: string; transport: string; bytes: number; packets: number }[]
}

/** Tally's usage rows summed the way `summarize` keys tshark's. */
export function tallySums(report: TallyReport): Pick<Summary, 'byService' | 'byTransport'> {
  const byService: Record<string, Counts> = {}
  const byTransport: Record<string, Counts> = {}
  for (const u of report.usage) {
    for (const [table, key] of [
      [byService, `v${u.ip_version} ${u.transport} ${u.service}`],
      [byTransport, u.transport],
    ] as const) {
      const row = table[key] ?? { packets: 0, bytes: 0, flows: 0 }
      row.packets += u.packets
      row.bytes += u.bytes
      row.flows += u.flows
      table[key] = row
    }
  }
  return { byService, byTransport }
}
