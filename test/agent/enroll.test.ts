/**
 * The agent's enrollment against a real collector (embedded engine, served over HTTP on
 * loopback), behind a proxy that can lose the collector's answer: the agent keeps an instance
 * secret made before its first attempt, so a lost 201 is asked for again and answered, not
 * refused as "already used". State files are written atomically, and an empty or corrupt one
 * stops the agent with one line naming it.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serve } from '@hono/node-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentConfig } from '../../agent/config.ts'
import {
  credentialPath,
  EnrollmentError,
  ensureEnrolled,
  instancePath,
} from '../../agent/enroll.ts'
import { createEnrollToken, instanceHash } from '../../collector/auth/enrollment.ts'
import { tokenKeyOf } from '../../collector/auth/tokens.ts'
import { selectRows } from '../../collector/store/rows.ts'
import { StateFileError } from '../../common/atomic-file.ts'
import { InstanceSecret } from '../../protocol/v1.ts'
import {
  count,
  gz,
  type Harness,
  makeBatch,
  openHarness,
  postIngest,
} from '../collector/harness.ts'

let h: Harness
let collector: Server
let proxy: Server
let proxyUrl: string
/** How many enroll answers the proxy still loses (it forwards the request, then hangs up). */
let answersToLose = 0
let enrollRequests = 0

const listening = (server: Server): Promise<number> =>
  new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  )

beforeAll(async () => {
  h = await openHarness()
  collector = serve({ fetch: h.app.fetch, hostname: '127.0.0.1', port: 0 }) as Server
  await new Promise<void>((resolve) => collector.once('listening', () => resolve()))
  const upstream = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`
  proxy = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const headers: Record<string, string> = {}
    for (const name of ['authorization', 'content-type', 'content-encoding']) {
      const value = req.headers[name]
      if (typeof value === 'string') headers[name] = value
    }
    const answer = await fetch(`${upstream}${req.url}`, {
      method: req.method ?? 'GET',
      headers,
      body: chunks.length > 0 ? Buffer.concat(chunks) : null,
    })
    const body = Buffer.from(await answer.arrayBuffer())
    if (req.url === '/v1/agents/enroll') {
      enrollRequests += 1
      if (answersToLose > 0) {
        // The collector enrolled the agent; its answer dies with the connection.
        answersToLose -= 1
        req.socket.destroy()
        return
      }
    }
    res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? '' })
    res.end(body)
  })
  proxyUrl = `http://127.0.0.1:${await listening(proxy)}`
})

afterAll(async () => {
  await new Promise((resolve) => proxy?.close(resolve))
  await new Promise((resolve) => collector?.close(resolve))
  await h?.close()
})

const stateDirs: string[] = []
afterAll(async () => {
  for (const dir of stateDirs) await rm(dir, { recursive: true, force: true })
})

async function agentConfig(token: string, hostname = 'agent-host'): Promise<AgentConfig> {
  const stateDir = await mkdtemp(join(tmpdir(), 'tally-enroll-test-'))
  stateDirs.push(stateDir)
  return AgentConfig.parse({
    collector: { url: proxyUrl, timeout_seconds: 20 },
    enrollment: { token, hostname },
    state_dir: stateDir,
  })
}

const newToken = async (maxUses = 1) =>
  createEnrollToken(h.store, { site: 'agent-site', ttlHours: 1, maxUses, createdBy: 'test' })

const mode = (file: string) => statSync(file).mode & 0o777

