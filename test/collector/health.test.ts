/**
 * Health tells the truth: /readyz is 503 when the store does not take writes, and every store
 * failure is a 503 with Retry-After, never a 500.
 *
 * How the store is made unwritable, for real: the embedded engine's data directory is a small
 * tmpfs (we run as root; mount fails otherwise and the disk tests are skipped, saying so) that
 * the test fills with a file. The engine then refuses every insert with NOT_ENOUGH_SPACE (243)
 * while reads and pings still work, which is why readiness has to be a write. A remount
 * read-only is not possible while the engine holds files open for writing ("mount point is
 * busy"), and as root file modes do not stop writes, so "full" is the unwritable store here.
 * TOO_MANY_PARTS is produced by the engine too, with the table setting that bounds parts.
 * A server that refuses connections is a ClickHouse URL on a closed loopback port.
 */
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../collector/app.ts'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { CollectorConfig } from '../../collector/config.ts'
import { openStore } from '../../collector/store/client.ts'
import { freePort } from '../e2e/harness.ts'
import {
  type EnrolledAgent,
  enrollAgent,
  errorBody,
  gz,
  type Harness,
  makeBatch,
  openHarness,
  postIngest,
  userToken,
} from './harness.ts'

const mountDir = mkdtempSync(join(tmpdir(), 'tally-health-'))
let mounted = false
let mountError = ''
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0700', 'tmpfs', mountDir], {
    stdio: 'pipe',
  })
  mounted = true
} catch (err) {
  mountError = String((err as { stderr?: Buffer }).stderr ?? err).trim()
  process.stderr.write(
    `health.test.ts: SKIPPING the full-disk tests: cannot mount a tmpfs (${mountError}); run as root\n`,
  )
}

const FILLER = join(mountDir, 'filler')

/** Writes zeros until the file system is full. */
function fillDisk(): void {
  const fd = openSync(FILLER, 'w')
  const chunk = Buffer.alloc(1024 * 1024)
  try {
    for (;;) writeSync(fd, chunk)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  } finally {
    closeSync(fd)
  }
}

async function waitForStatus(
  probe: () => Promise<Response> | Response,
  status: number,
  timeoutMs = 20_000,
): Promise<Response> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const res = await probe()
    if (res.status === status || Date.now() > deadline) return res
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe.skipIf(!mounted)(
  `a full store (tmpfs data directory${mounted ? '' : `: SKIPPED, cannot mount: ${mountError}`})`,
  () => {
    let h: Harness
    let admin: string
    let agent: EnrolledAgent

    beforeAll(async () => {
      h = await openHarness({ dir: mountDir, readyProbeMs: 100 })
      admin = await userToken(h.store, ['admin'])
      agent = await enrollAgent(h, 'health-site', 'health-host')
    })

    afterAll(async () => {
      rmSync(FILLER, { force: true })
      await h?.close()
    })

    const readyz = () => h.app.request('/readyz')
    const enrollToken = () =>
      h.app.request('/v1/admin/enroll-tokens', {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ site: 'health-site' }),
      })

    it('is ready while writes succeed', async () => {
      expect((await readyz()).status).toBe(200)
      expect((await enrollToken()).status).toBe(201)
    })

    it('is not ready, and answers 503 with Retry-After, while the disk is full', async () => {
      fillDisk()
      try {
        const ready = await waitForStatus(readyz, 503)
        expect(ready.status).toBe(503)
        expect(ready.headers.get('retry-after')).toBe(String(h.config.ingest.retry_after_seconds))
        const why = await errorBody(ready)
        expect(why.error).toBe('store_not_writable')
        expect(why.message).toContain('NOT_ENOUGH_SPACE')
        // Reads still work: the ping alone would have said ready.
        expect((await h.store.ping()).success).toBe(true)

        const token = await enrollToken()
        expect(token.status).toBe(503)
        expect(token.headers.get('retry-after')).toBe('5')
        // An enrollment token is on the register before it exists: the register's own 503 says
        // that nothing was done (every route answers a register it cannot write the same way).
        expect((await errorBody(token)).error).toBe('register_unavailable')

        const user = await h.app.request('/v1/admin/users', {
          method: 'POST',
          headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'someone', roles: ['operator'] }),
        })
        expect(user.status).toBe(503)

        const ingest = await postIngest(h.app, gz(makeBatch(agent.agent_id, 1)), {
          credential: agent.credential,
        })
        expect(ingest.status).toBe(503)
        expect(ingest.headers.get('retry-after')).not.toBeNull()
      } finally {
        rmSync(FILLER, { force: true })
      }
      // Space is back: ready again, and writes go through.
      expect((await waitForStatus(readyz, 200)).status).toBe(200)
      expect((await enrollToken()).status).toBe(201)
    })

    it('answers 503 when the engine refuses an insert for too many parts', async () => {
      await h.store.command({
        query: 'ALTER TABLE tally.enroll_tokens MODIFY SETTING parts_to_throw_insert = 1',
      })
      try {
        const res = await enrollToken()
        expect(res.status).toBe(503)
        expect(res.headers.get('retry-after')).toBe('5')
        // The failure a request saw makes /readyz say so until a write succeeds.
        expect((await readyz()).status).toBe(503)
      } finally {
        await h.store.command({
          query: 'ALTER TABLE tally.enroll_tokens MODIFY SETTING parts_to_throw_insert = 3000',
        })
      }
      expect((await waitForStatus(readyz, 200)).status).toBe(200)
    })
  },
)

afterAll(() => {
  if (mounted) execFileSync('umount', [mountDir])
  rmSync(mountDir, { recursive: true, force: true })
})

describe('a ClickHouse server that refuses connections', () => {
  it('is not ready, and every route that needs the store answers 503, not 500', async () => {
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'tally-health-refused-'))
    const config = CollectorConfig.parse({
      data_dir: dir,
      log_level: 'silent',
      clickhouse: { url: `http://127.0.0.1:${port}` },
    })
    const store = openStore({ dataDir: dir, url: `http://127.0.0.1:${port}` })
    try {
      const app = createApp({
        store,
        config,
        logger: pino({ level: 'silent' }),
        signingKey: loadOrCreateSigningKey(join(dir, 'key.pem')),
      })
      const ready = await app.request('/readyz')
      expect(ready.status).toBe(503)
      expect(ready.headers.get('retry-after')).toBe('5')
      for (const [method, path] of [
        ['POST', '/v1/admin/enroll-tokens'],
        ['GET', '/v1/fleet'],
        ['GET', '/v1/usage'],
        ['GET', '/v1/cases'],
      ] as const) {
        const res = await app.request(path, {
          method,
          headers: {
            authorization: `Bearer tly_u_abc.${'A'.repeat(43)}`,
            'content-type': 'application/json',
          },
          ...(method === 'POST' ? { body: '{"site":"x"}' } : {}),
        })
        expect(res.status, `${method} ${path}`).toBe(503)
        expect(res.headers.get('retry-after'), `${method} ${path}`).toBe('5')
      }
    } finally {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
