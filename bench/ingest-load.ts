/**
 * A load generator's parts for POST /v1/ingest, shared by bench/ingest.ts and the group commit
 * kill test: agents enrolled through the real API, and realistic batches built with the
 * protocol's types (about 100 host samples and 20 usage rows, about 1.7 KB gzip).
 */
import { gzipSync } from 'node:zlib'
import { CPU_MODES, EnrollResponse, type HostBatch, type HostSample } from '../protocol/v1.ts'

export interface LoadAgent {
  agent_id: string
  host: string
  site: string
  credential: string
}

/** Enrolls `count` agents of `site` through the API, `parallel` at a time. */
export async function enrollAgents(
  url: string,
  adminToken: string,
  site: string,
  count: number,
  parallel = 16,
): Promise<LoadAgent[]> {
  const issued = await fetch(`${url}/v1/admin/enroll-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ site, max_uses: count }),
  })
  if (!issued.ok) throw new Error(`enroll token: ${issued.status} ${await issued.text()}`)
  const { token } = (await issued.json()) as { token: string }
  const agents: LoadAgent[] = new Array(count)
  let next = 0
  const worker = async () => {
    while (next < count) {
      const i = next++
      const res = await fetch(`${url}/v1/agents/enroll`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          hostname: `${site}-ws${String(i).padStart(5, '0')}`,
          agent_version: '0.1.0',
        }),
      })
      if (res.status !== 201) throw new Error(`enroll: ${res.status} ${await res.text()}`)
      const e = EnrollResponse.parse(await res.json())
      agents[i] = { agent_id: e.agent_id, host: e.host, site: e.site, credential: e.credential }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker))
  return agents
}

/** Repeatable pseudo-random numbers in [0, 1). */
export function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

const INTERFACES = ['lo', 'eth0', 'wlan0']
const SERVICES = ['https', 'http', 'dns', 'quic', 'ntp', 'ssh', 'smb', 'imap', 'mdns', 'dhcp']

/**
 * One interval of a workstation: CPU by mode on 8 cores' sum, memory, three filesystems,
 * interfaces, TCP states, load and the agent's own counters (100 samples), and 20 usage rows.
 * `end` is the interval's end; the interval is 10 s.
 */
export function realisticBatch(
  agentId: string,
  seq: number,
  end: number,
  random: () => number,
): HostBatch {
  const samples: HostSample[] = []
  const add = (metric: HostSample['metric'], value: number, attributes = {}) =>
    samples.push({ metric, value, attributes })
  for (const mode of CPU_MODES) add('system.cpu.utilization', random() / 2, { 'cpu.mode': mode })
  for (const m of ['1m', '5m', '15m'] as const) add(`system.cpu.load_average.${m}`, random() * 4)
  for (const state of ['used', 'free', 'buffers', 'cached', 'available'] as const) {
    add('system.memory.usage', Math.round(random() * 8e9), { 'system.memory.state': state })
  }
  add('system.memory.limit', 16e9)
  add('system.memory.utilization', random())
  for (const [device, mount] of [
    ['/dev/nvme0n1p2', '/'],
    ['/dev/nvme0n1p1', '/boot/efi'],
    ['/dev/sda1', '/home'],
  ] as const) {
    const at = {
      'system.device': device,
      'system.filesystem.mountpoint': mount,
      'system.filesystem.type': 'ext4',
    }
    for (const state of ['used', 'free', 'reserved'] as const) {
      add('system.filesystem.usage', Math.round(random() * 5e11), {
        ...at,
        'system.filesystem.state': state,
      })
    }
    add('system.filesystem.limit', 5e11, at)
    add('system.filesystem.utilization', random(), at)
  }
  for (const name of INTERFACES) {
    for (const direction of ['receive', 'transmit'] as const) {
      const at = { 'network.interface.name': name, 'network.io.direction': direction }
      add('system.network.io', Math.round(random() * 1e7), at)
      add('system.network.packet.count', Math.round(random() * 1e4), at)
      add('system.network.errors', 0, at)
      add('system.network.packet.dropped', Math.round(random() * 2), at)
    }
  }
  for (const state of ['established', 'time_wait', 'listen', 'close_wait'] as const) {
    add('system.network.connection.count', Math.round(random() * 50), {
      'network.connection.state': state,
      'network.transport': 'tcp',
    })
  }
  add('system.uptime', 86_400 + seq * 10)
  for (const m of [
    'tally.agent.spool.depth',
    'tally.agent.spool.bytes',
    'tally.agent.batches.dropped',
    'tally.agent.send.failures',
  ] as const) {
    add(m, 0)
  }
  for (const outcome of ['received', 'decoded', 'non_ip', 'dropped_kernel'] as const) {
    add('tally.capture.packets', Math.round(random() * 2e4), { 'tally.capture.outcome': outcome })
  }
  add('tally.capture.running', 1)
  for (const direction of ['inbound', 'outbound'] as const) {
    for (const transport of ['tcp', 'udp'] as const) {
      add('tally.traffic.bytes', Math.round(random() * 1e7), {
        'tally.direction': direction,
        'network.transport': transport,
      })
      add('tally.traffic.packets', Math.round(random() * 1e4), {
        'tally.direction': direction,
        'network.transport': transport,
      })
    }
  }
  // Fill up to 100 with per-interface utilisation-like counters.
  while (samples.length < 100) {
    add('system.network.io', Math.round(random() * 1e6), {
      'network.interface.name': `veth${samples.length}`,
      'network.io.direction': 'receive',
    })
  }
  const usage = Array.from({ length: 20 }, (_, i) => ({
    direction: i % 2 === 0 ? ('outbound' as const) : ('inbound' as const),
    ip_version: i % 5 === 0 ? (6 as const) : (4 as const),
    transport: SERVICES[i % SERVICES.length] === 'dns' ? ('udp' as const) : ('tcp' as const),
    service: SERVICES[Math.floor(i / 2) % SERVICES.length] ?? 'https',
    peer_class: i % 3 === 0 ? ('organisation' as const) : ('internet' as const),
    bytes: 1 + Math.round(random() * 1e6),
    packets: 1 + Math.round(random() * 1e3),
    flows: 1 + Math.round(random() * 20),
  }))
  return {
    version: 1,
    agent_id: agentId,
    seq,
    agent_version: '0.1.0',
    interval: { start: end - 10_000, end },
    samples,
    usage,
  }
}

export const gzipBatch = (batch: HostBatch): Buffer => gzipSync(Buffer.from(JSON.stringify(batch)))

/** POSTs one gzip'd batch; the status, or 0 when the collector could not be reached. */
export async function postBatch(url: string, credential: string, body: Buffer): Promise<number> {
  try {
    const res = await fetch(`${url}/v1/ingest`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${credential}`,
        'content-encoding': 'gzip',
        'content-type': 'application/json',
      },
      body,
    })
    await res.arrayBuffer()
    return res.status
  } catch {
    return 0
  }
}
