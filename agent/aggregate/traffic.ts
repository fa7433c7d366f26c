/**
 * Packets in, aggregates out: the decode and aggregate stages joined behind one packet sink, for
 * the live capture and for files alike.
 */
import type { PacketSink, PcapHeader } from '../../common/pcap/pcap-reader.ts'
import { decodePacket } from '../decode/decode.ts'
import { DecodedPacket } from '../decode/packet.ts'
import { type AggregatorOptions, TrafficAggregator } from './aggregator.ts'

export class TrafficCounter {
  readonly aggregator: TrafficAggregator
  readonly #packet = new DecodedPacket()
  #linkType = -1
  #fractionsPerMs = 1000

  constructor(options: AggregatorOptions) {
    this.aggregator = new TrafficAggregator(options)
  }

  /** Each capture stream starts with a header naming its link type and timestamp precision. */
  readonly onHeader = (header: PcapHeader): void => {
    this.#linkType = header.linkType
    this.#fractionsPerMs = header.nanosecond ? 1_000_000 : 1000
  }

  readonly onPacket: PacketSink = (
    data,
    offset,
    capturedLength,
    originalLength,
    tsSeconds,
    tsFraction,
  ) => {
    decodePacket(this.#linkType, data, offset, capturedLength, originalLength, this.#packet)
    this.aggregator.add(
      this.#packet,
      originalLength,
      tsSeconds * 1000 + tsFraction / this.#fractionsPerMs,
    )
  }
}
