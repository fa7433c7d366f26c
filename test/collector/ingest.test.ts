/**
 * POST /v1/ingest on the real embedded engine: stored exactly once (also after a crash between
 * writes), every bad input refused with its own status and code and nothing written, and the
 * host and site of every stored row taken from the credential.
 */
import { randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AgentIdentity } from '../../collector/auth/agents.ts'
import { replayJournal } from '../../collector/store/group-commit.ts'
import {
  batchDigest,
  type GroupTable,
  insertGroup,
  batchRows as rowsOf,
} from '../../collector/store/host-batches.ts'
import { IngestJournal, journalDir } from '../../collector/store/ingest-journal.ts'
import { insertRows, selectRows } from '../../collector/store/rows.ts'
import { loadOrCreateUsageHostKey } from '../../collector/store/usage-host-key.ts'
import { SERVICE_NAMES } from '../../protocol/services.ts'
import { type HostBatch, IngestAck, SeqConflict } from '../../protocol/v1.ts'
import {
  type App,
  batchEnd,
  count,
  type EnrolledAgent,
  enrollAgent,
  errorBody,
  gz,
  type Harness,
  makeBatch,
  openHarness,
  postIngest,
  SAMPLE_SUM,
  userToken,
} from './harness.ts'

const MiB = 1024 * 1024

let h: Harness
let agentA: EnrolledAgent
let agentB: EnrolledAgent
let adminToken: string
let seqA = 0
/** The next unused sequence number of agent A. */
const nextSeq = (): number => {
  seqA += 1
  return seqA
}

beforeAll(async () => {
  h = await openHarness()
  // Upper case on purpose: the credential's host is the lower-cased name given at enrollment.
  agentA = await enrollAgent(h, 'site-a', 'Host-A.example')
  agentB = await enrollAgent(h, 'site-b', 'host-b')
  adminToken = await userToken(h.store, ['admin'], 'admin')
})

afterAll(async () => {
  await h?.close()
})

interface Counts {
  host_metrics: number
  ingest_batches: number
  host_inventory: number
  rollup_samples: number
}

/** Row counts of every table a batch writes, over all agents. */
async function counts(): Promise<Counts> {
  const [rollup] = await selectRows<{ n: number }>(
    h.store,
    'SELECT sum(samples) AS n FROM tally.host_metrics_1m',
  )
  return {
    host_metrics: await count(h.store, 'tally.host_metrics'),
    ingest_batches: await count(h.store, 'tally.ingest_batches'),
    host_inventory: await count(h.store, 'tally.host_inventory'),
    rollup_samples: Number(rollup?.n ?? Number.NaN),
  }
}

/** Rows of one batch, and the rollup's sums for its minute (the minute is the batch's own). */
async function batchRows(agent: EnrolledAgent, seq: number) {
  const params = { agent: agent.agent_id, seq }
  const host_metrics = await count(
    h.store,
    'tally.host_metrics',
    'agent_id = {agent:String} AND seq = {seq:UInt64}',
    params,
  )
  const ingest_batches = await count(
    h.store,
    'tally.ingest_batches',
    'agent_id = {agent:String} AND seq = {seq:UInt64}',
    params,
  )
  const [rollup] = await selectRows<{ samples: number; sum: number }>(
    h.store,
    `SELECT sum(samples) AS samples, sum(sum) AS sum FROM tally.host_metrics_1m
     WHERE site = {site:String} AND host = {host:String}
       AND ts = toDateTime(intDiv({end:UInt64}, 1000), 'UTC')`,
    { site: agent.site, host: agent.host, end: batchEnd(seq) },
  )
  return {
    host_metrics,
    ingest_batches,
    rollup_samples: Number(rollup?.samples ?? Number.NaN),
    rollup_sum: Number(rollup?.sum ?? Number.NaN),
  }
}

async function post(
  batch: unknown,
  agent: EnrolledAgent = agentA,
  app: App = h.app,
): Promise<Response> {
  return postIngest(app, gz(batch), { credential: agent.credential })
}

async function expectStored(batch: HostBatch, agent: EnrolledAgent = agentA, app: App = h.app) {
  const res = await post(batch, agent, app)
  expect(res.status).toBe(200)
  expect(IngestAck.parse(await res.json())).toEqual({
    agent_id: agent.agent_id,
    seq: batch.seq,
    status: 'stored',
  })
}

/**
 * Sends a bad request and checks the answer, that nothing at all was written, and that the
 * collector still takes a valid batch afterwards.
 */
