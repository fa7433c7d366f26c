import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  fetchGrants,
  GrantFetchError,
  type GrantLog,
  GrantManager,
} from '../../../agent/grants/manager.ts'
import type { VerifiedGrant } from '../../../agent/grants/verify.ts'
import { emptyRecords, flowRecord, type SubjectRecords } from '../../../agent/subject/records.ts'
import type { SubjectCaptureHandle } from '../../../agent/subject/subject-capture.ts'
import type { GrantClaims } from '../../../protocol/grants.ts'
import { AGENT_ID, claims, makeKeys, signGrant, type TestKeys } from './tokens.ts'

const NOW = Date.UTC(2030, 0, 15, 12, 0, 0)

let keys: TestKeys
let otherKeys: TestKeys
beforeAll(async () => {
  keys = await makeKeys()
  otherKeys = await makeKeys()
})

class FakeCapture implements SubjectCaptureHandle {
  readonly grant: VerifiedGrant
  started = 0
  stopCalls = 0
  pending: SubjectRecords = emptyRecords()
  drained: number[] = []
  #release: (() => void) | undefined
  readonly stopped: Promise<void>
  constructor(grant: VerifiedGrant) {
    this.grant = grant
    this.stopped = new Promise((r) => {
      this.#release = r
    })
  }
  start(): void {
    this.started++
  }
  /** Pretends a packet was captured. */
  capture(n = 1): void {
    for (let i = 0; i < n; i++) {
      this.pending.flows.push(
        flowRecord(this.grant, {
          start: NOW,
          end: NOW,
          ip_version: 4,
          protocol: 17,
          src: '192.0.2.10',
          dst: '192.0.2.53',
          src_port: 5000 + i,
          dst_port: 53,
          bytes: 60,
          packets: 1,
          tcp_flags: 0,
          community_id: '1:test',
        }),
      )
    }
  }
  drain(nowMs: number): SubjectRecords {
    this.drained.push(nowMs)
    const out = this.pending
    this.pending = emptyRecords()
    return out
  }
  stop(): Promise<void> {
    this.stopCalls++
    this.#release?.()
    return this.stopped
  }
}

function harness() {
  const made: FakeCapture[] = []
  const logs: { level: string; obj: object; msg: string }[] = []
  const log: GrantLog = {
    info: (obj, msg) => logs.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => logs.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => logs.push({ level: 'error', obj, msg }),
  }
  let failNext = false
  const manager = new GrantManager({
    agentId: AGENT_ID,
    pinnedKey: keys.publicJwk,
    log,
    createCapture: (grant) => {
      if (failNext) {
        failNext = false
        throw new Error('no such interface')
      }
      const c = new FakeCapture(grant)
      made.push(c)
      return c
    },
  })
  return {
    manager,
    made,
    logs,
    failOnce: () => {
      failNext = true
    },
  }
}

async function token(
  id: string,
  overrides: Partial<GrantClaims> = {},
  key = keys.pair.privateKey,
): Promise<{ grant_id: string; token: string }> {
  return { grant_id: id, token: await signGrant(key, { ...claims(NOW, overrides) }, { jti: id }) }
}

