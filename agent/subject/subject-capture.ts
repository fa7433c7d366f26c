/**
 * Subject capture: for one verified grant, a tcpdump of its own, separate from the aggregate
 * capture, whose kernel (BPF) filter matches the subject alone:
 *
 * - host mode (the grant names no addresses): the host itself, `host A or host B ...` over the
 *   host's own non-loopback addresses (given to the constructor);
 * - gateway mode: `host X or host Y ...` over the grant's addresses.
 *
 * The same expression is repeated behind `vlan` so that tagged frames on a mirror port match
 * too. Snaplen: 65535 when the grant allows full packets; 1500 when it allows dns or web,
 * enough for DNS messages, a TLS ClientHello's server name and an HTTP request line with its
 * Host header, while most of any larger payload never reaches the agent; and for flows alone
 * the aggregate capture's headers-only 128, since flow records need nothing past the
 * transport header (byte counts come from the frames' original lengths).
 *
 * The capture runs only inside the grant's window: start() before the window waits for it, a
 * timer stops tcpdump at the window's end, and drain() stops it as soon as the grant is no
 * longer active (and then hands out everything still held, as a final drain).
 */
import { networkInterfaces } from 'node:os'
import { parseAddress } from '../decode/address.ts'
import { VerifiedGrant } from '../grants/verify.ts'
import {
  type CaptureEvent,
  type CaptureStats,
  DEFAULT_SNAPLEN,
  LiveCapture,
} from '../packets/tcpdump.ts'
import { type RecorderOptions, type RecorderStats, SubjectRecorder } from './recorder.ts'
import type { SubjectRecords } from './records.ts'

/** Snaplen when full packets are granted. */
export const SNAPLEN_PACKETS = 65_535
/** Snaplen for dns or web: DNS, ClientHello SNI, HTTP request line and Host fit. */
export const SNAPLEN_METADATA = 1_500
/** Snaplen for flows alone: headers only, as for the aggregate capture. */
export const SNAPLEN_HEADERS = DEFAULT_SNAPLEN
/** setTimeout cannot wait longer than this (2^31 - 1 ms); longer waits are chained. */
const MAX_TIMER_MS = 2_147_483_647

/** What the grant manager needs of a capture (so tests can give it a fake). */
export interface SubjectCaptureHandle {
  readonly grant: VerifiedGrant
  start(): void
  drain(nowMs: number): SubjectRecords
  stop(): Promise<void>
}

export interface SubjectCaptureOptions {
  /** Interface to capture on (`any` for all of the host's). */
  interface: string
  /** The host's own non-loopback addresses: the subject in host mode. See hostAddresses(). */
  hostAddresses: readonly string[]
  tcpdumpPath?: string
  onEvent?: (event: CaptureEvent) => void
  /** Table sizes and limits of the recorder. */
  limits?: Omit<RecorderOptions, 'subject'>
  /** Restart delays of the tcpdump supervisor (see LiveCaptureOptions). */
  restartBaseMs?: number
  restartMaxMs?: number
}

/** This host's own addresses, loopback excluded (the subject of a host-mode grant). */
export function hostAddresses(): string[] {
  const out = new Set<string>()
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal) out.add(a.address)
  }
  return [...out]
}

/** The subject's addresses for a grant: the grant's in gateway mode, the host's in host mode. */
export function subjectAddresses(grant: VerifiedGrant, host: readonly string[]): string[] {
  const source = grant.hostMode ? host : grant.addresses
  const out: string[] = []
  for (const text of source) {
    parseAddress(text) // throws on anything that is not an IP address: nothing else may reach BPF
    if (!out.includes(text)) out.push(text)
  }
  if (out.length === 0) {
    throw new RangeError(
      grant.hostMode
        ? 'host-mode grant but this host has no non-loopback address to capture'
        : 'gateway-mode grant without addresses',
    )
  }
  return out
}

/** `host A or host B ...`, repeated for 802.1Q-tagged frames. */
export function subjectFilter(addresses: readonly string[]): string {
  const hosts = addresses.map((a) => `host ${a}`).join(' or ')
  return `(${hosts}) or (vlan and (${hosts}))`
}

export function subjectSnaplen(grant: VerifiedGrant): number {
  if (grant.allows('packets')) return SNAPLEN_PACKETS
  if (grant.allows('dns') || grant.allows('web')) return SNAPLEN_METADATA
  return SNAPLEN_HEADERS
}

/** A capture factory for the GrantManager: real subject captures with these options. */
export function subjectCaptureFactory(
  options: SubjectCaptureOptions,
): (grant: VerifiedGrant) => SubjectCapture {
  return (grant) => new SubjectCapture(grant, options)
}

export class SubjectCapture implements SubjectCaptureHandle {
  readonly grant: VerifiedGrant
  readonly addresses: readonly string[]
  readonly filter: string
  readonly snaplen: number
  readonly #recorder: SubjectRecorder
  readonly #capture: LiveCapture
  #timer: NodeJS.Timeout | undefined
  #started = false
  #stopped = false
  #stopping: Promise<void> | undefined

  constructor(grant: VerifiedGrant, options: SubjectCaptureOptions) {
    if (!VerifiedGrant.isGenuine(grant)) {
      throw new TypeError('a subject capture needs a grant verified by verifyGrant')
    }
    this.grant = grant
    this.addresses = Object.freeze(subjectAddresses(grant, options.hostAddresses))
    this.filter = subjectFilter(this.addresses)
    this.snaplen = subjectSnaplen(grant)
    this.#recorder = new SubjectRecorder(grant, { ...options.limits, subject: this.addresses })
    this.#capture = new LiveCapture({
      interface: options.interface,
      snaplen: this.snaplen,
      filter: this.filter,
      tcpdumpPath: options.tcpdumpPath,
      onPacket: this.#recorder.onPacket,
      onHeader: this.#recorder.onHeader,
      onEvent: options.onEvent,
      restartBaseMs: options.restartBaseMs,
      restartMaxMs: options.restartMaxMs,
    })
  }

  /** tcpdump is running. */
  get running(): boolean {
    return this.#capture.running
  }

  /** stop() was called, or the window ended: this capture will not run again. */
  get stopped(): boolean {
    return this.#stopped
  }

  /** Starts tcpdump now if the window is open, or at its start; never after its end. */
  start(): void {
    if (this.#started || this.#stopped) return
    this.#started = true
    this.#tick()
  }

  #tick(): void {
    this.#timer = undefined
    if (this.#stopped) return
    const now = Date.now()
    const { start, end } = this.grant.window
    if (now >= end) {
      void this.stop()
      return
    }
    if (now >= start) this.#capture.start()
    const next = now < start ? start : end
    this.#timer = setTimeout(() => this.#tick(), Math.min(MAX_TIMER_MS, Math.max(0, next - now)))
    this.#timer.unref()
  }

  /**
   * The records since the last drain. Once the grant is no longer active at `nowMs` the capture
   * is stopped and this is a final drain: every flow and pending query is reported.
   */
  drain(nowMs: number): SubjectRecords {
    if (nowMs >= this.grant.window.end) void this.stop()
    return this.#recorder.drain(nowMs, this.#stopped)
  }

  /** Stops tcpdump for good (idempotent); resolves when it has exited. */
  stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    this.#stopping ??= this.#capture.stop()
    return this.#stopping
  }

  recorderStats(): RecorderStats {
    return this.#recorder.stats()
  }

  captureStats(): Promise<CaptureStats> {
    return this.#capture.stats()
  }
}
