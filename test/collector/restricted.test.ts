/**
 * Tier I on the real embedded engine, through HTTP in-process: a case taken to active by the
 * bulletin's steps, then agent ingest under its capture grant, investigator drill-down and
 * export under its access grant, the receiving official's downloads and receipt, and the purge
 * that follows. Every refusal is checked to change nothing and leak nothing; every access to
 * be registered, and not to happen when the register cannot be written.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Hono } from 'hono'
import { decodeJwt, SignJWT } from 'jose'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { type GrantSigningKey, loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { createUser, rolesOf, type User } from '../../collector/auth/users.ts'
import { ACCESS_GRANT_TYPE, DRILLDOWN_AUDIENCE, GrantIssuer } from '../../collector/cases/grants.ts'
import { Outbox } from '../../collector/cases/outbox.ts'
import { CaseService, type RegisterWriter } from '../../collector/cases/workflow.ts'
import { CollectorConfig } from '../../collector/config.ts'
import { DomainError } from '../../collector/errors.ts'
import { type CollectorEnv, problemOf } from '../../collector/http.ts'
import { pathItems } from '../../collector/openapi.ts'
import {
  REGISTER_KEY_FILE,
  Register,
  type RegisterEntry,
  type RegisterEntryInput,
  RegisterUnavailable,
} from '../../collector/register/register.ts'
import { RESTRICTED_TABLES } from '../../collector/restricted/common.ts'
import { csvField, toCsv } from '../../collector/restricted/csv.ts'
import { masterKeyFile } from '../../collector/restricted/keys.ts'
import { createPurger } from '../../collector/restricted/purge.ts'
import { caseRoutes } from '../../collector/routes/cases.ts'
import { restrictedRoutes } from '../../collector/routes/restricted.ts'
import { selectRows } from '../../collector/store/rows.ts'
import { PcapReader } from '../../common/pcap/pcap-reader.ts'
import type { Role } from '../../protocol/api/names.ts'
import {
  RESTRICTED_REQUESTS,
  RESTRICTED_RESPONSES,
  RESTRICTED_ROUTES,
} from '../../protocol/api/restricted.ts'
import { GRANT_ISSUER, type RestrictedBatch } from '../../protocol/grants.ts'
import {
  count,
  type EnrolledAgent,
  enrollAgent,
  errorBody,
  gz,
  type Harness,
  openHarness,
} from './harness.ts'

/** The real register, which a test can make fail (fail closed). */
class FlakyRegister implements RegisterWriter {
  fail = false
  readonly inner: Register
  constructor(inner: Register) {
    this.inner = inner
  }
  async append(input: Parameters<RegisterWriter['append']>[0]): Promise<unknown> {
    if (this.fail) throw new RegisterUnavailable('the register is down (test)')
    return this.inner.append(input as RegisterEntryInput)
  }
}

let h: Harness
let app: Hono<CollectorEnv>
let register: Register
let flaky: FlakyRegister
let grantKey: GrantSigningKey

interface Person {
  user: User
  token: string
}
const people = {} as Record<
  | 'requester'
  | 'approver'
  | 'chief'
  | 'investigator'
  | 'investigator2'
  | 'official'
  | 'official2'
  | 'oiosInvestigator',
  Person
>
let agentA: EnrolledAgent
let agentB: EnrolledAgent

const HOUR = 3_600_000
const iso = (ms: number) => new Date(ms).toISOString()
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex')

async function call(
  method: string,
  path: string,
  token: string | undefined,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const init: RequestInit = { method, headers }
  if (options.body !== undefined) {
    headers['content-type'] = 'application/json'
    init.body = JSON.stringify(options.body)
  }
  return await app.request(path, init)
}

async function ok<T>(res: Promise<Response>, status = 200): Promise<T> {
  const r = await res
  const text = await r.text()
  expect(r.status, text).toBe(status)
  return JSON.parse(text) as T
}

interface OpenedCase {
  case_id: string
  /** The capture grant for agent A. */
  grant_id: string
  window: { start: number; end: number }
  /** The investigator's access grant. */
  access: string
}

/** The capture grant agent A runs for `caseId`, from GET /v1/agents/grants. */
async function agentGrant(agent: EnrolledAgent, caseId: string) {
  const { grants } = await ok<{ grants: { grant_id: string; token: string }[] }>(
    call('GET', '/v1/agents/grants', agent.credential),
  )
  const found = grants.find((g) => decodeJwt(g.token).case_id === caseId)
  if (found === undefined) throw new Error(`agent has no grant for ${caseId}`)
  const claims = decodeJwt(found.token) as unknown as { window: { start: number; end: number } }
  return { grant_id: found.grant_id, window: claims.window }
}

/** File, consult, approve, notice in person: an active standard case. */
async function activeCase(
  categories: string[],
  addresses: string[],
  investigator: Person = people.investigator,
): Promise<OpenedCase> {
  const now = Date.now()
  const filed = await ok<{ case_id: string }>(
    call('POST', '/v1/cases', people.requester.token, {
      body: {
        data_required: 'the subject’s network records',
        categories,
        staff_member: { name: 'Staff Member' },
        supervisor: { name: 'Their Supervisor' },
        receiving_official: people.official.user.user_id,
        requesting_office: 'Office of Human Resources',
        justification: 'suspected misuse (test)',
        subjects: [{ agent_id: agentA.agent_id, addresses }],
        window: { start: iso(now - HOUR), end: iso(now + 6 * HOUR) },
      },
    }),
    201,
  )
  const id = filed.case_id
  await ok(
    call('POST', `/v1/cases/${id}/consultation`, people.chief.token, {
      body: { summary: 'no objection' },
    }),
  )
  await ok(
    call('POST', `/v1/cases/${id}/approval`, people.approver.token, {
      body: { investigator: investigator.user.user_id },
    }),
  )
  const active = await ok<{ state: string }>(
    call('POST', `/v1/cases/${id}/notice`, people.approver.token, {
      body: {
        method: 'in_person',
        given_by: 'the approver',
        witness: 'a colleague of the approver',
        given_at: iso(Date.now()),
        to: ['staff_member', 'supervisor'],
      },
    }),
  )
  expect(active.state).toBe('active')
  const { grant_id, window } = await agentGrant(agentA, id)
  const access = await ok<{ token: string }>(
    call('GET', `/v1/cases/${id}/access-grant`, investigator.token),
  )
  return { case_id: id, grant_id, window, access: access.token }
}