async function expectRefused(
  send: () => Promise<Response>,
  expected: { status: number; error: string; message: RegExp },
  app: App = h.app,
) {
  const before = await counts()
  const res = await send()
  expect(res.status).toBe(expected.status)
  const body = await errorBody(res)
  expect(body.error).toBe(expected.error)
  expect(body.message).toMatch(expected.message)
  expect(await counts()).toEqual(before)
  await expectStored(makeBatch(agentA.agent_id, nextSeq()), agentA, app)
  return body
}

describe('a valid batch', () => {
  it('is stored once, with host and site from the credential, and rolled up', async () => {
    expect(agentA.host).toBe('host-a.example')
    const batch = makeBatch(agentA.agent_id, nextSeq())
    await expectStored(batch)

    expect(await batchRows(agentA, batch.seq)).toEqual({
      host_metrics: 4,
      ingest_batches: 1,
      rollup_samples: 4,
      rollup_sum: SAMPLE_SUM,
    })
    const stored = await selectRows<{ host: string; site: string; ts: number; value: number }>(
      h.store,
      `SELECT host, site, toUnixTimestamp64Milli(ts) AS ts, value FROM tally.host_metrics
       WHERE agent_id = {agent:String} AND seq = {seq:UInt64} ORDER BY value`,
      { agent: agentA.agent_id, seq: batch.seq },
    )
    expect(stored).toEqual(
      [0.25, 0.5, 1024, 4096].map((value) => ({
        host: 'host-a.example',
        site: 'site-a',
        ts: batch.interval.end,
        value,
      })),
    )
    const [record] = await selectRows<Record<string, unknown>>(
      h.store,
      `SELECT site, host, agent_version, samples FROM tally.ingest_batches
       WHERE agent_id = {agent:String} AND seq = {seq:UInt64}`,
      { agent: agentA.agent_id, seq: batch.seq },
    )
    expect(record).toEqual({
      site: 'site-a',
      host: 'host-a.example',
      agent_version: '0.1.0-test',
      samples: 4,
    })
  })

  it('sent again is acknowledged as a duplicate and not written again', async () => {
    const batch = makeBatch(agentA.agent_id, nextSeq())
    await expectStored(batch)
    const before = await counts()
    for (let i = 0; i < 2; i++) {
      const res = await post(batch)
      expect(res.status).toBe(200)
      expect(await res.json()).toEqual({
        agent_id: agentA.agent_id,
        seq: batch.seq,
        status: 'duplicate',
      })
    }
    expect(await counts()).toEqual(before)
    expect(await batchRows(agentA, batch.seq)).toEqual({
      host_metrics: 4,
      ingest_batches: 1,
      rollup_samples: 4,
      rollup_sum: SAMPLE_SUM,
    })
  })

  it('sent twice at once is stored once', async () => {
    const batch = makeBatch(agentA.agent_id, nextSeq())
    const answers = await Promise.all([post(batch), post(batch), post(batch)])
    const statuses = await Promise.all(
      answers.map(async (res) => {
        expect(res.status).toBe(200)
        return IngestAck.parse(await res.json()).status
      }),
    )
    expect(statuses.sort()).toEqual(['duplicate', 'duplicate', 'stored'])
    expect(await batchRows(agentA, batch.seq)).toEqual({
      host_metrics: 4,
      ingest_batches: 1,
      rollup_samples: 4,
      rollup_sum: SAMPLE_SUM,
    })
  })

  it('with inventory stores the inventory under the credential host and site', async () => {
    const batch: HostBatch = {
      ...makeBatch(agentA.agent_id, nextSeq()),
      inventory: {
        os: { platform: 'linux', distro: 'Debian', release: '12', kernel: '6.1', arch: 'x64' },
        cpu: { model: 'Test CPU', cores: 4 },
        memory_bytes: 8 * 1024 * MiB,
        interfaces: [
          {
            name: 'eth0',
            mac: '00:11:22:33:44:55',
            addresses: ['10.0.0.5'],
            speed_mbps: 1000,
            up: true,
          },
        ],
      },
    }
    await expectStored(batch)
    const rows = await selectRows<{ host: string; site: string; inventory: string }>(
      h.store,
      'SELECT host, site, inventory FROM tally.host_inventory FINAL WHERE agent_id = {agent:String}',
      { agent: agentA.agent_id },
    )
    expect(rows).toHaveLength(1)
    expect(rows[0]?.host).toBe('host-a.example')
    expect(rows[0]?.site).toBe('site-a')
    expect(JSON.parse(rows[0]?.inventory ?? 'null')).toEqual(batch.inventory)
  })
})

