/**
 * The data directory holder acting as an existing user or agent by writing the hash of a token
 * of their own into its row (docs/privacy.md "Who can reach what"). The token key
 * (auth.token_key_file) is outside the data directory, with the other key files: they hold the
 * directory and the embedded engine in it, stop the collector, write with SQL, and start it
 * again.
 *
 * Real collectors (startCollector) on the embedded engine, one after the other on one data
 * directory, as in data-dir-holder.test.ts; an upgrade is a store written in the form from
 * before hashes were keyed (plain SHA-256), then started.
 */
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TOKEN_HASHES_BOUND } from '../../collector/auth/token-hashes.ts'
import { sha256Hex, TOKEN_KEY_FILE, TokenKey } from '../../collector/auth/tokens.ts'
import { ITSD_FOUNDER } from '../../collector/auth/users.ts'
import { CollectorConfig } from '../../collector/config.ts'
import { type RunningCollector, startCollector } from '../../collector/server.ts'
import { openStore, type Store } from '../../collector/store/client.ts'
import { migrate } from '../../collector/store/migrations.ts'
import { insertRows, selectRows } from '../../collector/store/rows.ts'
import { EnrollResponse } from '../../protocol/v1.ts'
import { proposeAndConfirm } from '../collector/harness.ts'
import { freePort, tmp } from '../e2e/harness.ts'

const ROOT = new URL('../../', import.meta.url).pathname

interface LogLine {
  level: number
  msg: string
  [k: string]: unknown
}

/** One data directory and its keys outside it; a collector started and stopped on them. */
class Site {
  readonly dir: string
  readonly keysDir: string
  running: RunningCollector | undefined
  log: LogLine[] = []

  constructor(dir: string, keysDir: string) {
    this.dir = dir
    this.keysDir = keysDir
  }

  config(): CollectorConfig {
    return CollectorConfig.parse({
      data_dir: this.dir,
      log_level: 'info',
      listen: { port: 0 },
      grants: { signing_key_file: join(this.keysDir, 'grant-signing-key.pem') },
      register: { signing_key_file: join(this.keysDir, 'register-signing-key.pem') },
      cases: { master_key_file: join(this.keysDir, 'case-master.key') },
      oios: { bootstrap_token_file: join(this.keysDir, 'oios-bootstrap.token') },
      auth: { token_key_file: join(this.keysDir, TOKEN_KEY_FILE) },
    })
  }