/** A classic pcap file: `packets` Ethernet frames of `size` bytes, each filled with its number. */
function pcapFile(packets: number, firstSecond: number, bigEndian = false, size = 60): Buffer {
  const parts: Buffer[] = []
  const header = Buffer.alloc(24)
  const u32 = (b: Buffer, v: number, o: number) =>
    bigEndian ? b.writeUInt32BE(v, o) : b.writeUInt32LE(v, o)
  const u16 = (b: Buffer, v: number, o: number) =>
    bigEndian ? b.writeUInt16BE(v, o) : b.writeUInt16LE(v, o)
  u32(header, 0xa1b2c3d4, 0)
  u16(header, 2, 4)
  u16(header, 4, 6)
  u32(header, 262_144, 16)
  u32(header, 1, 20)
  parts.push(header)
  for (let i = 0; i < packets; i++) {
    const record = Buffer.alloc(16 + size, (firstSecond + i) & 0xff)
    u32(record, firstSecond + i, 0)
    u32(record, 1000 * i, 4)
    u32(record, size, 8)
    u32(record, size, 12)
    parts.push(record)
  }
  return Buffer.concat(parts)
}

function readPcap(bytes: Uint8Array) {
  const packets: { seconds: number; micros: number; data: Buffer }[] = []
  const reader = new PcapReader((data, offset, captured, _original, seconds, fraction) => {
    packets.push({
      seconds,
      micros: fraction,
      data: Buffer.from(data.subarray(offset, offset + captured)),
    })
  })
  reader.push(bytes)
  expect(reader.end().truncatedBytes).toBe(0)
  return { header: reader.header, packets }
}

function batch(
  agent: EnrolledAgent,
  grantId: string,
  seq: number,
  records: Partial<Pick<RestrictedBatch, 'flows' | 'dns' | 'web' | 'pcap'>>,
): RestrictedBatch {
  return {
    version: 1,
    agent_id: agent.agent_id,
    grant_id: grantId,
    seq,
    flows: [],
    dns: [],
    web: [],
    pcap: [],
    ...records,
  }
}

const ingest = async (agent: EnrolledAgent, body: unknown): Promise<Response> =>
  await app.request('/v1/restricted/ingest', {
    method: 'POST',
    headers: {
      authorization: `Bearer ${agent.credential}`,
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    },
    body: gz(body),
  })

/** Entries of a register about one case (or of every case when not given). */
async function entries(which: 'itsd' | 'oios', caseId?: string): Promise<RegisterEntry[]> {
  return register.entries(which, {
    limit: 10_000,
    ...(caseId === undefined ? {} : { case_id: caseId }),
  })
}

const drill = (path: string, person: Person, grant: string | undefined) =>
  call(
    'GET',
    path,
    person.token,
    grant === undefined ? {} : { headers: { 'x-tally-grant': grant } },
  )

/**
 * Rows of a case in every tier I table: as read (FINAL, a resent flow counts once) or, with
 * `raw`, every row stored, versions not yet merged included.
 */
async function rowsIn(caseId: string, raw = false): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const table of RESTRICTED_TABLES) {
    const replacing = table === 'flows' || table === 'pcap_segments'
    const from = `tally_restricted.${table}${replacing && !raw ? ' FINAL' : ''}`
    out[table] = await count(h.store, from, 'case_id = {id:String}', { id: caseId })
  }
  return out
}

beforeAll(async () => {
  h = await openHarness()
  grantKey = loadOrCreateSigningKey(join(h.dir, 'grant-signing.pem'))
  const log = pino({ level: 'silent' })
  register = new Register(
    h.store,
    loadOrCreateSigningKey(join(h.dir, REGISTER_KEY_FILE)).privateKey,
  )
  flaky = new FlakyRegister(register)
  const grants = new GrantIssuer(h.store, grantKey)
  const purge = createPurger(h.store)
  const cases = new CaseService({
    store: h.store,
    register: flaky,
    records: register,
    grants,
    outbox: new Outbox(h.store, {}, log),
    policy: h.config.cases,
    log,
    purge,
    rolesOf: (userId) => rolesOf(h.store, userId),
  })
  app = new Hono<CollectorEnv>()
    .use(async (c, next) => {
      c.set('log', log)
      await next()
    })
    .route('/', caseRoutes(h.store, cases))
    .route(
      '/',
      restrictedRoutes({
        store: h.store,
        cases,
        grants,
        register: flaky,
        purge,
        dataDir: h.dir,
        limits: h.config.restricted,
      }),
    )
    // As app.onError answers them (collector/app.ts): the routes throw, they do not answer.
    .onError((err, c) => {
      if (!(err instanceof DomainError)) throw err
      if (err.failure === 'unavailable') c.header('Retry-After', '5')
      return problemOf(c, err)
    })
  const make = async (roles: Role[], name: string): Promise<Person> =>
    createUser(h.store, name, roles, 'test')
  people.requester = await make(['requester'], 'requester')
  people.approver = await make(['approver'], 'approver')
  people.chief = await make(['oios_chief'], 'OIOS chief')
  people.investigator = await make(['itsd_investigator'], 'investigator')
  people.investigator2 = await make(['itsd_investigator'], 'another investigator')
  people.official = await make(['receiving_official'], 'receiving official')
  people.official2 = await make(['receiving_official'], 'another receiving official')
  people.oiosInvestigator = await make(['oios_investigator'], 'OIOS investigator')
  agentA = await enrollAgent(h, 'geneva', 'subject-host')
  agentB = await enrollAgent(h, 'geneva', 'other-host')
})

afterAll(async () => {
  await h?.close()
})

