/**
 * Why tcpdump stopped, in its own words, reaches the agent's log and the capture status the demo
 * prints; our own stop is not a warning. Real tcpdump, really failing: an interface that does not
 * exist, a user it cannot switch to, no permission to capture.
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { TrafficCapture } from '../../../agent/aggregate/live-traffic.ts'
import { CaptureConfig } from '../../../agent/config.ts'
import { tcpdumpSaid, unavailableReason } from '../../../agent/packets/tcpdump.ts'

const dir = mkdtempSync(join(tmpdir(), 'tally-tcpdump-exit-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function which(program: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}
const tcpdump = which('tcpdump')
const setpriv = which('setpriv')
const root = process.getuid?.() === 0

interface Logged {
  level: number
  msg: string
  [key: string]: unknown
}

function capture(options: { interface: string; tcpdump?: string }) {
  const lines: Logged[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) })
  const traffic = new TrafficCapture(
    CaptureConfig.parse({
      interface: options.interface,
      tcpdump_path: options.tcpdump ?? tcpdump,
      site_prefixes: ['10.0.0.0/8'],
    }),
    log,
  )
  running.push(traffic)
  return { traffic, lines }
}

const running: TrafficCapture[] = []
afterEach(async () => {
  // Every tcpdump this file started ends here, whatever a test left behind.
  await Promise.all(running.splice(0).map((t) => t.stop()))
})

/** A tcpdump that runs the real one with extra options or under another user. */
function wrapper(name: string, command: string): string {
  const path = join(dir, name)
  writeFileSync(path, `#!/bin/sh\nexec ${command} "$@"\n`)
  chmodSync(path, 0o755)
  return path
}

describe('tcpdumpSaid and unavailableReason (tcpdump output as printed by 4.99)', () => {
  it('keeps what tcpdump says about itself and leaves out its banner and counters', () => {
    expect(
      tcpdumpSaid(
        'tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 128 bytes\n' +
          "tcpdump: Couldn't find user 'tcpdump'\n",
      ),
    ).toBe("tcpdump: Couldn't find user 'tcpdump'")
    expect(
      tcpdumpSaid(
        '3 packets captured\n3 packets received by filter\n0 packets dropped by kernel\n',
      ),
    ).toBeUndefined()
    expect(tcpdumpSaid('')).toBeUndefined()
  })

  it('says what to do when tcpdump cannot switch to its user', () => {
    expect(unavailableReason("tcpdump: Couldn't find user 'tcpdump'\n", 'eth0', undefined)).toMatch(
      /user 'tcpdump'.*does not exist.*useradd --system tcpdump/,
    )
  })
})

describe.skipIf(tcpdump === undefined)(
  `real tcpdump failing${tcpdump === undefined ? ' (SKIPPED: tcpdump is not installed)' : ''}`,
  () => {
    it("an interface that does not exist: the status and the log carry tcpdump's own words", async () => {
      const { traffic, lines } = capture({ interface: 'tally-nosuch0' })
      traffic.start()
      const status = await traffic.settled(20_000)
      expect(status.state).toBe('unavailable')
      expect(status.reason).toContain('tally-nosuch0 does not exist')
      expect(status.reason).toContain('tcpdump said: tcpdump: tally-nosuch0: No such device exists')
      const exited = lines.find((l) => l.msg === 'tcpdump exited')
      expect(exited?.tcpdump_said).toContain('No such device exists')
      const unavailable = lines.find((l) => l.msg.startsWith('traffic capture unavailable'))
      expect(unavailable?.reason).toContain('No such device exists')
    })

    it.skipIf(!root)(
      `a user tcpdump cannot switch to ("Couldn't find user")${root ? '' : ' (SKIPPED: needs root: tcpdump drops privileges only as root)'}`,
      async () => {
        const { traffic, lines } = capture({
          interface: 'lo',
          tcpdump: wrapper('tcpdump-no-user', `${tcpdump} -Z tally-no-such-user`),
        })
        traffic.start()
        const status = await traffic.settled(20_000)
        expect(status.state).toBe('unavailable')
        expect(status.reason).toContain("user 'tally-no-such-user'")
        expect(status.reason).toContain(
          "tcpdump said: tcpdump: Couldn't find user 'tally-no-such-user'",
        )
        expect(lines.find((l) => l.msg === 'tcpdump exited')?.tcpdump_said).toContain(
          "Couldn't find user",
        )
      },
    )

    it.skipIf(!root || setpriv === undefined)(
      `no permission to capture (user nobody, no capabilities)${root && setpriv !== undefined ? '' : ' (SKIPPED: needs root and setpriv to drop to nobody)'}`,
      async () => {
        const { traffic } = capture({
          interface: 'lo',
          tcpdump: wrapper(
            'tcpdump-nobody',
            `${setpriv} --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all ${tcpdump}`,
          ),
        })
        traffic.start()
        const status = await traffic.settled(20_000)
        expect(status.state).toBe('unavailable')
        expect(status.reason).toContain('lacks permission to capture on lo')
        expect(status.reason).toContain("You don't have permission")
      },
    )

    it.skipIf(!root)(
      `a normal stop is logged as information, not as a warning${root ? '' : ' (SKIPPED: capturing on lo needs root)'}`,
      async () => {
        const { traffic, lines } = capture({ interface: 'lo' })
        traffic.start()
        expect((await traffic.settled(20_000)).state).toBe('running')
        await traffic.stop()
        expect(lines.find((l) => l.msg === 'tcpdump stopped')?.level).toBe(30)
        expect(lines.filter((l) => l.level >= 40)).toEqual([])
      },
    )
  },
)