describe('a malformed body', () => {
  it('that is not JSON is 400 malformed_json', async () => {
    await expectRefused(
      () =>
        postIngest(h.app, gzipSync(Buffer.from('{"version":1,"agent_id":')), {
          credential: agentA.credential,
        }),
      { status: 400, error: 'malformed_json', message: /not JSON/ },
    )
  })

  it('with a wrong type is 400 invalid_batch naming the field', async () => {
    const body = await expectRefused(
      () => post({ ...makeBatch(agentA.agent_id, 900_001), seq: 'one' }),
      { status: 400, error: 'invalid_batch', message: /protocol v1/ },
    )
    expect(body.issues?.map((i) => i.path)).toEqual(['seq'])

    const batch = makeBatch(agentA.agent_id, 900_002)
    const sample = { metric: 'system.cpu.utilization', value: '0.5' }
    const nested = await expectRefused(() => post({ ...batch, samples: [sample] }), {
      status: 400,
      error: 'invalid_batch',
      message: /protocol v1/,
    })
    expect(nested.issues?.map((i) => i.path)).toEqual(['samples.0.value'])
  })

  it('that is JSON but not an object is 400 invalid_batch', async () => {
    for (const value of [null, [], 42, 'batch']) {
      const body = await expectRefused(() => post(value), {
        status: 400,
        error: 'invalid_batch',
        message: /protocol v1/,
      })
      expect(body.issues?.[0]?.path).toBe('(top level)')
    }
  })

  it('with an unknown field at the top level is 400 naming the field', async () => {
    const body = await expectRefused(
      () => post({ ...makeBatch(agentA.agent_id, 900_004), hostname: 'smuggled' }),
      { status: 400, error: 'invalid_batch', message: /protocol v1/ },
    )
    expect(body.issues).toHaveLength(1)
    expect(body.issues?.[0]?.path).toBe('(top level)')
    expect(body.issues?.[0]?.message).toContain('hostname')
  })

  it('with an unknown field in a sample is 400 naming the field', async () => {
    const batch = makeBatch(agentA.agent_id, 900_005)
    const samples = [batch.samples[0], { ...batch.samples[1], peer: '10.0.0.9' }]
    const body = await expectRefused(() => post({ ...batch, samples }), {
      status: 400,
      error: 'invalid_batch',
      message: /protocol v1/,
    })
    expect(body.issues).toHaveLength(1)
    expect(body.issues?.[0]?.path).toBe('samples.1')
    expect(body.issues?.[0]?.message).toContain('peer')
  })

  it('with an unknown attribute is 400 naming the attribute', async () => {
    const batch = makeBatch(agentA.agent_id, 900_006)
    const samples = [
      {
        metric: 'system.network.connection.count',
        value: 3,
        attributes: { 'network.connection.state': 'established', 'server.address': '10.0.0.9' },
      },
    ]
    const body = await expectRefused(() => post({ ...batch, samples }), {
      status: 400,
      error: 'invalid_batch',
      message: /protocol v1/,
    })
    expect(body.issues).toHaveLength(1)
    expect(body.issues?.[0]?.path).toBe('samples.0.attributes')
    expect(body.issues?.[0]?.message).toContain('server.address')
  })

  it('naming a host or a site is 400 identity_in_body', async () => {
    const batch = makeBatch(agentA.agent_id, 900_007)
    for (const extra of [{ host: 'other-host' }, { site: 'other-site' }, { host: agentA.host }]) {
      await expectRefused(() => post({ ...batch, ...extra }), {
        status: 400,
        error: 'identity_in_body',
        message: /host or site/,
      })
    }
  })

  it("naming another agent's id is 403 wrong_agent", async () => {
    await expectRefused(() => post(makeBatch(agentB.agent_id, 900_008), agentA), {
      status: 403,
      error: 'wrong_agent',
      message: new RegExp(agentB.agent_id),
    })
    expect(await count(h.store, 'tally.ingest_batches', 'seq = 900008')).toBe(0)
  })
})