describe('tier I', () => {
  let c1: OpenedCase
  let c2: OpenedCase
  let t0: number
  const flow = (
    start: number,
    end: number,
    bytes: number,
    extra: Partial<RestrictedBatch['flows'][number]> = {},
  ) => ({
    start,
    end,
    ip_version: 4 as const,
    protocol: 6,
    src: '10.1.0.5',
    dst: '93.184.216.34',
    src_port: 50_000,
    dst_port: 443,
    bytes,
    packets: Math.ceil(bytes / 500),
    tcp_flags: 0x1b,
    community_id: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
    ...extra,
  })
  const seg0 = pcapFile(2, 1_000)
  const seg1 = pcapFile(1, 2_000, true)

  beforeAll(async () => {
    c1 = await activeCase(['flows', 'dns', 'packets'], ['10.1.0.5', '2001:db8::5'])
    c2 = await activeCase(['flows'], ['10.1.0.9'])
    t0 = c1.window.start + 1_000
  })

  describe('ingest', () => {
    it('takes a batch under the grant, once', async () => {
      const body = batch(agentA, c1.grant_id, 1, {
        flows: [
          flow(t0, t0 + 2_000, 1_000),
          flow(t0 + 500, t0 + 600, 120, {
            protocol: 17,
            dst: '10.1.0.1',
            src_port: 5353,
            dst_port: 53,
            tcp_flags: 0,
            community_id: '1:udp-flow',
          }),
        ],
        dns: [
          {
            ts: t0 + 550,
            client: '10.1.0.5',
            server: '10.1.0.1',
            query: 'example.org',
            qtype: 'A',
            rcode: 'NOERROR',
          },
        ],
        pcap: [
          { index: 0, first: t0, last: t0 + 1_000, packets: 2, data: seg0.toString('base64') },
          {
            index: 1,
            first: t0 + 1_500,
            last: t0 + 1_500,
            packets: 1,
            data: seg1.toString('base64'),
          },
        ],
      })
      const first = await ok<{ status: string; counts: Record<string, number> }>(
        ingest(agentA, body),
      )
      expect(first).toMatchObject({
        status: 'stored',
        counts: { flows: 2, dns: 1, web: 0, pcap: 2 },
      })
      const again = await ok<{ status: string }>(ingest(agentA, body))
      expect(again.status).toBe('duplicate')
      expect(await rowsIn(c1.case_id)).toMatchObject({ flows: 2, dns: 1, web: 0, pcap_segments: 2 })
      // The segments are not stored in the clear.
      const stored = await selectRows<{ ciphertext: string }>(
        h.store,
        'SELECT ciphertext FROM tally_restricted.pcap_segments WHERE case_id = {id:String}',
        { id: c1.case_id },
      )
      for (const row of stored) {
        expect(Buffer.from(row.ciphertext, 'base64').includes(seg0.subarray(40, 80))).toBe(false)
        expect(row.ciphertext).not.toContain(seg0.toString('base64').slice(40, 80))
      }
      const registered = (await entries('itsd', c1.case_id)).filter(
        (e) => e.kind === 'restricted_ingest',
      )
      expect(registered).toHaveLength(1)
      // The case key is wrapped by the master key, made on first use: 32 bytes, owner-only.
      expect(statSync(masterKeyFile(h.dir)).mode & 0o777).toBe(0o600)
      expect(readFileSync(masterKeyFile(h.dir)).length).toBe(32)
      expect(registered[0]?.actor).toBe(agentA.agent_id)
      expect(registered[0]?.details).toMatchObject({
        grant_id: c1.grant_id,
        seq: 1,
        counts: { flows: 2, dns: 1, pcap: 2 },
      })
    })

    it('keeps the latest counts of a flow the agent resends', async () => {
      await ok(
        ingest(agentA, batch(agentA, c1.grant_id, 2, { flows: [flow(t0, t0 + 9_000, 5_000)] })),
      )
      // Sealed: the flow is named by its keyed flow_key; one row of it is left, the latest.
      const [row] = await selectRows<{ end: number; n: number }>(
        h.store,
        `SELECT toUnixTimestamp64Milli(any(\`end\`)) AS end, count() AS n
         FROM tally_restricted.flows FINAL
         WHERE case_id = {id:String} AND start = fromUnixTimestamp64Milli({t0:Int64})`,
        { id: c1.case_id, t0 },
      )
      expect(row).toEqual({ end: t0 + 9_000, n: 1 })
      // Its counts, opened with the case key, are the resent ones.
      const drilled = await ok<{ rows: { start: number; bytes: number }[] }>(
        drill(`/v1/cases/${c1.case_id}/flows`, people.investigator, c1.access),
      )
      expect(drilled.rows.filter((r) => r.start === t0).map((r) => r.bytes)).toEqual([5_000])
    })

    it('takes records for case 2 too', async () => {
      const t = c2.window.start + 1_000
      await ok(
        ingest(
          agentA,
          batch(agentA, c2.grant_id, 1, { flows: [flow(t, t + 10, 10, { src: '10.1.0.9' })] }),
        ),
      )
      expect((await rowsIn(c2.case_id)).flows).toBe(1)
    })

    const rejected = async (agent: EnrolledAgent, body: unknown, code: string) => {
      const res = await ingest(agent, body)
      expect(res.status).toBe(403)
      expect((await errorBody(res)).error).toBe(code)
    }
    /** The last rejection registered for `register`: reason and counts, nothing of the records. */
    const lastRejection = async (which: 'itsd' | 'oios' = 'itsd') => {
      const all = (await entries(which)).filter((e) => e.kind === 'restricted_ingest_rejected')
      const last = all.at(-1)
      expect(last).toBeDefined()
      const text = JSON.stringify(last)
      for (const secret of ['10.1.0.5', 'example.org', 'secret.example', '93.184.216.34']) {
        expect(text).not.toContain(secret)
      }
      return last as RegisterEntry
    }

    it('refuses records outside the window, and registers it', async () => {
      const before = await rowsIn(c1.case_id)
      await rejected(
        agentA,
        batch(agentA, c1.grant_id, 3, {
          dns: [
            {
              ts: t0,
              client: '10.1.0.5',
              server: '10.1.0.1',
              query: 'secret.example',
              qtype: 'A',
              rcode: '',
            },
            {
              ts: c1.window.end + HOUR,
              client: '10.1.0.5',
              server: '10.1.0.1',
              query: 'secret.example',
              qtype: 'A',
              rcode: '',
            },
          ],
        }),
        'outside_window',
      )
      await rejected(
        agentA,
        batch(agentA, c1.grant_id, 4, { flows: [flow(c1.window.start - 5_000, t0, 1)] }),
        'outside_window',
      )
      const entry = await lastRejection()
      expect(entry).toMatchObject({ actor: agentA.agent_id, case_id: c1.case_id })
      expect(entry.details).toMatchObject({
        reason: 'outside_window',
        grant_id: c1.grant_id,
        counts: { flows: 1 },
      })
      expect(await rowsIn(c1.case_id)).toEqual(before)
    })

    it('refuses a category the grant does not name', async () => {
      await rejected(
        agentA,
        batch(agentA, c1.grant_id, 5, {
          web: [
            {
              ts: t0,
              client: '10.1.0.5',
              server: '93.184.216.34',
              server_port: 443,
              kind: 'tls-sni',
              name: 'secret.example',
            },
          ],
        }),
        'category_not_granted',
      )
      expect((await lastRejection()).details).toMatchObject({ reason: 'category_not_granted' })
      expect((await rowsIn(c1.case_id)).web).toBe(0)
    })

    it("refuses another agent's grant, a batch naming another agent, an unknown grant", async () => {
      await rejected(
        agentB,
        batch(agentB, c1.grant_id, 1, { flows: [flow(t0, t0, 1)] }),
        'not_your_grant',
      )
      expect((await lastRejection()).details).toMatchObject({
        reason: 'not_your_grant',
        grant_id: c1.grant_id,
      })
      expect((await lastRejection()).actor).toBe(agentB.agent_id)
      await rejected(
        agentB,
        batch(agentA, c1.grant_id, 1, { flows: [flow(t0, t0, 1)] }),
        'wrong_agent',
      )
      await rejected(
        agentA,
        batch(agentA, 'g-0000000000000000', 1, { flows: [flow(t0, t0, 1)] }),
        'grant_unknown',
      )
      const unknown = await lastRejection()
      expect(unknown.details).toMatchObject({
        reason: 'grant_unknown',
        grant_id: 'g-0000000000000000',
      })
      expect(unknown.case_id).toBeUndefined()
      await rejected(
        agentA,
        batch(agentA, "g-1' OR '1'='1", 1, { flows: [flow(t0, t0, 1)] }),
        'grant_unknown',
      )
      expect((await rowsIn(c1.case_id)).flows).toBe(2)
    })

    it('refuses malformed input with a 400 and no write', async () => {
      const bad = async (body: unknown, code: string) => {
        const res = await ingest(agentA, body)
        expect(res.status).toBe(400)
        expect((await errorBody(res)).error).toBe(code)
      }
      await bad({ ...batch(agentA, c1.grant_id, 6, {}), extra: 1 }, 'invalid_batch')
      await bad(
        batch(agentA, c1.grant_id, 7, {
          pcap: [{ index: 9, first: t0, last: t0, packets: 1, data: '!!!notbase64' }],
        }),
        'invalid_pcap',
      )
      await bad(
        batch(agentA, c1.grant_id, 8, {
          pcap: [{ index: 9, first: t0, last: t0, packets: 5, data: seg0.toString('base64') }],
        }),
        'invalid_pcap',
      )
      const cut = seg0.subarray(0, seg0.length - 3).toString('base64')
      await bad(
        batch(agentA, c1.grant_id, 9, {
          pcap: [{ index: 9, first: t0, last: t0, packets: 2, data: cut }],
        }),
        'invalid_pcap',
      )
      const res = await app.request('/v1/restricted/ingest', { method: 'POST', body: '{}' })
      expect(res.status).toBe(401)
      expect(await rowsIn(c1.case_id)).toMatchObject({ flows: 2, pcap_segments: 2 })
    })

    it('caps bodies by the restricted settings (413), as tier T by the ingest ones', async () => {
      const MiB = 1024 * 1024
      expect(h.config.restricted).toEqual({
        max_body_bytes: 128 * MiB,
        max_decompressed_bytes: 160 * MiB,
      })
      expect(() => CollectorConfig.parse({ restricted: { max_body_bytes: 0 } })).toThrow()
      const capped = h.appWith({
        restricted: { max_body_bytes: 2048, max_decompressed_bytes: 4096 },
      })
      const post = (body: Uint8Array) =>
        capped.request('/v1/restricted/ingest', {
          method: 'POST',
          headers: {
            authorization: `Bearer ${agentA.credential}`,
            'content-type': 'application/json',
            'content-encoding': 'gzip',
          },
          body,
        })
      // Small compressed, past the decompressed cap once inflated.
      const inflating = { ...batch(agentA, c1.grant_id, 6, {}), padding: 'x'.repeat(10_000) }
      expect(gz(inflating).length).toBeLessThan(2048)
      const bomb = await post(gz(inflating))
      expect(bomb.status).toBe(413)
      expect(await errorBody(bomb)).toMatchObject({
        error: 'body_too_large',
        message: 'decompressed body exceeds 4096 bytes',
      })
      const large = await post(randomBytes(3000))
      expect(large.status).toBe(413)
      expect(await errorBody(large)).toMatchObject({
        error: 'body_too_large',
        message: 'request body exceeds 2048 bytes',
      })
      // Under the default caps the same body is read, and refused for what it is.
      expect((await ingest(agentA, inflating)).status).toBe(400)
      expect(await rowsIn(c1.case_id)).toMatchObject({ flows: 2, pcap_segments: 2 })
    })

    it('answers 503 and stores nothing when the register cannot be written', async () => {
      flaky.fail = true
      try {
        const res = await ingest(
          agentA,
          batch(agentA, c1.grant_id, 10, {
            flows: [flow(t0 + 100, t0 + 200, 1, { community_id: '1:new' })],
          }),
        )
        expect(res.status).toBe(503)
        expect((await errorBody(res)).error).toBe('register_unavailable')
      } finally {
        flaky.fail = false
      }
      expect((await rowsIn(c1.case_id)).flows).toBe(2)
    })
  })

  describe('drill-down', () => {
    interface Answer {
      case_id: string
      category: string
      count: number
      truncated: boolean
      rows: Record<string, string | number>[]
    }
    const flows = (
      query = '',
      person = people.investigator,
      grant: string | undefined = c1.access,
    ) => drill(`/v1/cases/${c1.case_id}/flows${query}`, person, grant)

    it("returns the subject's flows and registers the call with the answer's digest", async () => {
      const res = await flows()
      const text = await res.text()
      expect(res.status, text).toBe(200)
      const answer = JSON.parse(text) as Answer
      expect(answer.count).toBe(2)
      expect(answer.rows.map((r) => r.bytes).sort()).toEqual([120, 5_000])
      expect(answer.rows[0]).toMatchObject({
        agent_id: agentA.agent_id,
        src: '10.1.0.5',
        dst: '93.184.216.34',
        start: t0,
        end: t0 + 9_000,
      })
      const last = (await entries('itsd', c1.case_id)).filter((e) => e.kind === 'drilldown').at(-1)
      expect(last?.actor).toBe(people.investigator.user.user_id)
      expect(last?.details).toMatchObject({ category: 'flows', rows: 2, sha256: sha256(text) })
      const dns = await ok<Answer>(
        drill(`/v1/cases/${c1.case_id}/dns`, people.investigator, c1.access),
      )
      expect(dns.rows).toEqual([
        {
          agent_id: agentA.agent_id,
          ts: t0 + 550,
          client: '10.1.0.5',
          server: '10.1.0.1',
          query: 'example.org',
          qtype: 'A',
          rcode: 'NOERROR',
        },
      ])
    })

    it('narrows', async () => {
      const n = async (query: string) => (await ok<Answer>(flows(query))).count
      expect(await n('?port=443')).toBe(1)
      expect(await n('?port=53&protocol=udp')).toBe(1)
      expect(await n('?protocol=6')).toBe(1)
      expect(await n('?protocol=1')).toBe(0)
      expect(await n(`?address=10.1.0.5&agent_id=${agentA.agent_id}`)).toBe(2)
      expect(await n('?address=2001:0DB8:0::5')).toBe(0)
      expect(await n(`?from=${t0 + 700}`)).toBe(1)
      expect(await n(`?from=${encodeURIComponent(iso(t0 + 9_500))}`)).toBe(0)
      expect(await n(`?to=${encodeURIComponent(iso(t0 + 550))}`)).toBe(2)
      expect(await n(`?to=${t0 - 1}`)).toBe(0)
      const limited = await ok<Answer>(flows('?limit=1'))
      expect(limited).toMatchObject({ count: 1, truncated: true })
    })

    it('refuses to widen: time, address, agent, category', async () => {
      const wider = async (res: Promise<Response>) => {
        const r = await res
        expect(r.status).toBe(403)
        expect(await errorBody(r)).toMatchObject({ error: 'outside_scope' })
      }
      await wider(flows(`?from=${c1.window.start - 1}`))
      await wider(flows(`?to=${encodeURIComponent(iso(c1.window.end + 1_000))}`))
      await wider(flows('?address=10.1.0.9'))
      await wider(flows(`?agent_id=${agentB.agent_id}`))
      await wider(drill(`/v1/cases/${c1.case_id}/web`, people.investigator, c1.access))
      const refused = (await entries('itsd', c1.case_id)).filter(
        (e) => e.kind === 'drilldown_refused',
      )
      expect(refused.length).toBeGreaterThanOrEqual(5)
    })

    it('refuses unknown or repeated parameters', async () => {
      for (const query of [
        '?q=1',
        '?port=1&port=2',
        '?limit=10001',
        '?limit=0',
        '?from=yesterday',
        `?from=${t0 + 10}&to=${t0}`,
      ]) {
        const res = await flows(query)
        expect(res.status, query).toBe(400)
      }
      const res = await drill(`/v1/cases/${c1.case_id}/dns?port=53`, people.investigator, c1.access)
      expect(res.status).toBe(400)
    })

    it('gives nothing away to SQL metacharacters in any parameter', async () => {
      const payloads = [
        "1' OR '1'='1",
        '1; DROP TABLE tally_restricted.flows; --',
        "10.1.0.5' OR 1=1 --",
        "a-0000000000000000' OR agent_id != '",
        '443) OR (1=1',
        "\\' UNION SELECT token_sha256 FROM tally.users --",
        '{case_id:String}',
      ]
      for (const name of ['from', 'to', 'agent_id', 'address', 'port', 'protocol', 'limit']) {
        for (const value of payloads) {
          const res = await flows(`?${name}=${encodeURIComponent(value)}`)
          const text = await res.text()
          expect([400, 403], `${name}=${value}`).toContain(res.status)
          expect(text).not.toContain('"rows"')
          expect(text).not.toContain('93.184.216.34')
        }
      }
      for (const path of [
        `/v1/cases/${encodeURIComponent("c-1' OR '1'='1")}/flows`,
        `/v1/cases/${c2.case_id}/flows`,
      ]) {
        const res = await drill(path, people.investigator, c1.access)
        expect(res.status).toBe(403)
        expect((await errorBody(res)).error).toBe('wrong_case')
      }
      expect(
        (await drill(`/v1/cases/${c1.case_id}/flows`, people.investigator, "' OR 1=1 --")).status,
      ).toBe(401)
      expect((await rowsIn(c1.case_id)).flows).toBe(2)
      expect(await count(h.store, 'tally_restricted.flows FINAL')).toBe(3)
    })

    it('refuses forged, expired, misplaced and borrowed grants', async () => {
      const claims = decodeJwt(c1.access)
      const reSign = async (key: GrantSigningKey['privateKey'], exp: number) =>
        new SignJWT({
          case_id: claims.case_id,
          categories: claims.categories,
          subjects: claims.subjects,
          window: claims.window,
        })
          .setProtectedHeader({ alg: 'EdDSA', typ: ACCESS_GRANT_TYPE })
          .setIssuer(GRANT_ISSUER)
          .setAudience(DRILLDOWN_AUDIENCE)
          .setSubject(people.investigator.user.user_id)
          .setJti(claims.jti as string)
          .setIssuedAt(exp - 7_200)
          .setNotBefore(exp - 7_200)
          .setExpirationTime(exp)
          .sign(key)
      const expect401 = async (res: Promise<Response>, code: string) => {
        const r = await res
        expect(r.status).toBe(401)
        expect((await errorBody(r)).error).toBe(code)
      }
      const forged = await reSign(
        generateKeyPairSync('ed25519').privateKey,
        Math.floor(Date.now() / 1000) + 3_600,
      )
      await expect401(flows('', people.investigator, forged), 'grant_invalid')
      const expired = await reSign(grantKey.privateKey, Math.floor(Date.now() / 1000) - 60)
      await expect401(flows('', people.investigator, expired), 'grant_expired')
      await expect401(
        drill(`/v1/cases/${c1.case_id}/flows`, people.investigator, undefined),
        'grant_required',
      )
      // A capture grant is not an access grant.
      const capture = (
        await ok<{ grants: { grant_id: string; token: string }[] }>(
          call('GET', '/v1/agents/grants', agentA.credential),
        )
      ).grants[0]?.token
      await expect401(flows('', people.investigator, capture), 'grant_invalid')

      const other = await flows('', people.investigator, c2.access)
      expect(other.status).toBe(403)
      expect((await errorBody(other)).error).toBe('wrong_case')
      const borrowed = await flows('', people.investigator2, c1.access)
      expect(borrowed.status).toBe(403)
      expect((await errorBody(borrowed)).error).toBe('not_your_grant')
      expect((await flows('', people.official, c1.access)).status).toBe(403)
      expect((await call('GET', `/v1/cases/${c1.case_id}/flows`, undefined)).status).toBe(401)
    })

    it('answers 503 with no data when the register cannot be written', async () => {
      const before = (await entries('itsd', c1.case_id)).length
      flaky.fail = true
      try {
        const res = await flows()
        const text = await res.text()
        expect(res.status).toBe(503)
        expect(JSON.parse(text)).toMatchObject({ error: 'register_unavailable' })
        expect(text).not.toContain('93.184.216.34')
        expect(text).not.toContain('"rows"')
      } finally {
        flaky.fail = false
      }
      expect(await entries('itsd', c1.case_id)).toHaveLength(before)
    })
  })

  describe('export, receipt and purge', () => {
    interface Created {
      export_id: string
      manifest_sha256: string
      manifest: {
        case_id: string
        created_at: string
        files: { name: string; bytes: number; sha256: string }[]
      }
    }
    let created: Created
    const base = () => `/v1/cases/${c1.case_id}/exports/${created.export_id}`
    const download = async (path: string, person: Person, grant?: string) => {
      const res = await drill(path, person, grant)
      expect(res.status, path).toBe(200)
      return Buffer.from(await res.arrayBuffer())
    }

    it('does not create an export when the register cannot be written', async () => {
      flaky.fail = true
      try {
        const res = await call(
          'POST',
          `/v1/cases/${c1.case_id}/exports`,
          people.investigator.token,
          {
            headers: { 'x-tally-grant': c1.access },
          },
        )
        expect(res.status).toBe(503)
      } finally {
        flaky.fail = false
      }
      expect((await rowsIn(c1.case_id)).exports).toBe(0)
    })

    it('builds a bundle of the granted categories with a manifest of digests', async () => {
      created = await ok<Created>(
        call('POST', `/v1/cases/${c1.case_id}/exports`, people.investigator.token, {
          headers: { 'x-tally-grant': c1.access },
        }),
        201,
      )
      expect(created.manifest.case_id).toBe(c1.case_id)
      expect(created.manifest.files.map((f) => f.name)).toEqual([
        'flows.json',
        'flows.csv',
        'dns.json',
        'dns.csv',
        'packets.pcap',
      ])
      const entry = (await entries('itsd', c1.case_id))
        .filter((e) => e.kind === 'export_created')
        .at(-1)
      expect(entry?.details).toMatchObject({
        export_id: created.export_id,
        manifest_sha256: created.manifest_sha256,
      })
      expect((entry?.details as { files?: unknown } | undefined)?.files).toEqual(
        created.manifest.files,
      )
      // Stored encrypted: no file's bytes are in the table in the clear.
      const stored = await selectRows<{ ciphertext: string }>(
        h.store,
        'SELECT ciphertext FROM tally_restricted.exports WHERE case_id = {id:String}',
        { id: c1.case_id },
      )
      for (const row of stored)
        expect(Buffer.from(row.ciphertext, 'base64').toString('latin1')).not.toContain(
          'example.org',
        )
    })

    it('serves byte-identical files that match the manifest', async () => {
      const manifest = await download(`${base()}/manifest`, people.official)
      expect(sha256(manifest)).toBe(created.manifest_sha256)
      expect(JSON.parse(manifest.toString('utf8'))).toEqual(created.manifest)
      for (const file of created.manifest.files) {
        const byOfficial = await download(`${base()}/files/${file.name}`, people.official)
        const byInvestigator = await download(
          `${base()}/files/${file.name}`,
          people.investigator,
          c1.access,
        )
        expect(byOfficial.length).toBe(file.bytes)
        expect(sha256(byOfficial)).toBe(file.sha256)
        expect(byInvestigator.equals(byOfficial)).toBe(true)
      }
      const flowsJson = JSON.parse(
        (await download(`${base()}/files/flows.json`, people.official)).toString('utf8'),
      )
      const drilled = await ok<{ rows: unknown[] }>(
        drill(`/v1/cases/${c1.case_id}/flows?limit=10000`, people.investigator, c1.access),
      )
      expect(flowsJson).toEqual(drilled.rows)
      const csv = (await download(`${base()}/files/dns.csv`, people.official)).toString('utf8')
      expect(csv).toBe(
        `agent_id,ts,client,server,query,qtype,rcode\r\n${agentA.agent_id},${t0 + 550},10.1.0.5,10.1.0.1,example.org,A,NOERROR\r\n`,
      )

      const pcap = await download(`${base()}/files/packets.pcap`, people.official)
      expect(pcap.readUInt32LE(0)).toBe(0xa1b2c3d4)
      const parsed = readPcap(pcap)
      expect(parsed.header?.linkType).toBe(1)
      expect(parsed.packets.map((p) => p.seconds)).toEqual([1_000, 1_001, 2_000])
      expect(parsed.packets[2]?.data.equals(Buffer.alloc(60, 2_000 & 0xff))).toBe(true)
      expect(pcap.length).toBe(24 + 3 * (16 + 60))

      const downloads = (await entries('itsd', c1.case_id)).filter(
        (e) => e.kind === 'export_downloaded',
      )
      expect(downloads.length).toBeGreaterThanOrEqual(1 + 2 * created.manifest.files.length)
    })

    it('serves nothing to others', async () => {
      expect((await drill(`${base()}/manifest`, people.official2, undefined)).status).toBe(401)
      expect((await drill(`${base()}/manifest`, people.investigator2, c1.access)).status).toBe(403)
      expect((await drill(`${base()}/manifest`, people.requester, undefined)).status).toBe(403)
      expect(
        (await drill(`${base()}/files/..%2f..%2fetc%2fpasswd`, people.official, undefined)).status,
      ).toBe(404)
      expect(
        (
          await drill(
            `/v1/cases/${c1.case_id}/exports/x-0000000000000000/manifest`,
            people.official,
            undefined,
          )
        ).status,
      ).toBe(404)
    })

    /** The keys of a listing, the bundle's own ones sorted: ids, times, digests, sizes. */
    const LISTED_KEYS = [
      'bytes',
      'created_at',
      'created_by',
      'export_id',
      'files',
      'manifest_sha256',
    ]
    const list = (person: Person, grant?: string, caseId = c1.case_id) =>
      drill(`/v1/cases/${caseId}/exports`, person, grant)

    it('lists the bundles to the receiving official and the investigator: ids, digests, sizes only', async () => {
      const before = (await entries('itsd', c1.case_id)).length
      const byOfficial = await list(people.official)
      const text = await byOfficial.text()
      expect(byOfficial.status, text).toBe(200)
      const answer = JSON.parse(text) as { case_id: string; exports: Record<string, unknown>[] }
      expect(Object.keys(answer).sort()).toEqual(['case_id', 'exports'])
      expect(answer.case_id).toBe(c1.case_id)
      for (const bundle of answer.exports) expect(Object.keys(bundle).sort()).toEqual(LISTED_KEYS)
      expect(answer.exports).toEqual([
        {
          export_id: created.export_id,
          created_at: created.manifest.created_at,
          created_by: people.investigator.user.user_id,
          manifest_sha256: created.manifest_sha256,
          files: created.manifest.files.length,
          bytes: created.manifest.files.reduce((sum, f) => sum + f.bytes, 0),
        },
      ])
      // No tier I value: not an address, a name or a port of the records in the bundle.
      for (const value of ['10.1.0.5', '2001:db8::5', '93.184.216.34', 'example.org', '50000'])
        expect(text).not.toContain(value)
      const byInvestigator = await ok<typeof answer>(list(people.investigator, c1.access))
      expect(byInvestigator).toEqual(answer)
      // Registered as a manifest download is: one entry each, saying as whom.
      const listed = (await entries('itsd', c1.case_id))
        .slice(before)
        .filter((e) => e.kind === 'exports_listed')
      expect(listed.map((e) => [e.actor, e.details])).toEqual([
        [
          people.official.user.user_id,
          { export_ids: [created.export_id], as: 'receiving_official' },
        ],
        [people.investigator.user.user_id, { export_ids: [created.export_id], as: 'investigator' }],
      ])
    })

    it('answers no listing when the register cannot be written', async () => {
      const before = (await entries('itsd', c1.case_id)).length
      flaky.fail = true
      try {
        const res = await list(people.official)
        const text = await res.text()
        expect(res.status).toBe(503)
        expect(text).not.toContain(created.export_id)
      } finally {
        flaky.fail = false
      }
      expect(await entries('itsd', c1.case_id)).toHaveLength(before)
    })

    it('lists nothing to others: a case they are no party to does not exist', async () => {
      const masked = async (person: Person, caseId: string, grant?: string) => {
        const res = await list(person, grant, caseId)
        return { status: res.status, text: (await res.text()).replaceAll(caseId, '<id>') }
      }
      const unknown = 'c-does-not-exist'
      for (const [person, grant] of [
        [people.official2, undefined],
        [people.investigator2, c1.access],
        [people.oiosInvestigator, c1.access],
      ] as const) {
        const answer = await masked(person, c1.case_id, grant)
        expect(answer.status, answer.text).toBe(404)
        expect(answer).toEqual(await masked(person, unknown, grant))
        expect(answer.text).not.toContain(created.export_id)
      }
      // The roles that download nothing are refused by the route's guard.
      for (const person of [people.requester, people.approver, people.chief])
        expect((await list(person)).status).toBe(403)
      // The case's investigator, like a download, needs the access grant.
      const bare = await list(people.investigator)
      expect(bare.status).toBe(401)
      expect((await errorBody(bare)).error).toBe('grant_required')
    })

    it('takes the receipt only from the receiving official, with the right digests, then purges', async () => {
      const receipt = {
        manifest_sha256: created.manifest_sha256,
        files: created.manifest.files.map((f) => ({ name: f.name, sha256: f.sha256 })),
      }
      const path = `${base()}/receipt`
      expect((await call('POST', path, people.investigator.token, { body: receipt })).status).toBe(
        403,
      )
      const other = await call('POST', path, people.official2.token, { body: receipt })
      expect(other.status).toBe(403)
      const wrong = await call('POST', path, people.official.token, {
        body: {
          ...receipt,
          files: receipt.files.map((f, i) => (i === 0 ? { ...f, sha256: '0'.repeat(64) } : f)),
        },
      })
      expect(wrong.status).toBe(400)
      expect((await errorBody(wrong)).error).toBe('digest_mismatch')
      const missing = await call('POST', path, people.official.token, {
        body: { ...receipt, files: receipt.files.slice(1) },
      })
      expect(missing.status).toBe(400)
      const badManifest = await call('POST', path, people.official.token, {
        body: { ...receipt, manifest_sha256: 'f'.repeat(64) },
      })
      expect(badManifest.status).toBe(400)
      expect((await rowsIn(c1.case_id)).exports).toBeGreaterThan(0)

      const keyRows = await count(
        h.store,
        'tally.case_keys',
        "case_id = {id:String} AND key_ciphertext != ''",
        { id: c1.case_id },
      )
      expect(keyRows).toBeGreaterThan(0)
      await ok(call('POST', path, people.official.token, { body: receipt }))

      expect(await rowsIn(c1.case_id, true)).toEqual({
        flows: 0,
        dns: 0,
        web: 0,
        pcap_segments: 0,
        exports: 0,
      })
      const keys = await selectRows<{ key_ciphertext: string; destroyed: number }>(
        h.store,
        'SELECT key_ciphertext, destroyed_at IS NOT NULL AS destroyed FROM tally.case_keys WHERE case_id = {id:String}',
        { id: c1.case_id },
      )
      expect(keys.length).toBeGreaterThan(0)
      for (const k of keys) expect(k).toEqual({ key_ciphertext: '', destroyed: 1 })
      expect((await drill(`${base()}/manifest`, people.official, undefined)).status).toBe(404)
      // Case 2 is untouched.
      expect((await rowsIn(c2.case_id)).flows).toBe(1)

      const kinds = (await entries('itsd', c1.case_id)).map((e) => e.kind)
      for (const kind of [
        'restricted_ingest',
        'restricted_ingest_rejected',
        'drilldown',
        'export_created',
        'export_downloaded',
        'receipt_signed',
        'tier_i_purged',
      ]) {
        expect(kinds).toContain(kind)
      }
      expect(kinds.indexOf('receipt_signed')).toBeLessThan(kinds.lastIndexOf('tier_i_purged'))
      expect((await register.verify('itsd')).ok).toBe(true)
      const drilled = await ok<{ count: number }>(
        drill(`/v1/cases/${c1.case_id}/flows`, people.investigator, c1.access),
      )
      expect(drilled.count).toBe(0)
    })
    it('lists no bundle once received: the receipt purged it with the tier I data', async () => {
      const after = await ok<{ exports: unknown[] }>(list(people.official))
      expect(after.exports).toEqual([])
    })
  })

  describe('closing', () => {
    it('revokes at once: ingest and drill-down are refused, and the data is purged', async () => {
      await ok(
        call('POST', `/v1/cases/${c2.case_id}/closing`, people.approver.token, {
          body: { outcome: 'nothing found' },
        }),
      )
      const t = c2.window.start + 2_000
      const res = await ingest(
        agentA,
        batch(agentA, c2.grant_id, 2, { flows: [flow(t, t, 1, { src: '10.1.0.9' })] }),
      )
      expect(res.status).toBe(403)
      expect((await errorBody(res)).error).toBe('grant_revoked')
      const rejection = (await entries('itsd', c2.case_id))
        .filter((e) => e.kind === 'restricted_ingest_rejected')
        .at(-1)
      expect(rejection?.details).toMatchObject({ reason: 'grant_revoked', grant_id: c2.grant_id })
      const drilled = await drill(`/v1/cases/${c2.case_id}/flows`, people.investigator, c2.access)
      expect(drilled.status).toBe(403)
      expect((await errorBody(drilled)).error).toBe('grant_revoked')
      expect(await rowsIn(c2.case_id, true)).toEqual({
        flows: 0,
        dns: 0,
        web: 0,
        pcap_segments: 0,
        exports: 0,
      })
    })
  })

  describe('OIOS cases', () => {
    it("go to OIOS's record only", async () => {
      const now = Date.now()
      const opened = await ok<{ case_id: string; state: string }>(
        call('POST', '/v1/cases/oios', people.oiosInvestigator.token, {
          body: {
            description: 'OIOS investigation (test)',
            categories: ['flows'],
            subjects: [{ agent_id: agentA.agent_id, addresses: ['10.1.0.7'] }],
            window: { start: iso(now - HOUR), end: iso(now + HOUR) },
            receiving_official: people.official.user.user_id,
          },
        }),
        201,
      )
      expect(opened.state).toBe('active')
      const { grant_id, window } = await agentGrant(agentA, opened.case_id)
      const t = window.start + 10
      await ok(
        ingest(
          agentA,
          batch(agentA, grant_id, 1, { flows: [flow(t, t + 1, 1, { src: '10.1.0.7' })] }),
        ),
      )
      const late = await ingest(
        agentA,
        batch(agentA, grant_id, 2, { flows: [flow(t, window.end + 1, 1, { src: '10.1.0.7' })] }),
      )
      expect(late.status).toBe(403)
      const access = await ok<{ token: string }>(
        call('GET', `/v1/cases/${opened.case_id}/access-grant`, people.oiosInvestigator.token),
      )
      const rows = await ok<{ count: number }>(
        drill(`/v1/cases/${opened.case_id}/flows`, people.oiosInvestigator, access.token),
      )
      expect(rows.count).toBe(1)
      const oios = (await entries('oios', opened.case_id)).map((e) => e.kind)
      expect(oios).toEqual(
        expect.arrayContaining(['restricted_ingest', 'restricted_ingest_rejected', 'drilldown']),
      )
      expect(await entries('itsd', opened.case_id)).toEqual([])
    })

    it("lists an OIOS case's bundles to its parties only, on OIOS's record; to ITSD roles it does not exist", async () => {
      const now = Date.now()
      const opened = await ok<{ case_id: string }>(
        call('POST', '/v1/cases/oios', people.oiosInvestigator.token, {
          body: {
            description: 'OIOS investigation of the listing (test)',
            categories: ['flows'],
            subjects: [{ agent_id: agentB.agent_id, addresses: ['10.1.0.8'] }],
            window: { start: iso(now - HOUR), end: iso(now + HOUR) },
            receiving_official: people.official.user.user_id,
          },
        }),
        201,
      )
      const id = opened.case_id
      const access = await ok<{ token: string }>(
        call('GET', `/v1/cases/${id}/access-grant`, people.oiosInvestigator.token),
      )
      const made = await ok<{ export_id: string }>(
        call('POST', `/v1/cases/${id}/exports`, people.oiosInvestigator.token, {
          headers: { 'x-tally-grant': access.token },
        }),
        201,
      )
      const list = (person: Person, caseId: string, grant?: string) =>
        drill(`/v1/cases/${caseId}/exports`, person, grant)
      const masked = async (person: Person, caseId: string, grant?: string) => {
        const res = await list(person, caseId, grant)
        return { status: res.status, text: (await res.text()).replaceAll(caseId, '<id>') }
      }
      for (const [person, grant] of [
        [people.investigator, undefined],
        [people.investigator, c2.access],
        [people.official2, undefined],
      ] as const) {
        const answer = await masked(person, id, grant)
        expect(answer.status, answer.text).toBe(404)
        expect(answer).toEqual(await masked(person, 'c-does-not-exist', grant))
        expect(answer.text).not.toContain(made.export_id)
      }
      const byOfficial = await ok<{ exports: { export_id: string }[] }>(list(people.official, id))
      expect(byOfficial.exports.map((e) => e.export_id)).toEqual([made.export_id])
      const byInvestigator = await ok<{ exports: { export_id: string }[] }>(
        list(people.oiosInvestigator, id, access.token),
      )
      expect(byInvestigator).toEqual(byOfficial)
      const listed = (await entries('oios', id)).filter((e) => e.kind === 'exports_listed')
      expect(listed.map((e) => e.actor)).toEqual([
        people.official.user.user_id,
        people.oiosInvestigator.user.user_id,
      ])
      expect(await entries('itsd', id)).toEqual([])
    })
  })

  describe('OpenAPI', () => {
    it('documents exactly the tier I routes, with schemas that resolve', () => {
      const routes = restrictedRoutes({
        store: h.store,
        cases: {} as CaseService,
        grants: {} as GrantIssuer,
        register: flaky,
        purge: async () => undefined,
        dataDir: h.dir,
        limits: h.config.restricted,
      }).routes
      const served = [
        ...new Set(
          routes
            .filter((r) => r.method !== 'ALL')
            .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`),
        ),
      ]
      const paths = pathItems(RESTRICTED_ROUTES) as Record<string, Record<string, unknown>>
      const documented = Object.entries(paths).flatMap(([path, item]) =>
        Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`),
      )
      expect(documented.sort()).toEqual(served.sort())
      const names = new Set([
        ...Object.keys(RESTRICTED_REQUESTS),
        ...Object.keys(RESTRICTED_RESPONSES),
        'ErrorBody',
      ])
      for (const m of JSON.stringify(paths).matchAll(
        /"\$ref":"#\/components\/schemas\/([^"]+)"/g,
      )) {
        expect(names).toContain(m[1])
      }
      const registry = z.registry<{ id: string }>()
      for (const [id, schema] of Object.entries({
        ...RESTRICTED_REQUESTS,
        ...RESTRICTED_RESPONSES,
      })) {
        registry.add(schema, { id })
      }
      expect(Object.keys(z.toJSONSchema(registry).schemas)).toEqual(
        expect.arrayContaining(['RestrictedBatch', 'FlowRows', 'ExportCreated', 'Receipt']),
      )
    })
  })
})

describe('CSV cells for spreadsheets', () => {
  it('prefixes a text cell starting with = + - @ tab or CR with a single quote', () => {
    for (const start of ['=', '+', '-', '@', '\t', '\r']) {
      const cell = csvField(`${start}cmd|' /C calc'!A0`)
      expect(cell.replace(/^"/, ''), JSON.stringify(start)).toMatch(/^'/)
    }
    expect(csvField('=1+1')).toBe("'=1+1")
    expect(csvField('a=b')).toBe('a=b')
    expect(csvField('example.org')).toBe('example.org')
    // Numbers are numbers, and quoting still applies after the prefix.
    expect(csvField(-5)).toBe('-5')
    expect(csvField('=A1,B1')).toBe(`"'=A1,B1"`)
    expect(
      toCsv('dns', [
        {
          agent_id: 'a-1',
          ts: 1,
          client: '10.0.0.1',
          server: '10.0.0.2',
          query: '@SUM(1)',
          qtype: 'A',
          rcode: '',
        },
      ]),
    ).toBe("agent_id,ts,client,server,query,qtype,rcode\r\na-1,1,10.0.0.1,10.0.0.2,'@SUM(1),A,\r\n")
  })
})