describe('GrantManager.reconcile', () => {
  it('starts a capture per valid grant and hands out their records', async () => {
    const { manager, made, logs } = harness()
    const a = await token('g-a')
    const b = await token('g-b', { categories: ['flows'], addresses: [] })
    const report = await manager.reconcile([a, b, a], NOW)
    expect(report).toMatchObject({ started: ['g-a', 'g-b'], rejected: [], revoked: [], ended: [] })
    expect(made.map((c) => [c.grant.grantId, c.started])).toEqual([
      ['g-a', 1],
      ['g-b', 1],
    ])
    expect(manager.grants.map((g) => g.grantId)).toEqual(['g-a', 'g-b'])
    expect(logs.filter((l) => l.level === 'info')).toHaveLength(2)

    // The same listing again changes nothing.
    expect((await manager.reconcile([a, b], NOW + 1)).started).toEqual([])
    expect(made).toHaveLength(2)

    made[0]?.capture(2)
    const out = manager.drain(NOW + 10_000)
    expect(out).toHaveLength(1)
    expect(out[0]).toMatchObject({ grant_id: 'g-a', case_id: 'c-0123456789abcdef' })
    expect(out[0]?.records.flows).toHaveLength(2)
    expect(manager.drain(NOW + 20_000)).toEqual([])
  })

  it('rejects bad tokens, logs each once and does not act on them', async () => {
    const { manager, made, logs } = harness()
    const forged = await token('g-forged', {}, otherKeys.pair.privateKey)
    const foreign = await token('g-foreign', { agent_id: 'a-ffffffffffffffff' })
    const mismatch = { grant_id: 'g-listed', token: (await token('g-signed')).token }
    const garbage = { grant_id: 'g-garbage', token: 'not.a.jwt' }
    const report = await manager.reconcile([forged, foreign, mismatch, garbage], NOW)
    expect(report.started).toEqual([])
    expect(report.rejected).toEqual([
      { grant_id: 'g-forged', reason: 'signature' },
      { grant_id: 'g-foreign', reason: 'agent' },
      { grant_id: 'g-listed', reason: 'grant-id-mismatch' },
      { grant_id: 'g-garbage', reason: 'malformed' },
    ])
    expect(made).toEqual([])
    expect(logs.filter((l) => l.level === 'warn')).toHaveLength(4)
    const again = await manager.reconcile([forged, foreign, mismatch, garbage], NOW + 1000)
    expect(again.rejected).toEqual([])
    expect(logs.filter((l) => l.level === 'warn')).toHaveLength(4)
  })

  it('stops a grant that is no longer listed, or listed with another token, and discards its records', async () => {
    const { manager, made } = harness()
    const a = await token('g-a')
    const b = await token('g-b')
    await manager.reconcile([a, b], NOW)
    made[0]?.capture()
    made[1]?.capture()
    const reissued = {
      grant_id: 'g-b',
      token: await signGrant(
        keys.pair.privateKey,
        { ...claims(NOW, { categories: ['flows'] }) },
        { jti: 'g-b' },
      ),
    }
    const report = await manager.reconcile([reissued], NOW + 1_000)
    expect(report.revoked.sort()).toEqual(['g-a', 'g-b'])
    expect(report.started).toEqual(['g-b'])
    expect(made.map((c) => c.stopCalls)).toEqual([1, 1, 0])
    expect(made[2]?.grant.categories).toEqual(['flows'])
    await Promise.resolve()
    // The withdrawn captures' records are not handed out.
    const out = manager.drain(NOW + 2_000)
    expect(out).toEqual([])
    expect(made[0]?.drained).toEqual([])
    // An empty listing stops everything.
    expect((await manager.reconcile([], NOW + 3_000)).revoked).toEqual(['g-b'])
    expect(manager.grants).toEqual([])
  })

  it('stops a grant at its window end and drains it one last time after tcpdump exits', async () => {
    const { manager, made } = harness()
    const end = NOW + 60_000
    await manager.reconcile([await token('g-a', { window: { start: NOW - 1000, end } })], NOW)
    const c = made[0] as FakeCapture
    c.capture()
    expect(manager.drain(end - 1)).toHaveLength(1)
    expect(c.stopCalls).toBe(0)
    c.capture()
    const atEnd = manager.drain(end)
    expect(atEnd).toHaveLength(1)
    expect(c.stopCalls).toBe(1)
    expect(manager.grants).toEqual([])
    c.capture() // flushed by tcpdump while exiting
    await c.stopped
    await new Promise((r) => setImmediate(r))
    const last = manager.drain(end + 10_000)
    expect(last.map((d) => d.records.flows.length)).toEqual([1])
    expect(manager.drain(end + 20_000)).toEqual([])
    expect(c.drained).toEqual([end - 1, end, end + 10_000])
  })

  it('waits for a grant whose nbf is ahead, then starts it', async () => {
    const { manager, made, logs } = harness()
    const later = await token('g-later', { window: { start: NOW + 60_000, end: NOW + 120_000 } })
    const r1 = await manager.reconcile([later], NOW)
    expect(r1).toMatchObject({ waiting: ['g-later'], started: [], rejected: [] })
    expect(logs.filter((l) => l.level === 'warn')).toEqual([])
    const r2 = await manager.reconcile([later], NOW + 60_000)
    expect(r2.started).toEqual(['g-later'])
    expect(made).toHaveLength(1)
  })

  it('retries a capture that could not be made, logging once', async () => {
    const h = harness()
    const a = await token('g-a')
    h.failOnce()
    const r1 = await h.manager.reconcile([a], NOW)
    expect(r1.rejected).toEqual([{ grant_id: 'g-a', reason: 'capture' }])
    expect(h.logs.filter((l) => l.level === 'error')).toHaveLength(1)
    const r2 = await h.manager.reconcile([a], NOW + 1)
    expect(r2.started).toEqual(['g-a'])
  })

  it('stopAll stops every capture and a later drain hands out what they held', async () => {
    const { manager, made } = harness()
    await manager.reconcile([await token('g-a'), await token('g-b')], NOW)
    made[1]?.capture(3)
    await manager.stopAll()
    expect(made.map((c) => c.stopCalls)).toEqual([1, 1])
    const out = manager.drain(NOW + 1000)
    expect(out.map((d) => [d.grant_id, d.records.flows.length])).toEqual([['g-b', 3]])
    expect(manager.drain(NOW + 2000)).toEqual([])
  })
})