describe('time', () => {
  const DAY = 86_400_000
  /** A batch of agent A ending at `end`, covering `spanMs` before it. */
  const timed = (end: number, spanMs = 10_000): HostBatch => ({
    ...makeBatch(agentA.agent_id, nextSeq()),
    interval: { start: end - spanMs, end },
  })

  it('an interval that ends before or when it starts is 422 implausible_time', async () => {
    const batch = makeBatch(agentA.agent_id, 900_003)
    const { start, end } = batch.interval
    const body = await expectRefused(
      () => post({ ...batch, interval: { start: end, end: start } }),
      {
        status: 422,
        error: 'implausible_time',
        message: /^interval ends .*, before it starts .*; it must end after it starts$/,
      },
    )
    expect(body.issues).toBeUndefined()
    await expectRefused(() => post({ ...batch, interval: { start: end, end } }), {
      status: 422,
      error: 'implausible_time',
      message: /when it starts/,
    })
  })

  it('an interval starting in 1970 is 422 naming the start and the limit', async () => {
    const batch = { ...makeBatch(agentA.agent_id, 900_010), interval: { start: 0, end: 10_000 } }
    await expectRefused(() => post(batch), {
      status: 422,
      error: 'implausible_time',
      message:
        /^interval starts 1970-01-01T00:00:00\.000Z, more than 336 h before the collector's clock/,
    })
  })

  it('an interval spanning years is 422, and none can wrap interval_ms', async () => {
    const now = Date.now()
    const batch = makeBatch(agentA.agent_id, 900_011)
    await expectRefused(
      () => post({ ...batch, interval: { start: now - 3 * 365 * DAY, end: now } }),
      {
        status: 422,
        error: 'implausible_time',
        message: /^interval spans \d+ h .*, more than the 24 h/,
      },
    )
    // Even a collector told to accept old batches cannot be told to accept a span that wraps the
    // UInt32 interval_ms (49.7 days): the setting stops below it.
    const lenient = { ingest: { max_batch_age_hours: 24 * 400, max_interval_seconds: 4_294_967 } }
    expect(() => h.appWith({ ingest: { max_interval_seconds: 4_294_968 } })).toThrow()
    const app = h.appWith(lenient)
    await expectRefused(
      () => post({ ...batch, interval: { start: now - 60 * DAY, end: now } }, agentA, app),
      { status: 422, error: 'implausible_time', message: /spans 1440 h/ },
      app,
    )
    // Just under the wrap it is stored, with interval_ms exact.
    const long = timed(now - 1000, 4_294_967_000)
    await expectStored(long, agentA, app)
    const [row] = await selectRows<{ interval_ms: number }>(
      h.store,
      'SELECT any(interval_ms) AS interval_ms FROM tally.host_metrics WHERE agent_id = {a:String} AND seq = {s:UInt64}',
      { a: agentA.agent_id, s: long.seq },
    )
    expect(Number(row?.interval_ms)).toBe(4_294_967_000)
  })

  it('an interval ending past the clock skew is 422 naming the end', async () => {
    const batch = makeBatch(agentA.agent_id, 900_012)
    const end = Date.now() + 3_600_000
    await expectRefused(() => post({ ...batch, interval: { start: end - 10_000, end } }), {
      status: 422,
      error: 'implausible_time',
      message: /^interval ends \S+, more than 300 s after the collector's clock/,
    })
  })

  it('a batch spooled through a 13-day outage, or from a clock 4 min ahead, is stored', async () => {
    await expectStored(timed(Date.now() - 13 * DAY))
    await expectStored(timed(Date.now() + 240_000))
    // A batch after a suspended host's long pause: one interval of several hours.
    await expectStored(timed(Date.now() - 60_000, 8 * 3_600_000))
  })

  it('follows ingest.max_batch_age_hours and ingest.max_clock_skew_seconds', async () => {
    const app = h.appWith({ ingest: { max_batch_age_hours: 1, max_clock_skew_seconds: 0 } })
    await expectRefused(() => post(timed(Date.now() - 2 * 3_600_000), agentA, app), {
      status: 422,
      error: 'implausible_time',
      message: /more than 1 h before/,
    })
    await expectRefused(() => post(timed(Date.now() + 60_000), agentA, app), {
      status: 422,
      error: 'implausible_time',
      message: /more than 0 s after/,
    })
    // Both are stored by a collector with the default window.
    await expectStored(timed(Date.now() - 2 * 3_600_000))
    await expectStored(timed(Date.now() + 60_000))
  })
})

