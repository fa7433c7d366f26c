/**
 * The holder of the collector's data directory (embedded engine), without the key files: the
 * register key, the case master key and the grant key live outside the directory, as
 * docs/operators.md says a site keeps them. With the collector stopped, the holder writes the
 * store with direct SQL, then starts the collector again, as they could on their own.
 *
 * 1. A "roles confirmed" forged at the register's tail, in the second admin's name, for a user
 *    written into tally.users: the hash chain needs no key, but every entry the collector writes
 *    carries the register key's own signature. After the restart the user has no role, and the
 *    collector's verify and the auditor's own both name the forged entries.
 * 2. An active case written into the store, with its grants (signed with the real grant key,
 *    as a holder of the default layout, where that key sits in the data directory, could):
 *    nothing of it is served. The agent's grants poll lists no grant, the investigator gets no
 *    access grant and no drill-down, the agent's restricted batch is refused: the case's signed
 *    register entries do not record it.
 * 3. The grant key is not in the data directory: the key agents pin at enrollment is the file
 *    outside it (a grant signed with any other key is refused by agents: denied-attacks.test.ts,
 *    "forged capture grant").
 *
 * Real collectors (startCollector), one after the other on one data directory.
 */
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { bindTokenKey, TokenKey } from '../../collector/auth/tokens.ts'
import { createUser } from '../../collector/auth/users.ts'
import { DRILLDOWN_AUDIENCE, GrantIssuer } from '../../collector/cases/grants.ts'
import type { Case } from '../../collector/cases/model.ts'
import { saveCase } from '../../collector/cases/repository.ts'
import { CollectorConfig } from '../../collector/config.ts'
import { auditRegister, type RegisterApi } from '../../collector/register/audit.ts'
import {
  canonicalJson,
  entryHash,
  type RegisterEntry,
  signEntry,
} from '../../collector/register/register.ts'
import { type RunningCollector, startCollector } from '../../collector/server.ts'
import { openStore, type Store } from '../../collector/store/client.ts'
import { insertRows, selectRows } from '../../collector/store/rows.ts'
import { GRANT_AUDIENCE } from '../../protocol/grants.ts'
import { EnrollResponse } from '../../protocol/v1.ts'
import { gz, proposeAndConfirm } from '../collector/harness.ts'

let dir: string
let keysDir: string
let running: RunningCollector | undefined
/** The collector's log lines (JSON), for the error lines it must write. */
let logLines: { level: number; msg: string; [k: string]: unknown }[] = []

const logger = () =>
  pino(
    { level: 'info' },
    new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk)
          .split('\n')
          .filter((l) => l !== '')) {
          logLines.push(JSON.parse(line) as (typeof logLines)[number])
        }
        done()
      },
    }),
  )

const config = () =>
  CollectorConfig.parse({
    data_dir: dir,
    log_level: 'silent',
    listen: { port: 0 },
    grants: { signing_key_file: join(keysDir, 'grant-signing-key.pem') },
    register: { signing_key_file: join(keysDir, 'register-signing-key.pem') },
    cases: { master_key_file: join(keysDir, 'case-master.key') },
    oios: { bootstrap_token_file: join(keysDir, 'oios-bootstrap.token') },
    auth: { token_key_file: join(keysDir, 'token-hash.key') },
  })

async function start(): Promise<void> {
  logLines = []
  running = await startCollector(config(), logger())
}
async function stop(): Promise<void> {
  await running?.close()
  running = undefined
}

/** The holder at work: the collector stopped, the store opened on the data directory. */
async function asHolder<T>(work: (store: Store) => Promise<T>): Promise<T> {
  await stop()
  const store = openStore({ dataDir: dir })
  // Without the token key: what they write hashes under a key of their own.
  bindTokenKey(store, new TokenKey(randomBytes(32)))
  try {
    return await work(store)
  } finally {
    await store.close()
  }
}

interface Answer {
  status: number
  body: Record<string, unknown>
}