  async start(): Promise<void> {
    this.log = []
    const lines = this.log
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _encoding, done) {
          for (const line of String(chunk).split('\n')) {
            if (line !== '') lines.push(JSON.parse(line) as LogLine)
          }
          done()
        },
      }),
    )
    this.running = await startCollector(this.config(), logger)
  }

  async stop(): Promise<void> {
    await this.running?.close()
    this.running = undefined
  }

  /** The holder at work: the collector stopped, the engine of the data directory opened. */
  async asHolder<T>(work: (store: Store) => Promise<T>): Promise<T> {
    await this.stop()
    const store = openStore({ dataDir: this.dir })
    try {
      return await work(store)
    } finally {
      await store.close()
    }
  }

  async call(
    method: 'GET' | 'POST',
    path: string,
    token: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    if (this.running === undefined) throw new Error('no collector running')
    const res = await fetch(`${this.running.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? null : JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, body: text === '' ? {} : JSON.parse(text) }
  }

  founderToken(): string {
    return readFileSync(join(this.dir, 'admin.token'), 'utf8').trim()
  }

  /** The collector as an in-process app is called, for the harness's helpers. */
  asApp(): Parameters<typeof proposeAndConfirm>[0] {
    return {
      request: (path: string, init?: RequestInit) => fetch(`${this.running?.url}${path}`, init),
    } as unknown as Parameters<typeof proposeAndConfirm>[0]
  }

  async close(): Promise<void> {
    await this.stop()
    await rm(this.dir, { recursive: true, force: true })
    await rm(this.keysDir, { recursive: true, force: true })
  }
}

const part = (): string => randomBytes(32).toString('base64url')
/** A token of the holder's own for the user, agent or enrollment token `id`. */
const ownToken = (kind: 'u' | 'a' | 'e', id: string): string => `tly_${kind}_${id}.${part()}`
/**
 * The key a holder of the data directory can use: the token key when it is in the directory
 * (where the collector keeps it unless auth.token_key_file says otherwise), else one they make up.
 */
const madeUpKey = new TokenKey(randomBytes(32))
function holdersKey(dataDir: string): TokenKey {
  try {
    const text = readFileSync(join(dataDir, TOKEN_KEY_FILE), 'utf8').trim()
    return new TokenKey(Buffer.from(text, 'base64'))
  } catch {
    return madeUpKey
  }
}
const MADE_UP =
  'an HMAC under the key they can find (a made-up one: the key is not in the directory)'

/** Writes a new version of a row (the current one, some columns changed), as the holder can. */
async function rewrite(
  store: Store,
  table: 'tally.users' | 'tally.agents' | 'tally.enroll_tokens',
  idColumn: string,
  id: string,
  change: Record<string, unknown>,
): Promise<void> {
  const times: Record<string, string[]> = {
    'tally.users': ['created_at', 'revoked_at'],
    'tally.agents': ['enrolled_at', 'revoked_at'],
    'tally.enroll_tokens': ['created_at', 'expires_at', 'revoked_at'],
  }
  const [row] = await selectRows<Record<string, unknown> & { version: number }>(
    store,
    `SELECT * EXCEPT (${times[table]?.join(', ')}),
            ${times[table]?.map((c) => `toUnixTimestamp64Milli(${c}) AS ${c}`).join(', ')}
     FROM ${table} FINAL WHERE ${idColumn} = {id:String}`,
    { id },
  )
  expect(row, `${table} ${id}`).toBeDefined()
  await insertRows(store, table, [{ ...row, ...change, version: Number(row?.version) + 1000 }])
}

const bindings = async (store: Store) =>
  selectRows<{ seq: number; entry: string }>(
    store,
    `SELECT seq, entry FROM tally.register_entries
     WHERE register = 'itsd' AND kind = {kind:String} ORDER BY seq`,
    { kind: TOKEN_HASHES_BOUND },
  )

describe('the data directory holder replacing a token hash (collector stopped, SQL on the engine)', () => {
  let site: Site
  let founder: { user_id: string; token: string }
  let secondAdmin: { user_id: string; token: string }
  let provisional: string
  let investigator: { user_id: string; token: string }
  let agent: { agent_id: string; credential: string }

  beforeAll(async () => {
    site = new Site(
      await mkdtemp(join(tmpdir(), 'tally-token-hashes-')),
      await mkdtemp(join(tmpdir(), 'tally-token-hashes-keys-')),
    )
    await site.start()
    const listed = await site.call('GET', '/v1/admin/users', site.founderToken())
    founder = {
      user_id: String((listed.body.users as { user_id: string }[])[0]?.user_id),
      token: site.founderToken(),
    }
    const made = await site.call('POST', '/v1/admin/users', founder.token, {
      name: 'Second Admin',
      roles: ['admin'],
    })
    expect(made.status, JSON.stringify(made.body)).toBe(201)
    provisional = String(made.body.token)
    const replaced = await site.call('POST', '/v1/users/me/token', provisional)
    expect(replaced.status).toBe(201)
    secondAdmin = { user_id: String(made.body.user_id), token: String(replaced.body.token) }
    const admins = { itsd: [founder, secondAdmin], oios: [founder, secondAdmin] } as Parameters<
      typeof proposeAndConfirm
    >[1]
    investigator = await proposeAndConfirm(
      site.asApp(),
      admins,
      ['itsd_investigator'],
      'Investigator',
    )
    const token = await site.call('POST', '/v1/admin/enroll-tokens', founder.token, {
      site: 'hq',
    })
    expect(token.status).toBe(201)
    const enrolled = await site.call('POST', '/v1/agents/enroll', String(token.body.token), {
      hostname: 'staff-laptop',
      agent_version: '0.1.0-test',
    })
    expect(enrolled.status).toBe(201)
    const answer = EnrollResponse.parse(enrolled.body)
    agent = { agent_id: answer.agent_id, credential: answer.credential }
    // The investigator and the agent work, before anything is written behind the collector.
    expect((await site.call('GET', '/v1/cases', investigator.token)).status).toBe(200)
    expect((await site.call('GET', '/v1/agents/grants', agent.credential)).status).toBe(200)
  }, 60_000)

  afterAll(async () => {
    await site?.close()
  })

  it('the key is outside the data directory: no file in it holds the token key', () => {
    const key = readFileSync(join(site.keysDir, TOKEN_KEY_FILE))
    expect(key.length).toBeGreaterThan(0)
    const inside = readdirSync(site.dir, { recursive: true, encoding: 'utf8' })
    expect(inside).not.toContain(TOKEN_KEY_FILE)
    // A new install records the binding at its first start, with nothing to convert.
    expect(site.log.filter((l) => l.msg === 'token hashes bound to the token key')).toEqual([
      expect.objectContaining({ converted: 0 }),
    ])
  })

  it.each([
    [
      'a plain SHA-256 (the form from before keys)',
      (_id: string, token: string) => sha256Hex(token),
    ],
    [MADE_UP, (id: string, token: string) => holdersKey(site.dir).hash('user', id, token)],
  ])(
    "the investigator's hash replaced by %s of a token of the holder's: 401 everywhere",
    async (form, hashOf) => {
      const mine = ownToken('u', investigator.user_id)
      await site.asHolder(async (store) => {
        await rewrite(store, 'tally.users', 'user_id', investigator.user_id, {
          token_sha256: hashOf(investigator.user_id, mine),
        })
      })
      await site.start()
      for (const [method, path] of [
        ['GET', '/v1/cases'],
        ['GET', '/v1/register/itsd/entries'],
        ['POST', '/v1/users/me/token'],
        ['GET', '/v1/admin/users'],
      ] as const) {
        const answer = await site.call(method, path, mine)
        expect(answer.status, `${form}: ${method} ${path}`).toBe(401)
      }
      // The conversion happened once, at the first start; it is not done again over this row.
      await site.stop()
      const stored = await site.asHolder(async (store) => {
        const [row] = await selectRows<{ token_sha256: string }>(
          store,
          'SELECT token_sha256 FROM tally.users FINAL WHERE user_id = {id:String}',
          { id: investigator.user_id },
        )
        return { row, bound: await bindings(store) }
      })
      expect(stored.row?.token_sha256).toBe(hashOf(investigator.user_id, mine))
      expect(stored.bound).toHaveLength(1)
      await site.start()
    },
    60_000,
  )

  it('a plain SHA-256 written after the binding is told at start, once, naming the row', async () => {
    const mine = ownToken('u', investigator.user_id)
    await site.asHolder(async (store) => {
      await rewrite(store, 'tally.users', 'user_id', investigator.user_id, {
        token_sha256: sha256Hex(mine),
      })
    })
    await site.start()
    const told = site.log.filter(
      (l) => l.level >= 50 && String(l.msg).startsWith('token hashes in the old form'),
    )
    expect(told).toHaveLength(1)
    expect(told[0]?.users).toEqual([investigator.user_id])
    expect((await site.call('GET', '/v1/cases', mine)).status).toBe(401)
  }, 60_000)

  it.each([
    ['a plain SHA-256', (_id: string, token: string) => sha256Hex(token)],
    [MADE_UP, (id: string, t: string) => holdersKey(site.dir).hash('agent', id, t)],
  ])(
    "an agent's credential hash replaced by %s of a credential of the holder's: 401",
    async (_form, hashOf) => {
      const mine = ownToken('a', agent.agent_id)
      await site.asHolder(async (store) => {
        await rewrite(store, 'tally.agents', 'agent_id', agent.agent_id, {
          credential_sha256: hashOf(agent.agent_id, mine),
        })
      })
      await site.start()
      expect((await site.call('GET', '/v1/agents/grants', mine)).status).toBe(401)
      const ingest = await fetch(`${site.running?.url}/v1/ingest`, {
        method: 'POST',
        headers: { authorization: `Bearer ${mine}`, 'content-type': 'application/json' },
        body: '{}',
      })
      expect(ingest.status).toBe(401)
    },
    60_000,
  )

  it.each([
    ['a plain SHA-256', (_id: string, token: string) => sha256Hex(token)],
    [MADE_UP, (id: string, t: string) => holdersKey(site.dir).hash('enroll-token', id, t)],
  ])(
    'an enrollment token of their own written as %s enrolls nothing',
    async (_form, hashOf) => {
      const tokenId = `e-${randomBytes(8).toString('hex')}`
      const mine = ownToken('e', tokenId)
      await site.asHolder(async (store) => {
        const now = Date.now()
        await insertRows(store, 'tally.enroll_tokens', [
          {
            token_id: tokenId,
            site: 'hq',
            secret_sha256: hashOf(tokenId, mine),
            created_by: founder.user_id,
            created_at: now,
            expires_at: now + 3_600_000,
            max_uses: 10,
            revoked_at: null,
            version: now,
          },
        ])
      })
      await site.start()
      const enrolled = await site.call('POST', '/v1/agents/enroll', mine, {
        hostname: 'holders-host',
        agent_version: '0.1.0-test',
      })
      expect(enrolled.status).toBe(401)
      expect(enrolled.body.error).toBe('enrollment_refused')
    },
    60_000,
  )

  it("a use of their own enrollment token pointed at another agent gives no credential of that agent's", async () => {
    // An enrollment token the holder made as an admin, used once with an instance of theirs.
    const issued = await site.call('POST', '/v1/admin/enroll-tokens', founder.token, {
      site: 'hq',
    })
    const instance = randomBytes(32).toString('base64url')
    const own = await site.call('POST', '/v1/agents/enroll', String(issued.body.token), {
      hostname: 'holders-host',
      agent_version: '0.1.0-test',
      instance,
    })
    expect(own.status).toBe(201)
    const ownAgent = String(own.body.agent_id)
    // The use row now names the victim agent, and another carries a plain SHA-256 of the instance.
    await site.asHolder(async (store) => {
      const [use] = await selectRows<{ instance_sha256: string }>(
        store,
        'SELECT instance_sha256 FROM tally.enroll_token_uses WHERE token_id = {id:String}',
        { id: String(issued.body.token_id) },
      )
      await store.command({
        query: 'TRUNCATE TABLE tally.enroll_token_uses',
      })
      await insertRows(store, 'tally.enroll_token_uses', [
        {
          token_id: String(issued.body.token_id),
          agent_id: agent.agent_id,
          used_at: Date.now() - 2_000,
          instance_sha256: use?.instance_sha256,
        },
        {
          token_id: String(issued.body.token_id),
          agent_id: agent.agent_id,
          used_at: Date.now() - 1_000,
          instance_sha256: sha256Hex(instance),
        },
      ])
    })
    await site.start()
    const replay = await site.call('POST', '/v1/agents/enroll', String(issued.body.token), {
      hostname: 'holders-host',
      agent_version: '0.1.0-test',
      instance,
    })
    expect(replay.body.agent_id).not.toBe(agent.agent_id)
    expect(replay.status).toBe(401)
    expect(ownAgent).not.toBe(agent.agent_id)
  }, 60_000)

  it('a provisional token written back after its holder replaced it is refused', async () => {
    // The founder saw the second admin's provisional token; the row of that time is restored
    // (from a copy of the data directory: here, its keyed hash as it was then).
    const key = new TokenKey(
      Buffer.from(readFileSync(join(site.keysDir, TOKEN_KEY_FILE), 'utf8').trim(), 'base64'),
    )
    await site.asHolder(async (store) => {
      await rewrite(store, 'tally.users', 'user_id', secondAdmin.user_id, {
        token_sha256: key.hash('user', secondAdmin.user_id, provisional),
        provisional: 1,
      })
    })
    await site.start()
    const replaced = await site.call('POST', '/v1/users/me/token', provisional)
    expect(replaced.status).toBe(401)
    expect(
      site.log.filter((l) => l.msg.startsWith('a provisional token its holder replaced')),
    ).toEqual([expect.objectContaining({ user_id: secondAdmin.user_id })])
  }, 60_000)
})

describe('an upgrade from plain SHA-256 hashes', () => {
  let site: Site
  const founderId = `u-${randomBytes(8).toString('hex')}`
  const investigatorId = `u-${randomBytes(8).toString('hex')}`
  const agentId = `a-${randomBytes(8).toString('hex')}`
  const tokenId = `e-${randomBytes(8).toString('hex')}`
  const founderToken = ownToken('u', founderId)
  const [first, second] = [`tly_u_${investigatorId}.${part()}`, part()]
  const investigatorToken = `${first}${second}`
  const credential = ownToken('a', agentId)
  const enrollToken = ownToken('e', tokenId)

  beforeAll(async () => {
    site = new Site(
      await mkdtemp(join(tmpdir(), 'tally-token-upgrade-')),
      await mkdtemp(join(tmpdir(), 'tally-token-upgrade-keys-')),
    )
    // A store as the collector left it before hashes were keyed.
    const store = openStore({ dataDir: site.dir })
    try {
      await migrate(store)
      const now = Date.now()
      const user = (id: string, name: string, roles: string[], hash: string, by: string) => ({
        user_id: id,
        name,
        roles,
        side: 'itsd',
        token_sha256: hash,
        created_by: by,
        created_at: now,
        revoked_at: null,
        provisional: 0,
        version: now,
      })
      await insertRows(store, 'tally.users', [
        user(founderId, 'admin', ['admin'], sha256Hex(founderToken), ITSD_FOUNDER),
        user(
          investigatorId,
          'Investigator',
          ['itsd_investigator'],
          `${sha256Hex(first)}:${sha256Hex(second)}`,
          founderId,
        ),
      ])
      await insertRows(store, 'tally.agents', [
        {
          agent_id: agentId,
          site: 'hq',
          host: 'old-host',
          credential_sha256: sha256Hex(credential),
          enroll_token_id: 'e-0000000000000000',
          enrolled_at: now,
          revoked_at: null,
          version: now,
        },
      ])
      await insertRows(store, 'tally.enroll_tokens', [
        {
          token_id: tokenId,
          site: 'hq',
          secret_sha256: sha256Hex(enrollToken),
          created_by: founderId,
          created_at: now,
          expires_at: now + 3_600_000,
          max_uses: 1,
          revoked_at: null,
          version: now,
        },
      ])
    } finally {
      await store.close()
    }
    writeFileSync(join(site.dir, 'admin.token'), `${founderToken}\n`, { mode: 0o600 })
    await site.start()
  }, 60_000)

  afterAll(async () => {
    await site?.close()
  })

  it("converts every row once, recorded on the register, and each holder's token still works", async () => {
    expect(site.log.find((l) => l.msg === 'token hashes bound to the token key')).toMatchObject({
      converted: 4,
    })
    // The founder's token was kept: it authenticated after the conversion.
    expect(site.founderToken()).toBe(founderToken)
    expect((await site.call('GET', '/v1/admin/users', founderToken)).status).toBe(200)
    expect((await site.call('GET', '/v1/cases', investigatorToken)).status).toBe(200)
    expect((await site.call('GET', '/v1/agents/grants', credential)).status).toBe(200)
    const enrolled = await site.call('POST', '/v1/agents/enroll', enrollToken, {
      hostname: 'new-host',
      agent_version: '0.1.0-test',
    })
    expect(enrolled.status).toBe(201)
    // The entry is the collector's own: verify finds nothing wrong.
    const verify = await site.call('GET', '/v1/register/itsd/verify', founderToken)
    expect(verify.body.ok).toBe(true)
    const entries = await site.call('GET', '/v1/register/itsd/entries', founderToken)
    const bound = (entries.body.entries as { kind: string; details: unknown }[]).filter(
      (e) => e.kind === TOKEN_HASHES_BOUND,
    )
    expect(bound).toEqual([
      expect.objectContaining({ details: { key_id: expect.any(String), converted: 4 } }),
    ])
  }, 60_000)

  it('a plain SHA-256 planted after the conversion is never converted: 401, the real token 401 too', async () => {
    const mine = ownToken('u', investigatorId)
    await site.asHolder(async (store) => {
      await rewrite(store, 'tally.users', 'user_id', investigatorId, {
        token_sha256: sha256Hex(mine),
      })
    })
    await site.start()
    expect((await site.call('GET', '/v1/cases', mine)).status).toBe(401)
    expect((await site.call('GET', '/v1/cases', investigatorToken)).status).toBe(401)
    const again = await site.asHolder(bindings)
    expect(again).toHaveLength(1)
    await site.start()
  }, 60_000)

  it('a start with another token key is told and recorded: no stored token works', async () => {
    await site.stop()
    const file = join(site.keysDir, TOKEN_KEY_FILE)
    writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
    await site.start()
    const told = site.log.filter((l) => l.msg.startsWith('the token key is not the one'))
    expect(told).toHaveLength(1)
    expect((await site.call('GET', '/v1/agents/grants', credential)).status).toBe(401)
    // The founder gets a new token; the change of key is on the register.
    expect(site.founderToken()).not.toBe(founderToken)
    const entries = await site.call('GET', '/v1/register/itsd/entries', site.founderToken())
    const bound = (entries.body.entries as { kind: string; details: Record<string, unknown> }[])
      .filter((e) => e.kind === TOKEN_HASHES_BOUND)
      .map((e) => e.details)
    expect(bound).toHaveLength(2)
    expect(bound[1]?.previous_key_id).toBe(bound[0]?.key_id)
  }, 60_000)
})

describe('a broken token key file', () => {
  it.each([
    ['empty', ''],
    ['not a key', 'hello\n'],
  ])(
    '%s stops a real collector with one line naming it',
    async (_what, content) => {
      const base = tmp('token-key-file')
      const dataDir = join(base, 'data')
      const file = join(base, 'token.key')
      writeFileSync(file, content, { mode: 0o600 })
      const { spawn } = await import('node:child_process')
      const child = spawn(process.execPath, ['bin/tally.ts', 'collector', 'run'], {
        cwd: ROOT,
        env: {
          ...process.env,
          TALLY_DATA_DIR: dataDir,
          TALLY_AUTH_TOKEN_KEY_FILE: file,
          TALLY_LISTEN_PORT: String(await freePort()),
          TALLY_LOG_LEVEL: 'error',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let stderr = ''
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk
      })
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
      clearTimeout(timer)
      expect(code).toBe(1)
      const lines = stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'))
      expect(lines, stderr).toEqual([
        expect.stringMatching(/^tally: .*token\.key: is (empty|corrupt)/),
      ])
      expect(readFileSync(file, 'utf8')).toBe(content)
    },
    30_000,
  )
})
