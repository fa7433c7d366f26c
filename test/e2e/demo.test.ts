/** `npm start` as a new user sees it: `tally demo` on a fresh data directory. */
import { spawn } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { freePort, tmp, waitFor } from './harness.ts'

it('starts a collector and an agent, shows the host in /v1/fleet within 30 s, and stops on Ctrl-C', async () => {
  const dataDir = join(tmp('demo'), 'data')
  const port = await freePort()
  const demo = spawn(
    process.execPath,
    ['bin/tally.ts', 'demo', '--port', String(port), '--data-dir', dataDir],
    {
      cwd: new URL('../../', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  demo.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  demo.stderr.resume()
  const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)))
  const started = Date.now()
  try {
    await waitFor('the demo banner', () => (stdout.includes('Ctrl-C') ? true : undefined))
    const url = `http://127.0.0.1:${port}`
    const tokenFile = join(dataDir, 'admin.token')
    expect(stdout).toContain(url)
    expect(stdout).toContain(dataDir)
    expect(stdout).toContain(tokenFile)
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600)
    const token = readFileSync(tokenFile, 'utf8')
    expect(token).toMatch(/^tly_u_[a-z0-9-]+\.[A-Za-z0-9_-]{43}\n$/)

    const agents = await waitFor(
      'the host in the fleet',
      async () => {
        const response = await fetch(`${url}/v1/fleet`, {
          headers: { authorization: `Bearer ${token.trim()}` },
        })
        const body = (await response.json()) as {
          agents: { site: string; last_seq: number | null }[]
        }
        return body.agents.some((a) => a.last_seq !== null) ? body.agents : undefined
      },
      30_000,
    )
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(agents).toHaveLength(1)
    expect(agents[0]?.site).toBe('demo')
  } finally {
    demo.kill('SIGINT')
  }
  expect(await exited).toBe(0)
  expect(stdout).toContain('stopped.')
})
