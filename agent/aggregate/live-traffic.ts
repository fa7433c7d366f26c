/**
 * The agent's live traffic capture: tcpdump on the configured interface (headers only), decoded
 * and aggregated in process, drained once per interval into the batch. When tcpdump is missing
 * or may not capture, the agent says so plainly and goes on with host metrics.
 */
import type { Logger } from 'pino'
import type { HostSample, UsageContribution } from '../../protocol/v1.ts'
import type { CaptureConfig } from '../config.ts'
import { type CaptureStats, LiveCapture, tcpdumpSaid } from '../packets/tcpdump.ts'
import { aggregatorOptions, defaultInterface } from './site.ts'
import { TrafficCounter } from './traffic.ts'

export interface TrafficInterval {
  usage: UsageContribution[]
  samples: HostSample[]
}

export interface CaptureStatus {
  /** restarting: tcpdump exited for a reason a restart may cure; unavailable: it cannot capture. */
  state: 'starting' | 'running' | 'restarting' | 'unavailable'
  reason?: string
}

export class TrafficCapture {
  readonly interface: string
  readonly #counter: TrafficCounter
  readonly #capture: LiveCapture
  #last: CaptureStats = { received: 0, droppedByKernel: 0, droppedByInterface: 0, packets: 0 }
  #available = true
  #runningBeforeStop: boolean | undefined
  /** What an operator should know: capturing, or why not (in tcpdump's own words too). */
  status: CaptureStatus = { state: 'starting' }
  #settledWaiters: Array<() => void> = []
  /** What tcpdump said when it last exited, to go with the reason we give. */
  #lastSaid: string | undefined

  constructor(config: CaptureConfig, log: Logger) {
    const name = config.interface === 'auto' ? defaultInterface() : config.interface
    if (name === undefined)
      throw new Error('no network interface to capture on; set capture.interface')
    this.interface = name
    this.#counter = new TrafficCounter(aggregatorOptions(config))
    this.#capture = new LiveCapture({
      interface: name,
      tcpdumpPath: config.tcpdump_path,
      onPacket: this.#counter.onPacket,
      onHeader: this.#counter.onHeader,
      onEvent: (event) => {
        if (event.kind === 'started') {
          this.#available = true
          this.#lastSaid = undefined
          this.#setStatus({ state: 'running' })
          log.info({ interface: name, pid: event.pid }, 'traffic capture started')
        } else if (event.kind === 'unavailable') {
          this.#available = false
          const reason =
            this.#lastSaid === undefined
              ? event.reason
              : `${event.reason} (tcpdump said: ${this.#lastSaid})`
          this.#setStatus({ state: 'unavailable', reason })
          log.warn({ interface: name, reason }, 'traffic capture unavailable; host metrics go on')
        } else if (event.restartInMs < 0) {
          // Our own stop(): the end of a run, not a problem.
          log.info({ interface: name, code: event.code, signal: event.signal }, 'tcpdump stopped')
        } else {
          const said = tcpdumpSaid(event.stderr)
          this.#lastSaid = said
          const how = event.signal === null ? `code ${event.code}` : `signal ${event.signal}`
          this.#setStatus({
            state: 'restarting',
            reason:
              said === undefined
                ? `tcpdump exited (${how}) without saying why; restarting`
                : `tcpdump exited (${how}): ${said}`,
          })
          log.warn(
            {
              interface: name,
              code: event.code,
              signal: event.signal,
              tcpdump_said: said,
              restart_in_ms: event.restartInMs,
            },
            'tcpdump exited',
          )
        }
      },
    })
  }

  #setStatus(status: CaptureStatus): void {
    this.status = status
    for (const resolve of this.#settledWaiters.splice(0)) resolve()
  }

  /**
   * The status once tcpdump has either started capturing or failed, or after `timeoutMs`
   * (still 'starting' then): what the demo may truthfully say about the capture.
   */
  async settled(timeoutMs: number): Promise<CaptureStatus> {
    if (this.status.state !== 'starting') return this.status
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs)
      function done() {
        clearTimeout(timer)
        resolve()
      }
      this.#settledWaiters.push(done)
    })
    return this.status
  }

  start(): void {
    this.#capture.start()
  }

  /** Stops tcpdump; the last drain still reports the state the capture was in before. */
  async stop(): Promise<void> {
    this.#runningBeforeStop = this.#isRunning()
    await this.#capture.stop()
  }

  #isRunning(): boolean {
    return this.#runningBeforeStop ?? (this.#capture.running && this.#available)
  }

  /** The interval's usage contributions and tier T samples (traffic totals, capture health). */
  async drain(nowMs: number): Promise<TrafficInterval> {
    const stats = await this.#capture.stats()
    const { usage, traffic, counters } = this.#counter.aggregator.drain(nowMs)
    const delta = (k: keyof CaptureStats) => Math.max(0, stats[k] - this.#last[k])
    const outcome = (
      name: NonNullable<HostSample['attributes']['tally.capture.outcome']>,
      value: number,
    ): HostSample => ({
      metric: 'tally.capture.packets',
      value,
      attributes: { 'tally.capture.outcome': name },
    })
    const samples: HostSample[] = [
      ...traffic,
      {
        metric: 'tally.capture.running',
        value: this.#isRunning() ? 1 : 0,
        attributes: {},
      },
      outcome('received', delta('received')),
      outcome('dropped_kernel', delta('droppedByKernel')),
      outcome('dropped_interface', delta('droppedByInterface')),
      outcome('decoded', counters.decoded),
      outcome('non_ip', counters.nonIp),
      outcome(
        'malformed',
        [...counters.malformed.values()].reduce((a, b) => a + b, 0),
      ),
      ...[...counters.malformed].map(([reason, value]) => ({
        metric: 'tally.capture.malformed' as const,
        value,
        attributes: { 'tally.malformed.reason': reason },
      })),
    ]
    this.#last = stats
    return { usage, samples }
  }
}