describe('sequence numbers', () => {
  /** Agent A's batch `seq` with other content than makeBatch's (another value, same interval). */
  const other = (seq: number): HostBatch => {
    const batch = makeBatch(agentA.agent_id, seq)
    return { ...batch, samples: batch.samples.map((s) => ({ ...s, value: s.value + 1 })) }
  }

  async function expectConflict(batch: HostBatch, lastSeq: number) {
    const before = await counts()
    const res = await post(batch)
    expect(res.status).toBe(409)
    const body = SeqConflict.parse(await res.json())
    expect(body.last_seq).toBe(lastSeq)
    expect(body.message).toContain(`seq ${batch.seq} is already stored`)
    expect(body.message).toContain(`from ${lastSeq + 1}`)
    expect(await counts()).toEqual(before)
  }

  it('a stored seq with other content is 409 seq_conflict with last_seq; renumbered, it is stored', async () => {
    const first = makeBatch(agentA.agent_id, nextSeq())
    await expectStored(first)
    await expectStored(makeBatch(agentA.agent_id, nextSeq()))
    const last = seqA
    // The agent lost its counter and starts again below: refused, not taken for a duplicate.
    const restarted = other(first.seq)
    await expectConflict(restarted, last)
    await expectConflict(restarted, last)
    // The same content as stored is still a duplicate.
    expect(await (await post(first)).json()).toMatchObject({ status: 'duplicate' })
    // Numbered after last_seq, the refused batch is stored whole: nothing was lost.
    seqA = last
    const renumbered = { ...restarted, seq: nextSeq() }
    await expectStored(renumbered)
    const [sum] = await selectRows<{ n: number; total: number }>(
      h.store,
      `SELECT count() AS n, sum(value) AS total FROM tally.host_metrics
       WHERE agent_id = {a:String} AND seq = {s:UInt64}`,
      { a: agentA.agent_id, s: renumbered.seq },
    )
    expect({ n: Number(sum?.n), total: Number(sum?.total) }).toEqual({
      n: 4,
      total: SAMPLE_SUM + 4,
    })
  })

  it('a lower seq never stored is stored (a late spooled batch)', async () => {
    const late = makeBatch(agentA.agent_id, nextSeq())
    await expectStored(makeBatch(agentA.agent_id, nextSeq()))
    await expectStored(late)
    expect(await batchRows(agentA, late.seq)).toMatchObject({ host_metrics: 4, ingest_batches: 1 })
  })

  it('a seq stored before digests were kept is a duplicate, as it was', async () => {
    const seq = nextSeq()
    await insertRows(h.store, 'tally.ingest_batches', [
      {
        agent_id: agentA.agent_id,
        seq,
        site: agentA.site,
        host: agentA.host,
        agent_version: 'old',
        interval_start: batchEnd(seq) - 10_000,
        interval_end: batchEnd(seq),
        received_at: Date.now(),
        samples: 4,
      },
    ])
    expect(await (await post(other(seq))).json()).toMatchObject({ status: 'duplicate' })
    await expectStored(makeBatch(agentA.agent_id, nextSeq()))
  })
})

describe('size and encoding', () => {
  it('a compressed body over max_body_bytes is 413 body_too_large', async () => {
    const small = h.appWith({ ingest: { max_body_bytes: 2048 } })
    // Incompressible: gzip of random bytes is larger than the bytes.
    const big = gzipSync(randomBytes(8192))
    expect(big.length).toBeGreaterThan(2048)
    // Without a Content-Length (the body is counted as it is read) and with one.
    await expectRefused(
      () => postIngest(small, big, { credential: agentA.credential }),
      { status: 413, error: 'body_too_large', message: /2048 bytes/ },
      small,
    )
    await expectRefused(
      () =>
        postIngest(small, big, {
          credential: agentA.credential,
          headers: { 'content-length': String(big.length) },
        }),
      { status: 413, error: 'body_too_large', message: /2048 bytes/ },
      small,
    )
  })

  it('a gzip bomb is 413 body_too_large at the decompressed cap', async () => {
    const bomb = gzipSync(Buffer.alloc(200 * MiB), { level: 9 })
    expect(bomb.length).toBeLessThan(h.config.ingest.max_body_bytes)
    expect(h.config.ingest.max_decompressed_bytes).toBe(16 * MiB)
    await expectRefused(() => postIngest(h.app, bomb, { credential: agentA.credential }), {
      status: 413,
      error: 'body_too_large',
      message: new RegExp(`decompressed body exceeds ${16 * MiB} bytes`),
    })
  })

  it('bytes that are not gzip under Content-Encoding gzip are 400 malformed_gzip', async () => {
    const plain = Buffer.from(JSON.stringify(makeBatch(agentA.agent_id, 900_009)))
    await expectRefused(() => postIngest(h.app, plain, { credential: agentA.credential }), {
      status: 400,
      error: 'malformed_gzip',
      message: /not valid gzip/,
    })
    // A gzip stream cut short.
    const cut = gz(makeBatch(agentA.agent_id, 900_010)).subarray(0, 30)
    await expectRefused(() => postIngest(h.app, cut, { credential: agentA.credential }), {
      status: 400,
      error: 'malformed_gzip',
      message: /not valid gzip/,
    })
  })

  it('an unsupported Content-Encoding is 415 naming it', async () => {
    const body = gz(makeBatch(agentA.agent_id, 900_011))
    for (const encoding of ['br', 'deflate', 'zstd']) {
      await expectRefused(
        () => postIngest(h.app, body, { credential: agentA.credential, encoding }),
        { status: 415, error: 'unsupported_encoding', message: new RegExp(encoding) },
      )
    }
  })
})

