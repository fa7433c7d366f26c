/**
 * The reference baseline of the aggregate benchmark: a naive JavaScript loop over a classic pcap,
 * written the way one would with `pcap-parser` and a Map. It reads the file in chunks with
 * node:fs (concatenating the leftover of each chunk with the next), makes an object per record
 * (header fields plus a slice of the data, as pcap-parser emits), decodes Ethernet, 802.1Q/QinQ,
 * IPv4 and IPv6 (no extension headers), and counts packets per directional 5-tuple in a
 * `Map<string, number>` keyed by the text of the addresses and ports.
 *
 *   node bench/naive-loop.ts FILE.pcap
 *
 * Prints one JSON document: packets, ip packets, distinct 5-tuples, and packets per second
 * measured inside the process around the read and count (startup excluded).
 */
import { closeSync, openSync, readSync } from 'node:fs'

interface PcapRecord {
  header: { seconds: number; fraction: number; capturedLength: number; originalLength: number }
  data: Buffer
}

const CHUNK = 1024 * 1024

function ipv4Text(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`
}

function ipv6Text(b: Buffer, o: number): string {
  return b.toString('hex', o, o + 16)
}

/** The 5-tuple of an IP frame as text, or undefined for anything else. */
function tupleKey(frame: Buffer): string | undefined {
  if (frame.length < 14) return undefined
  let type = frame.readUInt16BE(12)
  let p = 14
  while ((type === 0x8100 || type === 0x88a8) && p + 4 <= frame.length) {
    type = frame.readUInt16BE(p + 2)
    p += 4
  }
  let src: string
  let dst: string
  let protocol: number
  let transport: number
  if (type === 0x0800 && p + 20 <= frame.length) {
    src = ipv4Text(frame, p + 12)
    dst = ipv4Text(frame, p + 16)
    protocol = frame[p + 9] ?? 0
    transport = p + ((frame[p] ?? 0) & 0x0f) * 4
  } else if (type === 0x86dd && p + 40 <= frame.length) {
    src = ipv6Text(frame, p + 8)
    dst = ipv6Text(frame, p + 24)
    protocol = frame[p + 6] ?? 0
    transport = p + 40
  } else {
    return undefined
  }
  let srcPort = 0
  let dstPort = 0
  if ((protocol === 6 || protocol === 17) && transport + 4 <= frame.length) {
    srcPort = frame.readUInt16BE(transport)
    dstPort = frame.readUInt16BE(transport + 2)
  }
  return `${protocol} ${src}:${srcPort} > ${dst}:${dstPort}`
}

export function naiveCount(file: string): {
  packets: number
  ip_packets: number
  tuples: number
  seconds: number
  packets_per_second: number
} {
  const started = process.hrtime.bigint()
  const counts = new Map<string, number>()
  let packets = 0
  let ipPackets = 0
  const fd = openSync(file, 'r')
  try {
    let pending = Buffer.alloc(0)
    let littleEndian = true
    let headerRead = false
    for (;;) {
      const chunk = Buffer.alloc(CHUNK)
      const bytesRead = readSync(fd, chunk, 0, CHUNK, null)
      if (bytesRead === 0) break
      pending = Buffer.concat([pending, chunk.subarray(0, bytesRead)])
      let pos = 0
      if (!headerRead) {
        if (pending.length < 24) continue
        const magic = pending.readUInt32LE(0)
        if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) littleEndian = true
        else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) littleEndian = false
        else throw new Error(`${file}: not a classic pcap file`)
        headerRead = true
        pos = 24
      }
      while (pos + 16 <= pending.length) {
        const read32 = (at: number) =>
          littleEndian ? pending.readUInt32LE(at) : pending.readUInt32BE(at)
        const record: PcapRecord = {
          header: {
            seconds: read32(pos),
            fraction: read32(pos + 4),
            capturedLength: read32(pos + 8),
            originalLength: read32(pos + 12),
          },
          data: pending.subarray(pos + 16, pos + 16 + read32(pos + 8)),
        }
        if (pos + 16 + record.header.capturedLength > pending.length) break
        pos += 16 + record.header.capturedLength
        packets++
        const key = tupleKey(record.data)
        if (key === undefined) continue
        ipPackets++
        counts.set(key, (counts.get(key) ?? 0) + 1)
      }
      pending = pending.subarray(pos)
    }
  } finally {
    closeSync(fd)
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return {
    packets,
    ip_packets: ipPackets,
    tuples: counts.size,
    seconds: Number(seconds.toFixed(6)),
    packets_per_second: seconds > 0 ? Math.round(packets / seconds) : 0,
  }
}

if (import.meta.main) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: node bench/naive-loop.ts FILE.pcap\n')
    process.exit(2)
  }
  process.stdout.write(`${JSON.stringify(naiveCount(file))}\n`)
}
