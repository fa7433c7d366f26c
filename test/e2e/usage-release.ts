/**
 * Site usage end to end under the release rule (collector/store/usage.ts): the collector shows a
 * minute of usage only once that minute has ended, `usage.release_after_seconds` has passed and
 * its maintenance tick (15 s) has run the release. A test that reads usage through the API sets
 * a short release delay, keeps its traffic inside one minute, and waits for the release.
 */
import type { CollectorProcess } from './harness.ts'
import { waitFor } from './harness.ts'

/**
 * The release delay the tests give their collectors. It is also how late a batch may arrive and
 * still count, so it leaves room for a slow machine; 10 s is the least the collector takes.
 */
export const RELEASE_AFTER_SECONDS = 15
export const RELEASE_ENV = { TALLY_USAGE_RELEASE_AFTER_SECONDS: String(RELEASE_AFTER_SECONDS) }

/** The collector's maintenance tick, which runs the release (collector/server.ts). */
const TICK_SECONDS = 15

/**
 * The longest wait from the end of the traffic to its release: the rest of its minute, the
 * delay, a tick, and as much again for a machine under load.
 */
export const RELEASE_WAIT_MS = 2 * (60 + RELEASE_AFTER_SECONDS + TICK_SECONDS) * 1000

/**
 * Returns once the traffic about to be made (lasting at most `trafficSeconds`) will end in the
 * minute it starts in: each agent puts a packet in a minute by its own interval, so traffic that
 * spans a minute's end could count a host in one minute for one agent and in the next for
 * another, and a cell's hosts (its k) would differ from what the test means.
 */
export async function inOneMinute(trafficSeconds: number): Promise<void> {
  const second = (Date.now() / 1000) % 60
  if (second + trafficSeconds < 59) return
  await new Promise((r) => setTimeout(r, (60.5 - second) * 1000))
}

/** Packets of every released bucket of a site since `fromMs`, through GET /v1/usage. */
export async function releasedPackets(
  collector: CollectorProcess,
  site: string,
  fromMs: number,
): Promise<number> {
  const from = Math.floor(fromMs / 1000) - 60
  const to = Math.ceil(Date.now() / 1000) + 60
  const answer = await collector.api<{ buckets: Array<{ packets: number }> }>(
    'GET',
    `/v1/usage?site=${site}&by=transport&from=${from}&to=${to}`,
  )
  return answer.buckets.reduce((n, b) => n + b.packets, 0)
}

/** Waits until the collector shows exactly `packets` packets of the site's traffic. */
export async function awaitRelease(
  collector: CollectorProcess,
  site: string,
  fromMs: number,
  packets: number,
): Promise<void> {
  let shown = 0
  await waitFor(
    `the release of the traffic's minutes (${packets} packets expected)`,
    async () => {
      shown = await releasedPackets(collector, site, fromMs)
      if (shown > packets) throw new Error(`${shown} packets shown, more than the ${packets} sent`)
      return shown === packets ? true : undefined
    },
    RELEASE_WAIT_MS,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}; ${shown} packets shown`)
  })
}