async function call(
  method: 'GET' | 'POST',
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  if (running === undefined) throw new Error('no collector running')
  const res = await fetch(`${running.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? null : JSON.stringify(body),
  })
  const text = await res.text()
  return {
    status: res.status,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  }
}

/** The running collector as an in-process app would be called (for the harness's helpers). */
const asApp = {
  request: (path: string, init?: RequestInit) => fetch(`${running?.url}${path}`, init),
} as unknown as Parameters<typeof proposeAndConfirm>[0]

const founderToken = () => readFileSync(join(dir, 'admin.token'), 'utf8').trim()

let founder: { user_id: string; token: string }
let secondAdmin: { user_id: string; token: string }
let investigator: { user_id: string; token: string }
let agent: { agent_id: string; credential: string; grantKey: Record<string, string> }

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tally-holder-'))
  keysDir = await mkdtemp(join(tmpdir(), 'tally-holder-keys-'))
  await start()
  const listed = await call('GET', '/v1/admin/users', founderToken())
  founder = {
    user_id: String((listed.body.users as { user_id: string }[])[0]?.user_id),
    token: founderToken(),
  }
  const made = await call('POST', '/v1/admin/users', founder.token, {
    name: 'Second Admin',
    roles: ['admin'],
  })
  expect(made.status, JSON.stringify(made.body)).toBe(201)
  const replaced = await call('POST', '/v1/users/me/token', String(made.body.token))
  expect(replaced.status).toBe(201)
  secondAdmin = { user_id: String(made.body.user_id), token: String(replaced.body.token) }
  // A real investigator, made by the two admins: the holder can act as any user (they can write
  // a token hash of their own into tally.users), so the case is what must stop them here.
  const admins = {
    itsd: [founder, secondAdmin],
    oios: [founder, secondAdmin],
  } as Parameters<typeof proposeAndConfirm>[1]
  investigator = await proposeAndConfirm(asApp, admins, ['itsd_investigator'], 'Investigator')
  const enrollToken = await call('POST', '/v1/admin/enroll-tokens', founder.token, {
    site: 'hq',
  })
  expect(enrollToken.status, JSON.stringify(enrollToken.body)).toBe(201)
  const enrolled = await call('POST', '/v1/agents/enroll', String(enrollToken.body.token), {
    hostname: 'staff-laptop',
    agent_version: '0.1.0-test',
  })
  expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(201)
  const answer = EnrollResponse.parse(enrolled.body)
  agent = {
    agent_id: answer.agent_id,
    credential: answer.credential,
    grantKey: answer.grant_public_key,
  }
}, 60_000)

afterAll(async () => {
  await stop()
  await rm(dir, { recursive: true, force: true })
  await rm(keysDir, { recursive: true, force: true })
})

/** Appends an entry at the tail of ITSD's register as a holder can: a correct hash chain. */
async function forgeAtTail(
  store: Store,
  input: Pick<RegisterEntry, 'kind' | 'actor' | 'details'>,
  signature: string | ((entry: RegisterEntry) => string),
): Promise<RegisterEntry> {
  const [last] = await selectRows<{ seq: number; hash: string }>(
    store,
    `SELECT seq, hash FROM tally.register_entries WHERE register = 'itsd'
     ORDER BY seq DESC LIMIT 1`,
  )
  const now = Date.now()
  const unsigned = {
    register: 'itsd' as const,
    seq: Number(last?.seq) + 1,
    ts: new Date(now).toISOString(),
    ...input,
    prev_hash: String(last?.hash),
  }
  const entry: RegisterEntry = { ...unsigned, hash: entryHash(unsigned) }
  await insertRows(store, 'tally.register_entries', [
    {
      register: 'itsd',
      seq: entry.seq,
      ts: now,
      kind: entry.kind,
      actor: entry.actor,
      case_id: '',
      entry: canonicalJson(entry),
      prev_hash: entry.prev_hash,
      hash: entry.hash,
      signature: typeof signature === 'string' ? signature : signature(entry),
    },
  ])
  return entry
}

const usersByName = async (): Promise<Map<string, string[]>> => {
  const answer = await call('GET', '/v1/admin/users', secondAdmin.token)
  expect(answer.status).toBe(200)
  const users = answer.body.users as { name: string; roles: string[] }[]
  return new Map(users.map((u) => [u.name, u.roles]))
}

describe('the data directory holder without the key files', () => {
  it('1: a "roles confirmed" forged at the register tail grants nothing, and verify names it', async () => {
    const madeUpKey = generateKeyPairSync('ed25519').privateKey
    const forged = await asHolder(async (store) => {
      const unsignedUser = await createUser(store, 'forged unsigned', ['itsd_investigator'], 'me')
      const badKeyUser = await createUser(store, 'forged made-up key', ['itsd_investigator'], 'me')
      const entries: RegisterEntry[] = []
      for (const [user, signature] of [
        [unsignedUser, ''],
        [badKeyUser, (e: RegisterEntry) => signEntry(e, madeUpKey)],
      ] as const) {
        entries.push(
          await forgeAtTail(
            store,
            {
              kind: 'roles confirmed',
              actor: secondAdmin.user_id,
              details: {
                proposal_id: `p-${randomBytes(8).toString('hex')}`,
                user_id: user.user.user_id,
                roles: ['itsd_investigator'],
                proposed_by: founder.user_id,
                new_user: true,
              },
            },
            signature,
          ),
        )
      }
      return entries
    })
    await start()
    // No role: reconcile trusted neither entry, and took the roles written into the store away.
    const users = await usersByName()
    expect(users.get('forged unsigned')).toEqual([])
    expect(users.get('forged made-up key')).toEqual([])
    expect(users.get('Investigator')).toEqual(['itsd_investigator'])
    // One error line at start; the appends after it (the removals) do not repeat it.
    const errors = logLines.filter((l) => l.level >= 50)
    expect(errors.map((l) => l.msg)).toEqual(['register does not verify'])
    expect(errors[0]?.seq).toBe(forged[0]?.seq)
    // The collector's own verify and the auditor's (over the API, here) both name both entries.
    const verify = await call('GET', '/v1/register/itsd/verify', secondAdmin.token)
    expect(verify.status).toBe(200)
    expect(verify.body.ok).toBe(false)
    const bad = (problems: unknown) =>
      (problems as { seq: number; kind: string }[])
        .filter((p) => p.kind === 'bad-signature')
        .map((p) => p.seq)
    expect(bad(verify.body.problems)).toEqual(forged.map((e) => e.seq))
    const api: RegisterApi = {
      get: async <T>(path: string) => (await call('GET', path, secondAdmin.token)).body as T,
      post: async <T>(path: string) => (await call('POST', path, secondAdmin.token)).body as T,
    }
    // The auditor pins the register key as they keep it, not as the collector serves it.
    const pinned = createPublicKey(readFileSync(join(keysDir, 'register-signing-key.pem')))
    const audit = await auditRegister(api, 'itsd', { publicKey: pinned })
    expect(audit.report.ok).toBe(false)
    expect(bad(audit.report.problems)).toEqual(forged.map((e) => e.seq))
  }, 60_000)

  it('2: an active case and its grants written into the store: no grant, no drill-down, no restricted ingest', async () => {
    const caseId = `c-${randomBytes(8).toString('hex')}`
    const now = Date.now()
    const grants = await asHolder(async (store) => {
      const doc: Case = {
        case_id: caseId,
        kind: 'standard',
        state: 'active',
        created_at: new Date(now - 3_600_000).toISOString(),
        requester: founder.user_id,
        recorded_by: founder.user_id,
        emergency: false,
        description: 'written by the holder',
        categories: ['flows'],
        subjects: [{ agent_id: agent.agent_id, addresses: ['192.0.2.10'] }],
        window: {
          start: new Date(now - 3_600_000).toISOString(),
          end: new Date(now + 3_600_000).toISOString(),
        },
        approvals: [
          {
            by: secondAdmin.user_id,
            at: new Date(now - 3_000_000).toISOString(),
            until: new Date(now + 3_600_000).toISOString(),
            kind: 'approval',
          },
        ],
        investigator: investigator.user_id,
      }
      await saveCase(store, doc)
      // Signed with the real grant key: a holder of the default layout has it at hand.
      const grantKey = loadOrCreateSigningKey(join(keysDir, 'grant-signing-key.pem'))
      await new GrantIssuer(store, grantKey).issue(doc, now - 3_600_000, now + 3_600_000)
      return selectRows<{ grant_id: string; audience: string; token: string }>(
        store,
        'SELECT grant_id, audience, token FROM tally.grants FINAL WHERE case_id = {id:String}',
        { id: caseId },
      )
    })
    const capture = grants.find((g) => g.audience === GRANT_AUDIENCE)
    const access = grants.find((g) => g.audience === DRILLDOWN_AUDIENCE)
    expect(capture).toBeDefined()
    expect(access).toBeDefined()
    await start()

    // The agent's grants poll lists nothing.
    const poll = await call('GET', '/v1/agents/grants', agent.credential)
    expect(poll.status).toBe(200)
    expect(poll.body.grants).toEqual([])
    // The investigator gets no access grant, and the one written into the store reads nothing.
    const accessGrant = await call('GET', `/v1/cases/${caseId}/access-grant`, investigator.token)
    expect(accessGrant.status, JSON.stringify(accessGrant.body)).toBe(409)
    expect(accessGrant.body.error).toBe('case_not_on_record')
    const drill = await call('GET', `/v1/cases/${caseId}/flows`, investigator.token, undefined, {
      'x-tally-grant': String(access?.token),
    })
    expect(drill.status, JSON.stringify(drill.body)).toBe(409)
    expect(drill.body.error).toBe('case_not_on_record')
    expect(JSON.stringify(drill.body)).not.toContain('192.0.2.10')
    const exported = await call(
      'POST',
      `/v1/cases/${caseId}/exports`,
      investigator.token,
      {},
      {
        'x-tally-grant': String(access?.token),
      },
    )
    expect(exported.status, JSON.stringify(exported.body)).toBe(409)
    // The agent's restricted batch under the written grant is refused, nothing stored.
    const res = await fetch(`${running?.url}/v1/restricted/ingest`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${agent.credential}`,
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      },
      body: gz({
        version: 1,
        agent_id: agent.agent_id,
        grant_id: capture?.grant_id,
        seq: 1,
        flows: [
          {
            start: now - 60_000,
            end: now - 30_000,
            ip_version: 4,
            protocol: 6,
            src: '192.0.2.10',
            dst: '198.51.100.7',
            src_port: 50000,
            dst_port: 443,
            bytes: 1200,
            packets: 3,
            tcp_flags: 0x1b,
            community_id: '1:holder',
          },
        ],
      }),
    })
    const ingest = (await res.json()) as Record<string, unknown>
    expect(res.status, JSON.stringify(ingest)).toBe(403)
    expect(ingest.error).toBe('case_not_on_record')
    // Each refusal said once in the log, without the case's id.
    const refusals = logLines.filter(
      (l) => l.level >= 50 && l.msg === 'a case document does not match the register: refused',
    )
    expect(refusals.length).toBeGreaterThanOrEqual(5)
    expect(JSON.stringify(logLines)).not.toContain(caseId)
    const stored = await asHolder(async (store) => {
      const [row] = await selectRows<{ n: number }>(
        store,
        'SELECT count() AS n FROM tally_restricted.flows WHERE case_id = {id:String}',
        { id: caseId },
      )
      return Number(row?.n)
    })
    expect(stored).toBe(0)
    await start()
  }, 60_000)

  it('3: the grant key is not in the data directory; agents pinned the one outside it', () => {
    const pems = (root: string): string[] =>
      readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((name) => {
        const file = join(root, name)
        return statSync(file).isFile() && readFileSync(file).includes('PRIVATE KEY')
      })
    expect(pems(dir)).toEqual([])
    expect(readdirSync(keysDir)).toEqual(
      expect.arrayContaining(['grant-signing-key.pem', 'register-signing-key.pem']),
    )
    const outside = loadOrCreateSigningKey(join(keysDir, 'grant-signing-key.pem'))
    expect(agent.grantKey.x).toBe(outside.publicJwk.x)
  })
})
