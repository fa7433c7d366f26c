/**
 * The demo's banner as a new operator reads it: it claims a capture only when tcpdump captures,
 * says tcpdump's own reason when it does not, and its hints work as printed for the collector
 * and token file actually in effect (port 0 here, a data directory of its own).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { demoHints } from '../../cli/demo.ts'
import { tmp, waitFor } from '../e2e/harness.ts'
import { ROOT, tally } from './run-tally.ts'

const hasTcpdump = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v tcpdump'])
    return true
  } catch {
    return false
  }
})()
const root = process.getuid?.() === 0

const demos: ChildProcess[] = []
afterEach(async () => {
  for (const demo of demos.splice(0)) {
    if (demo.exitCode !== null || demo.signalCode !== null) continue
    const exited = new Promise((resolve) => demo.once('exit', resolve))
    // Its own process group: the collector's engine and the agent's tcpdump go with it.
    process.kill(-(demo.pid as number), 'SIGINT')
    const timer = setTimeout(() => process.kill(-(demo.pid as number), 'SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
  }
})

/** Starts `tally demo` and resolves with its banner once it is complete. */
async function demo(env: Record<string, string>): Promise<{ banner: string; dataDir: string }> {
  const dataDir = tmp('demo')
  const child = spawn(
    process.execPath,
    ['bin/tally.ts', 'demo', '--port', '0', '--data-dir', dataDir, '--interval', '2'],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  )
  demos.push(child)
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text
  })
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text
  })
  const banner = await waitFor(
    'the demo banner',
    () => {
      if (child.exitCode !== null) throw new Error(`demo exited ${child.exitCode}: ${err}`)
      const end = out.indexOf('Ctrl-C stops both')
      return end < 0 ? undefined : out.slice(0, end)
    },
    45_000,
  )
  return { banner, dataDir }
}

const urlOf = (banner: string): string =>
  (/collector {3}(http:\/\/127\.0\.0\.1:\d+)/.exec(banner) as RegExpExecArray)[1] as string

describe('the demo banner', () => {
  it("with a capture interface that does not exist: no claim of capture, tcpdump's reason, hints for the port in effect", async () => {
    const { banner, dataDir } = await demo({ TALLY_CAPTURE_INTERFACE: 'tally-nosuch0' })
    expect(banner).not.toMatch(/capturing|captured on/)
    expect(banner).toContain('Traffic capture on tally-nosuch0 is not running')
    expect(banner).toContain('tcpdump said: tcpdump: tally-nosuch0: No such device exists')

    const url = urlOf(banner)
    expect(url).not.toBe('http://127.0.0.1:0')
    const tokenFile = join(dataDir, 'admin.token')
    const fleetHint = `npm run tally -- fleet --collector ${url} --token-file ${tokenFile}`
    expect(banner).toContain(fleetHint)
    expect(banner).toContain(`--collector ${url} --token-file ${tokenFile}`)
    expect(banner).toContain(`${url}/v1/usage?by=service`)
    // The hint works as printed.
    const fleet = await tally(fleetHint.replace('npm run tally -- ', '').split(' '))
    expect(fleet.code, fleet.stderr).toBe(0)
  })

  it.skipIf(!hasTcpdump || !root)(
    `says it captures when tcpdump does${hasTcpdump && root ? '' : ' (SKIPPED: needs tcpdump and root to capture on lo)'}`,
    async () => {
      const { banner } = await demo({ TALLY_CAPTURE_INTERFACE: 'lo' })
      expect(banner).toContain('Traffic: capturing packet headers on lo with tcpdump')
      expect(banner).not.toContain('not running')
    },
  )
})

describe('demoHints', () => {
  it('leaves out what the commands already default to', () => {
    const hints = demoHints({
      url: 'http://127.0.0.1:8080',
      tokenFile: join(process.cwd(), 'data', 'admin.token'),
      k: 5,
      options: {},
    })
    expect(hints.fleet[0]).toBe('npm run tally -- fleet')
    expect(hints.usage[2]).toMatch(/TALLY_USAGE_K=1 npm start$/)
  })

  it('spells out a port, a data directory and a quoted path', () => {
    const hints = demoHints({
      url: 'http://127.0.0.1:9090',
      tokenFile: "/tmp/it's here/admin.token",
      k: 5,
      options: { port: 9090, dataDir: "/tmp/it's here" },
    })
    expect(hints.fleet[0]).toBe(
      "npm run tally -- fleet --collector http://127.0.0.1:9090 --token-file '/tmp/it'\\''s here/admin.token'",
    )
    expect(hints.usage[2]).toContain(
      "TALLY_USAGE_K=1 npm start -- --port 9090 --data-dir '/tmp/it'\\''s here'",
    )
  })
})
