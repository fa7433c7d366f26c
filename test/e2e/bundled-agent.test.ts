/**
 * The bundled agent, started from its one file, enrolls and ships to a collector. `npm run
 * build:agent` makes dist/tally-agent.mjs; the test copies that file alone into an empty directory
 * and runs it from there, so nothing in node_modules or the source tree can help it. It also checks
 * the bundle's other commands, the build's collector guard and the Debian install script.
 *
 * The bundle runs on this test's Node unless TALLY_BUNDLE_NODE names another, to check an older
 * one by hand: TALLY_BUNDLE_NODE=/path/to/node22 npx vitest run test/e2e/bundled-agent.test.ts
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildPcap, udpFrame } from '../common/pcap/pcap-writer.ts'
import { CollectorProcess, freePort, type LogLine, tmp, waitFor } from './harness.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const NODE = process.env.TALLY_BUNDLE_NODE || process.execPath
const INSTALL = join(ROOT, 'deploy', 'agent', 'install.sh')
const execFileAsync = promisify(execFile)

const { version, scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
  scripts: Record<string, string>
}

/** The environment of a host: none of this repository's Node settings. */
function hostEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  delete env.NODE_OPTIONS
  delete env.NODE_PATH
  return env
}

const bundleDir = tmp('bundle')
const bundle = join(bundleDir, 'tally-agent.mjs')

/** Runs the bundle from its own directory and returns what it printed. */
async function runBundle(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync(NODE, [bundle, ...args], { cwd: bundleDir, env: hostEnv() })
}

function which(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, program))) return join(dir, program)
  }
  return undefined
}

describe('the bundled agent (npm run build:agent)', () => {
  let collector: CollectorProcess | undefined
  let agent: ChildProcess | undefined
  let agentStderr = ''

  /** The collector as soon as it is spawned, so that afterAll stops it even if beforeAll fails. */
  let spawned: CollectorProcess | undefined

  beforeAll(async () => {
    expect(scripts['build:agent']).toBe('node scripts/build-agent.ts')
    // The collector starts (and creates its engine) while the bundle builds.
    const starting = freePort().then((port) => {
      spawned = new CollectorProcess(tmp('bundle-data'), port)
      return spawned.ready()
    })
    starting.catch(() => {}) // awaited below; a failed build must not leave it unhandled
    const { stdout } = await execFileAsync(process.execPath, ['scripts/build-agent.ts'], {
      cwd: ROOT,
    })
    const node = (await execFileAsync(NODE, ['--version'])).stdout.trim()
    console.log(`build:agent: ${stdout.trim()}\nthe bundle runs on ${NODE} (${node})`)
    copyFileSync(join(ROOT, 'dist', 'tally-agent.mjs'), bundle)
    collector = await starting
  })

  afterAll(async () => {
    agent?.kill('SIGKILL')
    await (collector ?? spawned)?.stop('SIGKILL')
  })

  it('is one plain JavaScript file without the collector', () => {
    expect(readdirSync(bundleDir)).toEqual(['tally-agent.mjs'])
    const text = readFileSync(bundle, 'utf8')
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true)
    // esbuild names each module it takes in a comment: none is the collector's or the CLI's.
    expect(text).toContain('\n// agent/run.ts\n')
    expect(text).not.toMatch(/^\/\/ (collector|cli)\//m)
    expect(text.length).toBeLessThan(8 * 1024 * 1024)
  })

  it('lists its commands and its version', async () => {
    const help = (await runBundle(['--help'])).stdout
    expect(help).toContain('Usage: tally-agent')
    for (const command of ['run', 'check', 'aggregate']) {
      expect(help).toMatch(new RegExp(`^ {2}${command} `, 'm'))
    }
    expect(help).not.toMatch(/^ {2}(collector|admin|demo|fleet) /m)
    expect((await runBundle(['--version'])).stdout.trim()).toBe(version)
  })

  it('checks the configuration install.sh installs', async () => {
    const example = join(ROOT, 'deploy', 'agent', 'agent.yaml')
    const { stdout } = await runBundle(['check', '-c', example])
    expect(stdout).toContain(`${example}: valid`)
    expect(JSON.parse(stdout.slice(stdout.indexOf('{')))).toMatchObject({
      state_dir: '/var/lib/tally-agent',
      enrollment: { token_file: '/etc/tally/enroll.token' },
    })
    const bad = join(tmp('bundle-config'), 'bad.yaml')
    writeFileSync(bad, 'capture:\n  mode: sideways\n')
    await expect(runBundle(['check', '-c', bad])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('capture.mode'),
    })
  })

  it('aggregates a capture file', async () => {
    const pcap = join(tmp('bundle-pcap'), 'small.pcap')
    const payload = new Uint8Array(32)
    writeFileSync(
      pcap,
      buildPcap(
        [0, 1, 2].map((i) => ({
          tsSeconds: 1_700_000_000 + i,
          tsFraction: 0,
          data: udpFrame(40_000 + i, 53, payload),
        })),
      ),
    )
    const { stdout } = await runBundle([
      'aggregate',
      pcap,
      '--json',
      '--site-prefix',
      '192.0.2.1/32',
    ])
    const report = JSON.parse(stdout) as {
      stats: { packets: number; decoded: number }
      usage: Record<string, unknown>[]
    }
    expect(report.stats).toMatchObject({ packets: 3, decoded: 3 })
    expect(report.usage).toEqual([
      expect.objectContaining({
        direction: 'outbound',
        transport: 'udp',
        service: 'dns',
        peer_class: 'internet',
        packets: 3,
        flows: 3,
      }),
    ])
  })

  it('enrolls and ships batches to a collector', async () => {
    const running = collector as CollectorProcess
    const token = await running.enrollToken('bundle-site')
    const stateDir = join(bundleDir, 'state')
    agent = spawn(NODE, [bundle, 'run'], {
      cwd: bundleDir,
      env: hostEnv({
        TALLY_COLLECTOR_URL: running.url,
        TALLY_ENROLLMENT_TOKEN: token,
        TALLY_ENROLLMENT_HOSTNAME: 'bundled-ws-01',
        TALLY_STATE_DIR: stateDir,
        TALLY_INTERVAL_SECONDS: '1',
        TALLY_CAPTURE_INTERFACE: 'none',
        TALLY_LOG_LEVEL: 'info',
      }),
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    agent.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      agentStderr += chunk
    })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      agent?.once('exit', (code, signal) => resolve({ code, signal })),
    )

    const entry = await waitFor(
      'two batches from the bundled agent',
      async () => {
        if (agent?.exitCode !== null) throw new Error(`agent exited: ${agentStderr}`)
        const found = (await running.fleet()).find((a) => a.host === 'bundled-ws-01')
        return found !== undefined && (found.last_seq ?? 0) >= 2 ? found : undefined
      },
      20_000,
    )
    expect(entry).toMatchObject({ site: 'bundle-site', version })
    expect(entry.batches).toBeGreaterThanOrEqual(2)

    agent.kill('SIGTERM')
    expect(await exited).toEqual({ code: 0, signal: null })
    const lines = agentStderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine)
    expect(lines.some((l) => l.msg === 'agent enrolled')).toBe(true)
    expect(lines.filter((l) => (l.level ?? 0) >= 50)).toEqual([])
    expect(readdirSync(stateDir)).toContain('credential.json')
    expect(readdirSync(bundleDir).sort()).toEqual(['state', 'tally-agent.mjs'])
  })

  it('refuses to build a bundle that takes the collector', async () => {
    const dir = tmp('bundle-guard')
    const entry = join(dir, 'entry.ts')
    writeFileSync(entry, `import '${join(ROOT, 'collector', 'config.ts')}'\n`)
    const outfile = join(dir, 'out.mjs')
    await expect(
      execFileAsync(
        process.execPath,
        ['scripts/build-agent.ts', '--entry', entry, '--outfile', outfile],
        { cwd: ROOT },
      ),
    ).rejects.toMatchObject({ stderr: expect.stringContaining('collector/config.ts') })
    expect(existsSync(outfile)).toBe(false)
  })
})

