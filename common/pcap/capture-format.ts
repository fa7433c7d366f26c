/**
 * What the capture readers (classic pcap in pcap-reader.ts, pcapng in pcapng.ts) share: the
 * header and packet callbacks their consumers see, their error, and byte arithmetic that reads
 * fields without allocating.
 */

export interface PcapHeader {
  /** LINKTYPE_* value (1 = Ethernet, 113 = Linux cooked, ...), FCS bits masked off. */
  linkType: number
  snaplen: number
  /** true: `tsFraction` is nanoseconds; false: microseconds. */
  nanosecond: boolean
  /** Byte order the file (pcapng: the section) was written in. */
  bigEndian: boolean
  versionMajor: number
  versionMinor: number
}

/**
 * Receives one record. `data[offset .. offset + capturedLength)` are the captured bytes. They
 * are only valid during the call: `data` is the pushed chunk (which the caller may reuse) or the
 * reader's carry buffer (which the next split record overwrites). Copy what must be kept.
 * `tsSeconds` is an unsigned 32-bit count of seconds; `tsFraction` is microseconds or
 * nanoseconds, per the last header given. `capturedLength <= originalLength` always.
 */
export type PacketSink = (
  data: Uint8Array,
  offset: number,
  capturedLength: number,
  originalLength: number,
  tsSeconds: number,
  tsFraction: number,
) => void

/** The stream cannot be read on: not a capture, or its framing is broken beyond resynchronising. */
export class PcapFormatError extends Error {
  override name = 'PcapFormatError'
}

/** libpcap's MAXIMUM_SNAPLEN: no sane capture has records larger than this. */
export const MAXIMUM_SNAPLEN = 262_144

export function hex(bytes: Uint8Array, offset: number, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) {
    const b = bytes[offset + i]
    if (b === undefined) break
    if (i > 0) out += ' '
    out += b.toString(16).padStart(2, '0')
  }
  return out
}

export function readBE32(b: Uint8Array, o: number): number {
  return (
    (((b[o] as number) << 24) |
      ((b[o + 1] as number) << 16) |
      ((b[o + 2] as number) << 8) |
      (b[o + 3] as number)) >>>
    0
  )
}

export function readLE32(b: Uint8Array, o: number): number {
  return (
    ((b[o] as number) |
      ((b[o + 1] as number) << 8) |
      ((b[o + 2] as number) << 16) |
      ((b[o + 3] as number) << 24)) >>>
    0
  )
}