describe('agent enrollment', () => {
  it('gets its enrollment back after the first answer was lost', async () => {
    const token = await newToken()
    const config = await agentConfig(token.token)
    answersToLose = 1
    const lost = await ensureEnrolled(config).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(lost).toBeInstanceOf(EnrollmentError)
    expect((lost as EnrollmentError).retryable).toBe(true)
    expect(existsSync(credentialPath(config.state_dir))).toBe(false)

    // The instance secret was on disk, 0600, before the request, and went with it: the
    // collector recorded the token's use under its hash.
    const instance = readFileSync(instancePath(config.state_dir), 'utf8').trim()
    expect(InstanceSecret.safeParse(instance).success).toBe(true)
    expect(mode(instancePath(config.state_dir))).toBe(0o600)
    const uses = await selectRows<{ agent_id: string; instance_sha256: string }>(
      h.store,
      'SELECT agent_id, instance_sha256 FROM tally.enroll_token_uses WHERE token_id = {id:String}',
      { id: token.token_id },
    )
    expect(uses).toEqual([
      {
        agent_id: uses[0]?.agent_id,
        instance_sha256: instanceHash(
          tokenKeyOf(h.store),
          token.token_id,
          String(uses[0]?.agent_id),
          instance,
        ),
      },
    ])

    // The retry (what the agent's enrollment loop does on a retryable error) is answered.
    const credential = await ensureEnrolled(config)
    expect(credential).toMatchObject({
      agent_id: uses[0]?.agent_id,
      host: 'agent-host',
      site: 'agent-site',
      collector_url: proxyUrl,
    })
    expect(
      await count(h.store, 'tally.agents FINAL', 'enroll_token_id = {id:String}', {
        id: token.token_id,
      }),
    ).toBe(1)
    const file = credentialPath(config.state_dir)
    expect(mode(file)).toBe(0o600)
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(credential)
    expect(readdirSync(config.state_dir).sort()).toEqual(['credential.json', 'instance'])
    const res = await postIngest(h.app, gz(makeBatch(credential.agent_id, 1)), {
      credential: credential.credential,
    })
    expect(res.status).toBe(200)

    // Enrolled: the stored credential is used, the collector is not asked again.
    const before = enrollRequests
    expect(await ensureEnrolled(config)).toEqual(credential)
    expect(enrollRequests).toBe(before)
  })

  it('is refused, for good, with a used token and another instance', async () => {
    const token = await newToken()
    expect((await ensureEnrolled(await agentConfig(token.token))).site).toBe('agent-site')
    const other = await agentConfig(token.token)
    const refused = await ensureEnrolled(other).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(refused).toBeInstanceOf(EnrollmentError)
    expect((refused as EnrollmentError).retryable).toBe(false)
    expect((refused as Error).message).toMatch(/enrollment refused \(401\): .*already used/)
    expect(existsSync(credentialPath(other.state_dir))).toBe(false)
  })

  it('keeps its instance secret across attempts and restarts', async () => {
    const token = await newToken()
    const config = await agentConfig(token.token)
    answersToLose = 2
    for (let i = 0; i < 2; i++)
      await expect(ensureEnrolled(config)).rejects.toThrow(EnrollmentError)
    const instance = readFileSync(instancePath(config.state_dir), 'utf8')
    const credential = await ensureEnrolled(config)
    expect(readFileSync(instancePath(config.state_dir), 'utf8')).toBe(instance)
    expect(
      await count(h.store, 'tally.agents FINAL', 'agent_id = {id:String}', {
        id: credential.agent_id,
      }),
    ).toBe(1)
  })
})

describe('a damaged state file stops the agent with one line naming it', () => {
  const cases: [string, (dir: string) => string, string][] = [
    ['an empty credential.json', (dir) => credentialPath(dir), ''],
    ['a cut credential.json', (dir) => credentialPath(dir), '{"agent_id": "a-1'],
    ['a credential.json that is not a credential', (dir) => credentialPath(dir), '{"a": 1}\n'],
    ['an empty instance file', (dir) => instancePath(dir), ''],
    ['an instance file that is not a secret', (dir) => instancePath(dir), 'short\n'],
  ]
  for (const [what, path, content] of cases) {
    it(what, async () => {
      const token = await newToken()
      const config = await agentConfig(token.token)
      const file = path(config.state_dir)
      writeFileSync(file, content)
      const before = enrollRequests
      const err = await ensureEnrolled(config).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(StateFileError)
      const message = (err as Error).message
      expect(message.startsWith(`${file}: is `)).toBe(true)
      expect(message).not.toContain('\n')
      // Nothing was sent, and the token was not spent.
      expect(enrollRequests).toBe(before)
      expect(
        await count(h.store, 'tally.enroll_token_uses', 'token_id = {id:String}', {
          id: token.token_id,
        }),
      ).toBe(0)
    })
  }
})
