/**
 * The demo's banner as a new operator reads it: it claims a capture only when tcpdump captures,
 * says tcpdump's own reason when it does not, and its hints work as printed for the collector
 * and token file actually in effect (port 0 here, a data directory of its own). And the people
 * of a case it makes, so that a newcomer signs in to the console as each.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { z } from 'zod'
import { demoHints } from '../../cli/demo.ts'
import { DEMO_ROLES, makeDemoPeople, personFileOf, whoFileOf } from '../../cli/demo-people.ts'
import { admin, register } from '../../protocol/api/index.ts'
import type { RegisterEntry } from '../../protocol/api/register.ts'
import { call, readTokenFile } from '../../protocol/client.ts'
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
afterEach(stopDemos)

interface StartedDemo {
  banner: string
  dataDir: string
  /** Everything the demo printed so far. */
  output: () => string
}

/** Starts `tally demo` and resolves with its banner once it is complete. */
async function demo(env: Record<string, string>, dataDir = tmp('demo')): Promise<StartedDemo> {
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
  return { banner, dataDir, output: () => out }
}

/** Stops the demos started so far (SIGINT to each one's group) and waits for them to exit. */
async function stopDemos(): Promise<void> {
  for (const demo of demos.splice(0)) {
    if (demo.exitCode !== null || demo.signalCode !== null) continue
    const exited = new Promise((resolve) => demo.once('exit', resolve))
    // Its own process group: the collector's engine and the agent's tcpdump go with it.
    process.kill(-(demo.pid as number), 'SIGINT')
    const timer = setTimeout(() => process.kill(-(demo.pid as number), 'SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
  }
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

/** Waits for the demo's one line about its people, and returns it. */
const peopleLine = (started: StartedDemo): Promise<string> =>
  waitFor(
    "the demo's line about its people",
    () => /^people .*$/m.exec(started.output().slice(started.banner.length))?.[0],
    40_000,
  )

/** Signs in to the console as a browser would, then asks the session who this is. */
async function consoleIdentity(url: string, token: string) {
  const signIn = await fetch(`${url}/console/session`, {
    method: 'POST',
    headers: { origin: url, 'sec-fetch-site': 'same-origin', accept: 'application/json' },
    body: new URLSearchParams({ token }),
  })
  const refusal = signIn.status === 201 ? '' : await signIn.text()
  expect(signIn.status, refusal).toBe(201)
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
  const me = await fetch(`${url}/console/api/session`, { headers: { cookie } })
  expect(me.status).toBe(200)
  return (await me.json()) as { user_id: string; name: string; roles: string[] }
}

async function allEntries(url: string, token: string, name: 'itsd' | 'oios') {
  const out: z.infer<typeof RegisterEntry>[] = []
  let from: number | null = 1
  while (from !== null) {
    const page: { entries: z.infer<typeof RegisterEntry>[]; next_from: number | null } = await call(
      { collectorUrl: url, token },
      register.registerEntries,
      {
        params: { register: name },
        query: { from },
      },
    )
    out.push(...page.entries)
    from = page.next_from
  }
  return out
}

describe("the demo's people: one per role of a case, for the console", () => {
  // The second start reuses the first's data directory (so these two run in order).
  const dataDir = tmp('demo-people')
  const tokens = new Map<string, string>()

  it('are made at the first start: 0600 files, each signs in to the console with exactly its role, each ITSD role granted by one admin and confirmed by the other', async () => {
    const started = await demo({ TALLY_CAPTURE_INTERFACE: 'none' }, dataDir)
    const url = urlOf(started.banner)
    expect(started.banner).toContain(
      `people      ${join(dataDir, 'people', '*.token')}   (demo only: sign in to the console as each)`,
    )
    const line = await peopleLine(started)
    expect(line).toBe(
      `people ready in ${join(dataDir, 'people')}/: ${DEMO_ROLES.join(', ')}; who is who in people.txt`,
    )
    expect(statSync(join(dataDir, 'people')).mode & 0o777).toBe(0o700)

    const userOf = new Map<string, string>()
    const nameOf = new Map<string, string>()
    for (const role of DEMO_ROLES) {
      const file = personFileOf(dataDir, role)
      expect(statSync(file).mode & 0o777, file).toBe(0o600)
      const token = readTokenFile(file)
      tokens.set(role, token)
      // The console refuses a provisional token: a 201 here says it is not one.
      const me = await consoleIdentity(url, token)
      expect(me.roles, role).toEqual([role])
      userOf.set(role, me.user_id)
      nameOf.set(role, me.name)
    }
    expect(new Set(userOf.values()).size).toBe(DEMO_ROLES.length)
    // Who is who, for the forms that ask for a user id (receiving official, investigator).
    const who = readFileSync(whoFileOf(dataDir), 'utf8')
    expect(who.trimEnd().split('\n')).toEqual(
      DEMO_ROLES.map((role) => `${role}\t${userOf.get(role)}\t${nameOf.get(role)}`),
    )
    // The bootstrap chief's token was replaced, so the file that held it held a dead token.
    expect(existsSync(join(dataDir, 'oios-bootstrap.token'))).toBe(false)

    const adminToken = readTokenFile(join(dataDir, 'admin.token'))
    const { users } = await call({ collectorUrl: url, token: adminToken }, admin.listUsers)
    const admins = users.filter((u) => u.roles.includes('admin')).map((u) => u.user_id)
    expect(admins).toHaveLength(2)
    const entries = await allEntries(url, tokens.get('auditor') as string, 'itsd')
    for (const role of DEMO_ROLES.filter((r) => r !== 'oios_chief')) {
      const user = userOf.get(role)
      const proposed = entries.filter(
        (e) => e.kind === 'user proposed' && e.details.user_id === user,
      )
      const confirmed = entries.filter(
        (e) => e.kind === 'roles confirmed' && e.details.user_id === user,
      )
      expect(proposed, role).toHaveLength(1)
      expect(confirmed, role).toHaveLength(1)
      expect(proposed[0]?.details.roles, role).toEqual([role])
      expect(confirmed[0]?.details.roles, role).toEqual([role])
      expect(new Set([proposed[0]?.actor, confirmed[0]?.actor]), role).toEqual(new Set(admins))
    }
    // OIOS's chief is the bootstrap chief, who replaced its provisional token itself.
    const oios = await allEntries(url, tokens.get('oios_chief') as string, 'oios')
    const replaced = oios.filter((e) => e.kind === 'user token replaced')
    expect(replaced.map((e) => [e.actor, e.details.was_provisional])).toEqual([
      [userOf.get('oios_chief'), true],
    ])
  })

  it('are kept at a second start on the same data directory: the same tokens, still working', async () => {
    expect(tokens.size, 'the first start made the people').toBe(DEMO_ROLES.length)
    const started = await demo({ TALLY_CAPTURE_INTERFACE: 'none' }, dataDir)
    const line = await peopleLine(started)
    expect(line).toBe(
      `people ready in ${join(dataDir, 'people')}/ (kept from an earlier start): ${DEMO_ROLES.join(', ')}; who is who in people.txt`,
    )
    const url = urlOf(started.banner)
    for (const role of DEMO_ROLES) {
      expect(readTokenFile(personFileOf(dataDir, role)), role).toBe(tokens.get(role))
      expect((await consoleIdentity(url, tokens.get(role) as string)).roles, role).toEqual([role])
    }
  })
})

describe('makeDemoPeople when the collector cannot make them', () => {
  it('says so in one line and throws nothing', async () => {
    const dataDir = tmp('demo-people-down')
    const secondAdminFile = join(dataDir, 'admin2.token')
    writeFileSync(secondAdminFile, 'tly_u_nobody.x\n', { mode: 0o600 })
    // Port 9 on loopback: nothing listens (discard), so every call fails to connect.
    const line = await makeDemoPeople({
      collectorUrl: 'http://127.0.0.1:9',
      adminToken: 'tly_u_nobody.y',
      secondAdminFile,
      oiosBootstrapFile: undefined,
      dataDir,
    })
    expect(line).not.toContain('\n')
    expect(line).toMatch(
      /^people not all made in .*\/people\/: requester \(cannot reach the collector/,
    )
    expect(line).toContain('oios_chief (no OIOS bootstrap token file of the demo)')
    expect(existsSync(personFileOf(dataDir, 'requester'))).toBe(false)
  })
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