describe('fetching grants', () => {
  const servers: (() => void)[] = []
  afterEach(() => {
    for (const close of servers.splice(0)) close()
  })

  async function collector(
    answer: (headers: IncomingHttpHeaders, url: string) => { status: number; body: string },
  ): Promise<string> {
    const server = createServer((req, res) => {
      const { status, body } = answer(req.headers, req.url ?? '')
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(body)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    servers.push(() => server.close())
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  it('GETs /v1/agents/grants with the bearer credential', async () => {
    const a = await token('g-a')
    const seen: { auth?: string | undefined; url: string }[] = []
    const url = await collector((headers, path) => {
      seen.push({ auth: headers.authorization, url: path })
      return { status: 200, body: JSON.stringify({ grants: [a] }) }
    })
    expect(await fetchGrants(url, 'cred-123')).toEqual({ grants: [a] })
    expect(seen).toEqual([{ auth: 'Bearer cred-123', url: '/v1/agents/grants' }])

    const { manager, made } = harness()
    const result = await manager.refresh(url, 'cred-123', NOW)
    expect(result).toMatchObject({ ok: true, report: { started: ['g-a'] } })
    expect(made).toHaveLength(1)
  })

  it('keeps the current grants when the listing cannot be had', async () => {
    const a = await token('g-a')
    let mode: 'ok' | 'error' | 'invalid' | 'not-json' = 'ok'
    const url = await collector(() => {
      if (mode === 'error') return { status: 503, body: '{"error":"unavailable"}' }
      if (mode === 'invalid')
        return { status: 200, body: JSON.stringify({ grants: [a], extra: 1 }) }
      if (mode === 'not-json') return { status: 200, body: '<html>' }
      return { status: 200, body: JSON.stringify({ grants: [a] }) }
    })
    const { manager, made, logs } = harness()
    await manager.refresh(url, 'c', NOW)
    for (const m of ['error', 'invalid', 'not-json'] as const) {
      mode = m
      const result = await manager.refresh(url, 'c', NOW + 1000)
      expect(result.ok).toBe(false)
      expect(manager.grants.map((g) => g.grantId)).toEqual(['g-a'])
      expect(made[0]?.stopCalls).toBe(0)
    }
    expect(logs.filter((l) => l.level === 'warn')).toHaveLength(3)
    await expect(fetchGrants(url, 'c')).rejects.toBeInstanceOf(GrantFetchError)
    mode = 'error'
    await expect(fetchGrants(url, 'c')).rejects.toMatchObject({ status: 503 })
    // Unreachable.
    await expect(
      fetchGrants('http://127.0.0.1:1', 'c', { timeoutMs: 2000 }),
    ).rejects.toBeInstanceOf(GrantFetchError)
  })
})