describe('the credential', () => {
  const batch = () => gz(makeBatch(agentA.agent_id, 900_100))

  it('missing is 401', async () => {
    await expectRefused(() => postIngest(h.app, batch()), {
      status: 401,
      error: 'unauthenticated',
      message: /credential is required/,
    })
    await expectRefused(
      () =>
        postIngest(h.app, batch(), { headers: { authorization: `Basic ${agentA.credential}` } }),
      { status: 401, error: 'unauthenticated', message: /credential is required/ },
    )
  })

  it('wrong for a known agent is 401', async () => {
    const wrong = `tly_a_${agentA.agent_id}.${randomBytes(32).toString('base64url')}`
    expect(wrong).not.toBe(agentA.credential)
    await expectRefused(() => postIngest(h.app, batch(), { credential: wrong }), {
      status: 401,
      error: 'unauthenticated',
      message: /unknown, wrong or revoked/,
    })
  })

  it('well formed but unknown is 401', async () => {
    const unknown = `tly_a_a-00000000deadbeef.${randomBytes(32).toString('base64url')}`
    await expectRefused(() => postIngest(h.app, batch(), { credential: unknown }), {
      status: 401,
      error: 'unauthenticated',
      message: /unknown, wrong or revoked/,
    })
    // Not a credential at all, and a user's token in place of an agent's.
    for (const credential of ['garbage', adminToken]) {
      await expectRefused(() => postIngest(h.app, batch(), { credential }), {
        status: 401,
        error: 'unauthenticated',
        message: /unknown, wrong or revoked/,
      })
    }
  })

  it('of a revoked agent is 401', async () => {
    const agentC = await enrollAgent(h, 'site-a', 'host-c')
    await expectStored(makeBatch(agentC.agent_id, 1), agentC)
    const res = await h.app.request(`/v1/admin/agents/${agentC.agent_id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}` },
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ agent_id: agentC.agent_id, revoked: true })
    await expectRefused(() => post(makeBatch(agentC.agent_id, 2), agentC), {
      status: 401,
      error: 'unauthenticated',
      message: /unknown, wrong or revoked/,
    })
    // Its retry of a batch it had sent before is refused too, not acknowledged.
    const retry = await post(makeBatch(agentC.agent_id, 1), agentC)
    expect(retry.status).toBe(401)
    expect(
      await count(h.store, 'tally.ingest_batches', 'agent_id = {c:String}', {
        c: agentC.agent_id,
      }),
    ).toBe(1)
  })
})

describe('privacy', () => {
  it('every stored row carries only its credential host and site', async () => {
    await expectStored(makeBatch(agentB.agent_id, 1), agentB)
    const tables = ['tally.host_metrics', 'tally.ingest_batches', 'tally.host_inventory']
    for (const table of tables) {
      const rows = await selectRows<{ agent_id: string; host: string; site: string }>(
        h.store,
        `SELECT DISTINCT agent_id, host, site FROM ${table} WHERE agent_id IN ({ids:Array(String)})
         ORDER BY host`,
        { ids: [agentA.agent_id, agentB.agent_id] },
      )
      const expected = [
        { agent_id: agentA.agent_id, host: 'host-a.example', site: 'site-a' },
        { agent_id: agentB.agent_id, host: 'host-b', site: 'site-b' },
      ].filter((r) => table !== 'tally.host_inventory' || r.agent_id === agentA.agent_id)
      expect(rows, table).toEqual(expected)
    }
    // The rollup has no agent column: only the enrolled hosts and their sites appear in it.
    const rollup = await selectRows<{ host: string; site: string }>(
      h.store,
      'SELECT DISTINCT host, site FROM tally.host_metrics_1m ORDER BY host',
    )
    expect(rollup).toEqual([
      { host: 'host-a.example', site: 'site-a' },
      { host: 'host-b', site: 'site-b' },
      { host: 'host-c', site: 'site-a' },
    ])
    // Nothing refused above left a trace: no row names a host or site the bodies tried.
    expect(
      await count(h.store, 'tally.host_metrics', "host LIKE 'other%' OR site LIKE 'other%'"),
    ).toBe(0)
    expect(seqA).toBeGreaterThan(20)
  })
})

