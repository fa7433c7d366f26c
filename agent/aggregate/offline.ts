/**
 * `tally agent aggregate FILE`: the aggregates of a capture file (classic pcap or pcapng), and
 * how fast they were made. This is how correctness is compared with tshark and speed with other
 * tools. The report holds the same classes as the live agent sends, so it never shows an address.
 */

import { type CaptureFormat, readPcapFile } from '../../common/pcap/pcap-reader.ts'
import type { UsageContribution } from '../../protocol/v1.ts'
import type { AggregatorOptions } from './aggregator.ts'
import { TrafficCounter } from './traffic.ts'

export interface AggregateReport {
  file: string
  format: CaptureFormat
  /** The first interface's link type (pcapng may have several: link_types). */
  link_type: number
  link_types: number[]
  stats: {
    packets: number
    bytes: number
    decoded: number
    non_ip: number
    malformed: Record<string, number>
    truncated_bytes: number
    /** pcapng blocks without packets (statistics, names, custom), skipped as they should be. */
    skipped_blocks: number
    /** pcapng blocks whose content was unusable, skipped with their packets. */
    malformed_blocks: number
    seconds: number
    packets_per_second: number
  }
  usage: UsageContribution[]
  traffic: { direction: string; transport: string; bytes: number; packets: number }[]
}

export async function aggregateFile(
  file: string,
  options: AggregatorOptions,
): Promise<AggregateReport> {
  const counter = new TrafficCounter(options)
  const started = process.hrtime.bigint()
  const read = await readPcapFile(file, counter.onPacket, counter.onHeader)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const { usage, traffic } = counter.aggregator.drain(Number.POSITIVE_INFINITY)
  const total = counter.aggregator.total
  const byKey = new Map<
    string,
    { direction: string; transport: string; bytes: number; packets: number }
  >()
  for (const sample of traffic) {
    const direction = sample.attributes['tally.direction'] ?? 'transit'
    const transport = sample.attributes['network.transport'] ?? 'other'
    const key = `${direction}/${transport}`
    const entry = byKey.get(key) ?? { direction, transport, bytes: 0, packets: 0 }
    if (sample.metric === 'tally.traffic.bytes') entry.bytes = sample.value
    else entry.packets = sample.value
    byKey.set(key, entry)
  }
  return {
    file,
    format: read.format,
    link_type: read.header.linkType,
    link_types: read.pcapng?.linkTypes ?? [read.header.linkType],
    stats: {
      packets: total.packets,
      bytes: total.bytes,
      decoded: total.decoded,
      non_ip: total.nonIp,
      malformed: Object.fromEntries([...total.malformed].sort()),
      truncated_bytes: read.truncatedBytes,
      skipped_blocks: read.pcapng?.skippedBlocks ?? 0,
      malformed_blocks: read.pcapng?.malformedBlocks ?? 0,
      seconds: Number(seconds.toFixed(6)),
      packets_per_second: seconds > 0 ? Math.round(total.packets / seconds) : 0,
    },
    usage: usage.sort((a, b) => b.bytes - a.bytes),
    traffic: [...byKey.values()].sort((a, b) => b.bytes - a.bytes),
  }
}

/** The report as a table for a person. */
export function formatReport(report: AggregateReport): string {
  const { stats } = report
  const malformed = Object.entries(stats.malformed)
  const lines = [
    `${report.file}: ${stats.packets} packets, ${stats.bytes} bytes (${report.format}, ` +
      `link type${report.link_types.length > 1 ? 's' : ''} ${report.link_types.join(', ')})`,
    `  decoded ${stats.decoded}, non-IP ${stats.non_ip}, malformed ${malformed.reduce((n, [, c]) => n + c, 0)}` +
      (malformed.length > 0 ? ` (${malformed.map(([r, c]) => `${r} ${c}`).join(', ')})` : ''),
    `  ${stats.seconds.toFixed(3)} s, ${stats.packets_per_second} packets/s`,
  ]
  if (stats.truncated_bytes > 0 || stats.malformed_blocks > 0) {
    lines.push(
      `  unreadable: ${stats.truncated_bytes} bytes cut at the end, ` +
        `${stats.malformed_blocks} malformed blocks skipped`,
    )
  }
  lines.push('')
  const header = [
    'direction',
    'ip',
    'transport',
    'service',
    'peer class',
    'bytes',
    'packets',
    'flows',
  ]
  const rows = report.usage.map((u) => [
    u.direction,
    `v${u.ip_version}`,
    u.transport,
    u.service,
    u.peer_class,
    String(u.bytes),
    String(u.packets),
    String(u.flows),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const format = (row: string[]) =>
    row
      .map((cell, i) => (i >= 5 ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
  lines.push(format(header), ...rows.map(format))
  return lines.join('\n')
}
