/** Runs the decoder the way the capture does: a frame inside a larger buffer, at an offset. */
import { formatAddress } from '../../../agent/decode/address.ts'
import { decodePacket } from '../../../agent/decode/decode.ts'
import { DecodedPacket, OUTCOME_IP } from '../../../agent/decode/packet.ts'

export interface RunOptions {
  /** Bytes captured (like tcpdump -s); default the whole frame. */
  snaplen?: number | undefined
  /** Length on the wire; default the frame's length. */
  originalLength?: number | undefined
  /** Bytes of unrelated data before the frame in the buffer (default 5). */
  pad?: number
}

/** The decoded fields, with the addresses as text and offsets relative to the frame. */
export interface Decoded {
  outcome: number
  malformed: string
  nonIp: string
  ipVersion: number
  src: string
  dst: string
  protocol: number
  srcPort: number
  dstPort: number
  tcpFlags: number
  icmpType: number
  fragment: boolean
  firstFragment: boolean
  vlan: number
  ipOffset: number
  ipLength: number
  transportOffset: number
  payloadOffset: number
  payloadLength: number
}

/** One shared, reused output object, as in the agent: every test also checks the reset. */
const shared = new DecodedPacket()

export function run(linkType: number, frame: Uint8Array, o: RunOptions = {}): Decoded {
  const pad = o.pad ?? 5
  // Trailing bytes that a decoder reading past the captured end would trip on.
  const buffer = new Uint8Array(pad + frame.length + 64).fill(0xff)
  buffer.set(frame, pad)
  const captured = Math.min(o.snaplen ?? frame.length, frame.length)
  // Poison the shared object's previous state.
  shared.outcome = 99 as typeof shared.outcome
  shared.srcPort = 12345
  shared.fragment = true
  shared.vlan = 7
  decodePacket(linkType, buffer, pad, captured, o.originalLength ?? frame.length, shared)
  const out = shared
  if (out.buffer !== buffer) throw new Error('out.buffer is not the capture buffer')
  const ip = out.outcome === OUTCOME_IP
  const rel = (offset: number): number => (offset < 0 ? offset : offset - pad)
  return {
    outcome: out.outcome,
    malformed: out.outcome === 2 ? out.malformed : '',
    nonIp: out.outcome === 1 ? out.nonIp : '',
    ipVersion: out.ipVersion,
    src: ip ? formatAddress(buffer, out.srcOffset, out.ipVersion === 6 ? 6 : 4) : '',
    dst: ip ? formatAddress(buffer, out.dstOffset, out.ipVersion === 6 ? 6 : 4) : '',
    protocol: out.protocol,
    srcPort: out.srcPort,
    dstPort: out.dstPort,
    tcpFlags: out.tcpFlags,
    icmpType: out.icmpType,
    fragment: out.fragment,
    firstFragment: out.firstFragment,
    vlan: out.vlan,
    ipOffset: rel(out.ipOffset),
    ipLength: out.ipLength,
    transportOffset: rel(out.transportOffset),
    payloadOffset: rel(out.payloadOffset),
    payloadLength: out.payloadLength,
  }
}