describe('group commit', () => {
  const identity = (a: EnrolledAgent): AgentIdentity => ({
    agent_id: a.agent_id,
    host: a.host,
    site: a.site,
  })
  /** A batch of now, with site usage of `bytes` (so its usage is stored) and inventory. */
  const recent = (agent: EnrolledAgent, seq: number, bytes: number): HostBatch => {
    const end = Date.now() - 1000
    return {
      ...makeBatch(agent.agent_id, seq),
      interval: { start: end - 10_000, end },
      usage: [
        {
          direction: 'outbound',
          ip_version: 4,
          transport: 'tcp',
          service: SERVICE_NAMES[0] ?? 'other',
          peer_class: 'internet',
          bytes,
          packets: 3,
          flows: 1,
        },
      ],
      inventory: {
        os: { platform: 'linux', distro: 'Debian', release: '12', kernel: '6.1', arch: 'x64' },
        cpu: { model: 'Test CPU', cores: 4 },
        memory_bytes: 1024,
        interfaces: [],
      },
    }
  }
  const usageBytes = async (): Promise<number> => {
    const [row] = await selectRows<{ b: number }>(
      h.store,
      'SELECT sum(bytes) AS b FROM tally.usage_cells',
    )
    return Number(row?.b ?? 0)
  }
  /** The host's inventory as stored (a replacing table: the latest row per agent). */
  const inventoryOf = async (agent: EnrolledAgent): Promise<unknown> => {
    const [row] = await selectRows<{ inventory: string }>(
      h.store,
      `SELECT inventory FROM tally.host_inventory FINAL WHERE agent_id = {a:String}`,
      { a: agent.agent_id },
    )
    return row === undefined ? undefined : JSON.parse(row.inventory)
  }
  let seqB = 1000
  const nextSeqB = (): number => {
    seqB += 1
    return seqB
  }

  /**
   * What a collector killed inside a group leaves: the group in the journal, and the inserts of
   * `landed` made. `restart` is what the next start does before it listens.
   */
  async function crashInsideGroup(batches: [EnrolledAgent, HostBatch][], landed: GroupTable[]) {
    const journal = new IngestJournal(journalDir(h.dir))
    const usage = {
      hostKey: loadOrCreateUsageHostKey(h.dir),
      releaseAfterSeconds: h.config.usage.release_after_seconds,
    }
    const id = `${Date.now()}-test-${randomBytes(4).toString('hex')}`
    const receivedAt = Date.now()
    await journal.write(
      id,
      batches.map(([agent, batch]) => ({
        agent: identity(agent),
        receivedAt,
        digest: batchDigest(batch),
        encoding: 'gzip' as const,
        body: gz(batch),
      })),
    )
    const rows = batches.map(([agent, batch]) =>
      rowsOf(identity(agent), batch, batchDigest(batch), usage, receivedAt),
    )
    await insertGroup(h.store, id, rows, landed)
    return { restart: () => replayJournal(h.store, journal, usage) }
  }

  it.each<[string, GroupTable[]]>([
    ['after the journal, before the first insert', []],
    ['after the samples (and their rollup)', ['host_metrics']],
    [
      'after every table but the markers',
      ['host_metrics', 'usage_contributions', 'host_inventory'],
    ],
    [
      'after the markers, before the journal file went',
      ['host_metrics', 'usage_contributions', 'host_inventory', 'ingest_batches'],
    ],
  ])(
    'a kill inside a group %s: completed at start, every batch once, retries are duplicates',
    async (_, landed) => {
      const a = recent(agentA, nextSeq(), 1000 + seqA)
      seqB += 1
      const b = recent(agentB, seqB, 2000 + seqB)
      const before = { usage: await usageBytes() }
      const crashed = await crashInsideGroup(
        [
          [agentA, a],
          [agentB, b],
        ],
        landed,
      )
      // Another group lands before the restart's completion: the engine's session moved on.
      await expectStored(makeBatch(agentB.agent_id, nextSeqB()), agentB)
      expect(await crashed.restart()).toBe(1)
      expect(await crashed.restart(), 'the journal is empty once completed').toBe(0)
      for (const [agent, batch] of [
        [agentA, a],
        [agentB, b],
      ] as const) {
        const rows = await batchRows(agent, batch.seq)
        expect({ host_metrics: rows.host_metrics, ingest_batches: rows.ingest_batches }).toEqual({
          host_metrics: 4,
          ingest_batches: 1,
        })
        const res = await post(batch, agent)
        expect(await res.json()).toMatchObject({ status: 'duplicate' })
      }
      const [rollup] = await selectRows<{ n: number }>(
        h.store,
        `SELECT sum(samples) AS n FROM tally.host_metrics_1m
       WHERE host IN ({a:String}, {b:String}) AND ts = toStartOfMinute(fromUnixTimestamp64Milli({end:Int64}, 'UTC'))`,
        { a: agentA.host, b: agentB.host, end: a.interval.end },
      )
      expect(Number(rollup?.n), 'the rollup counts the samples once').toBeGreaterThanOrEqual(4)
      expect(await usageBytes(), 'site usage counted once').toBe(
        before.usage + (a.usage?.[0]?.bytes ?? 0) + (b.usage?.[0]?.bytes ?? 0),
      )
      expect(await inventoryOf(agentB), 'the inventory written').toEqual(b.inventory)
    },
  )

  it('a crashed group holds its seqs: another content under one is 409, nothing counted twice', async () => {
    const crashedBatch = recent(agentA, nextSeq(), 7)
    const crashed = await crashInsideGroup([[agentA, crashedBatch]], ['host_metrics'])
    await crashed.restart()
    const reuse: HostBatch = { ...crashedBatch, samples: crashedBatch.samples.slice(0, 2) }
    const res = await post(reuse)
    expect(res.status).toBe(409)
    expect(SeqConflict.parse(await res.json()).last_seq).toBeGreaterThanOrEqual(crashedBatch.seq)
    expect((await batchRows(agentA, crashedBatch.seq)).host_metrics).toBe(4)
  })

  /** How many inserts tally.host_metrics has taken (its block numbers; merges keep them). */
  const inserts = async (): Promise<number> => {
    const [row] = await selectRows<{ n: number }>(
      h.store,
      `SELECT max(max_block_number) AS n FROM system.parts
       WHERE database = 'tally' AND table = 'host_metrics'`,
    )
    return Number(row?.n ?? 0)
  }

  it('batches that arrive together are written by one insert per table, each once', async () => {
    const app = h.appWith({ ingest: { group_window_ms: 300 } })
    const agents = [agentA, agentB]
    const sent = Array.from({ length: 40 }, (_, i) => {
      const agent = agents[i % 2] as EnrolledAgent
      const seq = agent === agentA ? nextSeq() : nextSeqB()
      return { agent, batch: makeBatch(agent.agent_id, seq) }
    })
    const before = await inserts()
    const answers = await Promise.all(
      sent.map(({ agent, batch }) => post(batch, agent, app).then((r) => r.json())),
    )
    expect(answers.map((a) => (a as IngestAck).status)).toEqual(sent.map(() => 'stored'))
    const made = (await inserts()) - before
    expect(made, `40 batches in ${made} inserts`).toBeLessThanOrEqual(3)
    for (const { agent, batch } of sent) {
      expect(await batchRows(agent, batch.seq)).toMatchObject({
        host_metrics: 4,
        ingest_batches: 1,
      })
    }
  })

  it('the same seq twice in one group: once stored, the same content a duplicate, other content 409', async () => {
    const app = h.appWith({ ingest: { group_window_ms: 300 } })
    const batch = makeBatch(agentA.agent_id, nextSeq())
    const changed = { ...batch, samples: batch.samples.slice(1) }
    const [first, again, conflict] = await Promise.all([
      post(batch, agentA, app),
      post(batch, agentA, app),
      post(changed, agentA, app),
    ])
    expect(await first?.json()).toMatchObject({ status: 'stored' })
    expect(await again?.json()).toMatchObject({ status: 'duplicate' })
    expect(conflict?.status).toBe(409)
    expect(SeqConflict.parse(await conflict?.json()).last_seq).toBeGreaterThanOrEqual(batch.seq)
    expect(await batchRows(agentA, batch.seq)).toMatchObject({ host_metrics: 4, ingest_batches: 1 })
  })

  it('a full queue answers 503 with Retry-After at once, and stores nothing of those', async () => {
    const app = h.appWith({ ingest: { group_window_ms: 400, queue_max_batches: 2 } })
    const sent = Array.from({ length: 6 }, () => makeBatch(agentA.agent_id, nextSeq()))
    const answers = await Promise.all(sent.map((b) => post(b, agentA, app)))
    const busy = answers.filter((r) => r.status === 503)
    expect(busy.length).toBeGreaterThanOrEqual(1)
    for (const r of busy) {
      expect(r.headers.get('retry-after')).toBe(String(h.config.ingest.retry_after_seconds))
      expect((await errorBody(r)).error).toBe('ingest_queue_full')
    }
    for (const [i, r] of answers.entries()) {
      const seq = sent[i]?.seq ?? 0
      const stored = (await batchRows(agentA, seq)).ingest_batches
      expect(stored, `seq ${seq} answered ${r.status}`).toBe(r.status === 200 ? 1 : 0)
    }
  })
})
