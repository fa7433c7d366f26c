/**
 * The end-to-end harness: a kill -9 of an agent in a test takes its tcpdump with it (the process
 * runs in a group of its own and SIGKILL goes to the group), so that no capture outlives a test.
 * The agent captures on a veth pair of its own that carries nothing (no address, no IPv6, no
 * multicast): a tcpdump whose agent is gone ends only when it next writes a packet, so there it
 * would run forever.
 */
import { execFileSync } from 'node:child_process'
import { afterAll, describe, expect, it } from 'vitest'
import { findLeftovers, settleLeftovers } from '../setup/leftovers.ts'
import { AgentProcess, CollectorProcess, freePort, tmp, waitFor } from './harness.ts'

function hasTcpdump(): boolean {
  try {
    execFileSync('tcpdump', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
const unavailable = !hasTcpdump()
  ? 'tcpdump is not installed (apt-get install tcpdump)'
  : process.getuid?.() !== 0
    ? 'not root: no veth pair, no capture'
    : undefined
/** This process's own interface name (at most 15 characters). */
const QUIET = `tlyq${process.pid.toString(36)}`
if (unavailable !== undefined) {
  console.warn(`\n*** SKIPPING test/e2e/harness.test.ts: ${unavailable} ***\n`)
}

describe.skipIf(unavailable !== undefined)('AgentProcess.stop("SIGKILL")', () => {
  let collector: CollectorProcess | undefined
  let agent: AgentProcess | undefined
  afterAll(async () => {
    await agent?.stop('SIGKILL')
    await collector?.stop('SIGKILL')
    try {
      execFileSync('ip', ['link', 'del', QUIET], { stdio: 'ignore' })
    } catch {
      // never made
    }
  })

  it('leaves no tcpdump of the agent behind', async () => {
    execFileSync('ip', ['link', 'add', QUIET, 'type', 'veth', 'peer', 'name', `${QUIET}p`])
    for (const end of [QUIET, `${QUIET}p`]) {
      execFileSync('sysctl', ['-qw', `net.ipv6.conf.${end}.disable_ipv6=1`])
      execFileSync('ip', ['link', 'set', end, 'multicast', 'off', 'up'])
    }
    collector = await new CollectorProcess(tmp('harness-data'), await freePort()).ready()
    const capturing = new AgentProcess(tmp('harness-agent'), collector.url, {
      TALLY_ENROLLMENT_TOKEN: await collector.enrollToken('harness-site'),
      TALLY_CAPTURE_INTERFACE: QUIET,
    })
    agent = capturing
    await waitFor('the agent capturing on its quiet interface', () =>
      capturing.logged('traffic capture started').length > 0 ? true : undefined,
    )
    const pid = capturing.child.pid ?? -1
    const inGroup = () =>
      findLeftovers('TALLY_TEST_FILE', process.env.TALLY_TEST_FILE ?? '').filter(
        (p) => p.pgid === pid,
      )
    expect(inGroup().map((p) => p.command)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^tcpdump /)]),
    )

    expect(await capturing.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' })
    // Time enough for a killed tcpdump to be gone, and nothing would end a forgotten one.
    expect(await settleLeftovers(inGroup, 5_000)).toEqual([])
  })
})