const shellcheck = which('shellcheck')
const noShellcheck =
  shellcheck === undefined ? 'shellcheck is not installed (apt-get install shellcheck)' : undefined
if (noShellcheck !== undefined) {
  console.warn(
    `\n*** SKIPPING the shellcheck test of deploy/agent/install.sh: ${noShellcheck} ***\n`,
  )
}

describe('deploy/agent/install.sh', () => {
  it('is valid bash', async () => {
    await execFileAsync('bash', ['-n', INSTALL])
  })

  it.skipIf(noShellcheck !== undefined)(
    `passes shellcheck${noShellcheck === undefined ? '' : ` (SKIPPED: ${noShellcheck})`}`,
    async () => {
      await execFileAsync(shellcheck ?? 'shellcheck', [INSTALL])
    },
  )

  it('prints what it would do with --dry-run, and stops at a Node.js older than 22.12', async () => {
    const dir = tmp('install')
    const unit = join(dir, 'tally-agent.service')
    writeFileSync(
      unit,
      `[Service]\nExecStart=${process.execPath} /opt/tally/tally-agent.mjs run --config /etc/tally/agent.yaml\n`,
    )
    const args = ['--dry-run', '--unit', unit, '--collector-url', 'https://tally.example.org']
    const dry = await execFileAsync('bash', [
      INSTALL,
      ...args,
      join(ROOT, 'dist', 'tally-agent.mjs'),
    ])
    for (const step of [
      /^\+ install -m 0755 -o root -g root \S+ \/opt\/tally\/tally-agent\.mjs$/m,
      /^\+ install -d -m 0700 -o tally-agent -g tally-agent \/var\/lib\/tally-agent$/m,
      /^\+ sed -i \S+tally\.example\.org\S* \/etc\/tally\/agent\.yaml$|^install\.sh: keeping/m,
      /^\+ install -m 0644 -o root -g root \S+ \/etc\/systemd\/system\/tally-agent\.service$/m,
      /^\+ systemctl daemon-reload$/m,
      /^\+ systemctl enable --now tally-agent$/m,
      /dry run: nothing was changed/,
    ]) {
      expect(dry.stdout).toMatch(step)
    }
    expect(dry.stdout).toMatch(/tcpdump is installed|^\+ .*apt-get install -y .*tcpdump$/m)
    expect(dry.stdout).toMatch(/user tally-agent exists|^\+ useradd --system .*tally-agent$/m)

    const oldNode = join(dir, 'node')
    writeFileSync(oldNode, '#!/bin/sh\necho v22.11.0\n', { mode: 0o755 })
    writeFileSync(unit, `[Service]\nExecStart=${oldNode} /opt/tally/tally-agent.mjs run\n`)
    const old = await execFileAsync('bash', [INSTALL, ...args])
    expect(old.stderr).toContain('a real run would stop here: the agent needs Node.js 22.12')
    expect(old.stderr).toContain('nodesource')

    await expect(
      execFileAsync('bash', [INSTALL, '--dry-run', '--unit', join(dir, 'absent.service')]),
    ).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('absent.service is missing'),
    })
  })
})
