/**
 * Enrollment tokens, user tokens and roles, the admin routes and the probes, on the real
 * embedded engine.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../collector/app.ts'
import {
  createEnrollToken,
  enroll as enrollDirectly,
  type IssuedEnrollToken,
  instanceHash,
} from '../../collector/auth/enrollment.ts'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { sha256Hex, tokenKeyOf } from '../../collector/auth/tokens.ts'
import { firstPartHash, secondPartHash } from '../../collector/auth/users.ts'
import { insertRows, selectRows } from '../../collector/store/rows.ts'
import { EnrollResponse } from '../../protocol/v1.ts'
import {
  count,
  enrollAgent,
  errorBody,
  gz,
  type Harness,
  makeBatch,
  openHarness,
  postIngest,
  setUpAdministrators,
  userToken,
} from './harness.ts'

let h: Harness
let adminToken: string
/** The other admin, who confirms what `adminToken` proposes. */
let secondAdminToken: string

beforeAll(async () => {
  h = await openHarness()
  const admins = await setUpAdministrators(h.app, h.administration, h.dir)
  adminToken = admins.itsd[0].token
  secondAdminToken = admins.itsd[1].token
})

afterAll(async () => {
  await h?.close()
})

function request(
  path: string,
  options: { method?: string; token?: string; body?: unknown; rawBody?: string } = {},
) {
  const headers: Record<string, string> = {}
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  let body: string | undefined = options.rawBody
  if (options.body !== undefined) body = JSON.stringify(options.body)
  if (body !== undefined) headers['content-type'] = 'application/json'
  return h.app.request(path, { method: options.method ?? 'GET', headers, body: body ?? null })
}

const enroll = (token: string, hostname: string, agent_version = '0.1.0') =>
  request('/v1/agents/enroll', { method: 'POST', token, body: { hostname, agent_version } })

const makeToken = (site: string, maxUses = 1, now = Date.now(), ttlHours = 1) =>
  createEnrollToken(h.store, { site, ttlHours, maxUses, createdBy: 'test' }, now)

const agentCount = () => count(h.store, 'tally.agents FINAL')

async function expectRefusedEnrollment(token: string, message: RegExp) {
  const before = await agentCount()
  const res = await enroll(token, 'refused-host')
  expect(res.status).toBe(401)
  const body = await errorBody(res)
  expect(body.error).toBe('enrollment_refused')
  expect(body.message).toMatch(message)
  expect(await agentCount()).toBe(before)
}

describe('enrollment', () => {
  it('trades a token for a credential in the token site, host lower-cased', async () => {
    const res = await request('/v1/admin/enroll-tokens', {
      method: 'POST',
      token: adminToken,
      body: { site: 'nyc-hq', max_uses: 1 },
    })
    expect(res.status).toBe(201)
    const issued = (await res.json()) as IssuedEnrollToken
    expect(issued.site).toBe('nyc-hq')
    expect(issued.max_uses).toBe(1)
    expect(issued.token).toMatch(/^tly_e_/)
    // Default TTL is 24 h.
    const ttl = Date.parse(issued.expires_at) - Date.now()
    expect(ttl).toBeGreaterThan(23.9 * 3_600_000)
    expect(ttl).toBeLessThanOrEqual(24 * 3_600_000)

    const enrolled = await enroll(issued.token, 'Web-01.Example')
    expect(enrolled.status).toBe(201)
    const body = EnrollResponse.parse(await enrolled.json())
    expect(body.host).toBe('web-01.example')
    expect(body.site).toBe('nyc-hq')
    expect(body.interval_seconds).toBe(10)
    expect(body.credential).toMatch(new RegExp(`^tly_a_${body.agent_id}\\.`))
    expect(body.grant_public_key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' })
    expect(body.grant_public_key.d).toBeUndefined()

    // Only the keyed hash of the credential is kept.
    const [row] = await selectRows<{ site: string; host: string; credential_sha256: string }>(
      h.store,
      'SELECT site, host, credential_sha256 FROM tally.agents FINAL WHERE agent_id = {id:String}',
      { id: body.agent_id },
    )
    expect(row).toEqual({
      site: 'nyc-hq',
      host: 'web-01.example',
      credential_sha256: tokenKeyOf(h.store).hash('agent', body.agent_id, body.credential),
    })
  })

  it('refuses an expired token', async () => {
    const token = await makeToken('site-x', 5, Date.now() - 2 * 3_600_000, 1)
    await expectRefusedEnrollment(token.token, /expired/)
  })

  it('refuses a token past its max uses', async () => {
    const token = await makeToken('site-x', 2)
    expect((await enroll(token.token, 'host-1')).status).toBe(201)
    expect((await enroll(token.token, 'host-2')).status).toBe(201)
    await expectRefusedEnrollment(token.token, /already used 2 time/)
    await expectRefusedEnrollment(token.token, /already used 2 time/)
  })

  it('gives a single-use token to one of two agents enrolling at once', async () => {
    const token = await makeToken('site-x', 1)
    const before = await agentCount()
    const answers = await Promise.all([
      enroll(token.token, 'race-1'),
      enroll(token.token, 'race-2'),
    ])
    expect(answers.map((r) => r.status).sort()).toEqual([201, 401])
    expect(await agentCount()).toBe(before + 1)
  })

  it('does not spend a use on a request it refuses for its body', async () => {
    const token = await makeToken('site-x', 1)
    const bad = await enroll(token.token, 'not a host name!')
    expect(bad.status).toBe(400)
    const body = await errorBody(bad)
    expect(body.error).toBe('invalid_request')
    expect(body.issues?.map((i) => i.path)).toEqual(['hostname'])
    const extra = await request('/v1/agents/enroll', {
      method: 'POST',
      token: token.token,
      body: { hostname: 'h', agent_version: '1', site: 'other-site' },
    })
    expect(extra.status).toBe(400)
    expect((await errorBody(extra)).issues?.[0]?.message).toContain('site')
    expect((await enroll(token.token, 'good-host')).status).toBe(201)
  })

  it('refuses a wrong secret, a malformed token and no token', async () => {
    const token = await makeToken('site-x', 5)
    const wrong = `tly_e_${token.token_id}.${randomBytes(32).toString('base64url')}`
    await expectRefusedEnrollment(wrong, /unknown enrollment token/)
    const unknown = `tly_e_e-00000000deadbeef.${randomBytes(32).toString('base64url')}`
    await expectRefusedEnrollment(unknown, /unknown enrollment token/)
    await expectRefusedEnrollment('not-a-token', /not an enrollment token/)
    // A user's token is not an enrollment token.
    await expectRefusedEnrollment(adminToken, /not an enrollment token/)

    const res = await request('/v1/agents/enroll', {
      method: 'POST',
      body: { hostname: 'h', agent_version: '1' },
    })
    expect(res.status).toBe(401)
    expect((await errorBody(res)).error).toBe('unauthenticated')
    // The token still works: refusals spent none of its uses.
    expect((await enroll(token.token, 'after-refusals')).status).toBe(201)
  })
})

describe('enrollment replay (same token, same instance secret)', () => {
  const secret = () => randomBytes(32).toString('base64url')
  const enrollAs = (token: string, hostname: string, instance?: string, app = h.app) =>
    app.request('/v1/agents/enroll', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hostname, agent_version: '0.1.0', instance }),
    })
  const ingest = (agentId: string, credential: string, seq: number) =>
    postIngest(h.app, gz(makeBatch(agentId, seq)), { credential })
  const usesOf = (tokenId: string) =>
    count(h.store, 'tally.enroll_token_uses', 'token_id = {id:String}', { id: tokenId })

  it('answers a lost 201 again: same agent, new credential, the old one revoked', async () => {
    const token = await makeToken('replay-site', 1)
    const instance = secret()
    const agents = await agentCount()
    const first = await enrollAs(token.token, 'Replay-Host', instance)
    expect(first.status).toBe(201)
    const lost = EnrollResponse.parse(await first.json())
    // The answer never reached the agent; it asks again with the same token and instance.
    const again = await enrollAs(token.token, 'Replay-Host', instance)
    expect(again.status).toBe(201)
    const body = EnrollResponse.parse(await again.json())
    expect(body).toEqual({ ...lost, credential: body.credential })
    expect(body.credential).not.toBe(lost.credential)
    expect(body.host).toBe('replay-host')
    expect(body.site).toBe('replay-site')
    expect(await agentCount()).toBe(agents + 1)
    expect(await usesOf(token.token_id)).toBe(1)

    // At most one valid credential: the lost one is refused, the new one works.
    expect((await ingest(body.agent_id, lost.credential, 1)).status).toBe(401)
    expect((await ingest(body.agent_id, body.credential, 1)).status).toBe(200)
    // Only hashes are kept: neither the instance secret nor a credential is stored.
    const [use] = await selectRows<{ instance_sha256: string }>(
      h.store,
      'SELECT instance_sha256 FROM tally.enroll_token_uses WHERE token_id = {id:String}',
      { id: token.token_id },
    )
    expect(use?.instance_sha256).toBe(
      instanceHash(tokenKeyOf(h.store), token.token_id, body.agent_id, instance),
    )
    expect(use?.instance_sha256).not.toContain(sha256Hex(instance))

    // A third time, with another host name: still the same agent, under its first name.
    const third = EnrollResponse.parse(
      await (await enrollAs(token.token, 'renamed-host', instance)).json(),
    )
    expect(third).toMatchObject({ agent_id: body.agent_id, host: 'replay-host' })
    expect((await ingest(body.agent_id, body.credential, 2)).status).toBe(401)
    expect((await ingest(body.agent_id, third.credential, 2)).status).toBe(200)
  })

  it('refuses a used token with another instance or none, and an expired one even for the same', async () => {
    const token = await makeToken('replay-site', 1)
    const instance = secret()
    expect((await enrollAs(token.token, 'owner', instance)).status).toBe(201)
    for (const other of [secret(), undefined]) {
      const before = await agentCount()
      const res = await enrollAs(token.token, 'thief', other)
      expect(res.status).toBe(401)
      const refusal = await errorBody(res)
      expect(refusal.error).toBe('enrollment_refused')
      expect(refusal.message).toMatch(/already used 1 time/)
      expect(await agentCount()).toBe(before)
    }
    expect(await usesOf(token.token_id)).toBe(1)

    // Used while valid (an hour ago, by a token made two hours ago with a 1.5 h life), then
    // expired: the same instance is refused too.
    const old = await createEnrollToken(
      h.store,
      { site: 'replay-site', ttlHours: 1.5, maxUses: 1, createdBy: 'test' },
      Date.now() - 2 * 3_600_000,
    )
    const oldInstance = secret()
    const used = await enrollDirectly(
      h.store,
      old.token,
      { hostname: 'late', agent_version: '0.1.0', instance: oldInstance },
      {},
      10,
      Date.now() - 3_600_000,
    )
    expect(used.replayed).toBe(false)
    const expired = await enrollAs(old.token, 'late', oldInstance)
    expect(expired.status).toBe(401)
    expect((await errorBody(expired)).message).toMatch(/expired/)
  })

  it('refuses a replay for an agent an admin revoked', async () => {
    const token = await makeToken('replay-site', 1)
    const instance = secret()
    const first = EnrollResponse.parse(await (await enrollAs(token.token, 'gone', instance)).json())
    const revoked = await request(`/v1/admin/agents/${first.agent_id}/revoke`, {
      method: 'POST',
      token: adminToken,
    })
    expect(revoked.status).toBe(200)
    const res = await enrollAs(token.token, 'gone', instance)
    expect(res.status).toBe(401)
    expect((await errorBody(res)).message).toContain(`(${first.agent_id}) was revoked`)
  })

  it('spends no further use of a multi-use token on a replay and makes no second agent', async () => {
    const token = await makeToken('replay-site', 2)
    const [one, two, three] = [secret(), secret(), secret()]
    const agents = await agentCount()
    const a = EnrollResponse.parse(await (await enrollAs(token.token, 'multi-1', one)).json())
    for (let i = 0; i < 3; i++) {
      const replay = EnrollResponse.parse(
        await (await enrollAs(token.token, 'multi-1', one)).json(),
      )
      expect(replay.agent_id).toBe(a.agent_id)
    }
    expect(await usesOf(token.token_id)).toBe(1)
    const b = EnrollResponse.parse(await (await enrollAs(token.token, 'multi-2', two)).json())
    expect(b.agent_id).not.toBe(a.agent_id)
    expect(await usesOf(token.token_id)).toBe(2)
    expect(await agentCount()).toBe(agents + 2)
    const full = await enrollAs(token.token, 'multi-3', three)
    expect(full.status).toBe(401)
    expect((await errorBody(full)).message).toMatch(/already used 2 time/)
    // Both instances still get their own enrollment back once the token is used up.
    const again = EnrollResponse.parse(await (await enrollAs(token.token, 'multi-2', two)).json())
    expect(again.agent_id).toBe(b.agent_id)
    expect(await agentCount()).toBe(agents + 2)
  })

  it('finishes an enrollment the collector died in, after recording the use', async () => {
    const token = await makeToken('replay-site', 1)
    const instance = secret()
    const agentId = 'a-00000000c0ffee00'
    // What the collector had written when it died: the use, not yet the agent.
    await insertRows(h.store, 'tally.enroll_token_uses', [
      {
        token_id: token.token_id,
        agent_id: agentId,
        used_at: Date.now() - 5_000,
        instance_sha256: instanceHash(tokenKeyOf(h.store), token.token_id, agentId, instance),
      },
    ])
    const res = await enrollAs(token.token, 'Half-Done', instance)
    expect(res.status).toBe(201)
    const body = EnrollResponse.parse(await res.json())
    expect(body).toMatchObject({ agent_id: agentId, host: 'half-done', site: 'replay-site' })
    expect((await ingest(agentId, body.credential, 1)).status).toBe(200)
    expect(await usesOf(token.token_id)).toBe(1)
  })

  it('logs a replay as an enrollment, never the instance secret or a credential', async () => {
    const lines: string[] = []
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) })
    const app = createApp({
      store: h.store,
      config: h.config,
      logger,
      signingKey: loadOrCreateSigningKey(join(h.dir, 'grant-signing.pem')),
    })
    const token = await makeToken('replay-site', 1)
    const instance = secret()
    const first = EnrollResponse.parse(
      await (await enrollAs(token.token, 'logged', instance, app)).json(),
    )
    const second = EnrollResponse.parse(
      await (await enrollAs(token.token, 'logged', instance, app)).json(),
    )
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    const enrolled = entries.filter(
      (e) => e.agent_id === first.agent_id && e.replayed !== undefined,
    )
    expect(enrolled.map((e) => [e.msg, e.replayed, e.host, e.site])).toEqual([
      ['agent enrolled', false, 'logged', 'replay-site'],
      [
        'agent enrolled again with the same token and instance: new credential, the previous one revoked',
        true,
        'logged',
        'replay-site',
      ],
    ])
    const text = lines.join('')
    for (const secretText of [instance, first.credential, second.credential, token.token]) {
      expect(text).not.toContain(secretText)
    }
  })

  it('refuses an instance secret that is too short to be one', async () => {
    const token = await makeToken('replay-site', 1)
    const res = await enrollAs(token.token, 'weak', 'abc')
    expect(res.status).toBe(400)
    expect((await errorBody(res)).issues?.map((i) => i.path)).toEqual(['instance'])
    expect(await usesOf(token.token_id)).toBe(0)
  })
})

describe('fleet and roles', () => {
  it('needs a user token (401) holding operator or admin (403)', async () => {
    const none = await request('/v1/fleet')
    expect(none.status).toBe(401)
    expect((await errorBody(none)).error).toBe('unauthenticated')

    const bogus = await request('/v1/fleet', {
      token: `tly_u_u-00000000deadbeef.${randomBytes(32).toString('base64url')}`,
    })
    expect(bogus.status).toBe(401)

    const requester = await userToken(h.store, ['requester', 'auditor'], 'requester')
    const forbidden = await request('/v1/fleet', { token: requester })
    expect(forbidden.status).toBe(403)
    const body = await errorBody(forbidden)
    expect(body.error).toBe('forbidden')
    expect(body.message).toMatch(/operator, admin/)
  })

  it('lists an enrolled agent with what it last sent to an operator', async () => {
    const agent = await enrollAgent(h, 'fleet-site', 'fleet-host')
    const operator = await userToken(h.store, ['operator'], 'operator')

    const before = await request('/v1/fleet?site=fleet-site', { token: operator })
    expect(before.status).toBe(200)
    expect(await before.json()).toEqual({
      agents: [
        expect.objectContaining({
          agent_id: agent.agent_id,
          host: 'fleet-host',
          site: 'fleet-site',
          revoked: false,
          last_seq: null,
          last_seen: null,
          batches: 0,
        }),
      ],
    })

    for (const seq of [1, 2, 7]) {
      const res = await postIngest(h.app, gz(makeBatch(agent.agent_id, seq)), {
        credential: agent.credential,
      })
      expect(res.status).toBe(200)
    }
    const after = await request('/v1/fleet?site=fleet-site', { token: operator })
    expect(after.status).toBe(200)
    const { agents } = (await after.json()) as { agents: Record<string, unknown>[] }
    expect(agents).toHaveLength(1)
    expect(agents[0]).toMatchObject({
      agent_id: agent.agent_id,
      host: 'fleet-host',
      site: 'fleet-site',
      version: '0.1.0-test',
      revoked: false,
      last_seq: 7,
      batches: 3,
    })
    expect(typeof agents[0]?.last_seen).toBe('string')

    // Without a site, every site; an admin may look too.
    const all = await request('/v1/fleet', { token: adminToken })
    expect(all.status).toBe(200)
    const everyone = (await all.json()) as { agents: { agent_id: string }[] }
    expect(everyone.agents.map((a) => a.agent_id)).toContain(agent.agent_id)
    expect(everyone.agents).toHaveLength(await agentCount())

    const unknownParam = await request('/v1/fleet?host=fleet-host', { token: operator })
    expect(unknownParam.status).toBe(400)
    expect((await errorBody(unknownParam)).error).toBe('invalid_query')
  })
})

describe('admin routes', () => {
  const adminCalls: { method: string; path: string; body?: unknown }[] = [
    { method: 'POST', path: '/v1/admin/enroll-tokens', body: { site: 'site-y' } },
    { method: 'POST', path: '/v1/admin/users', body: { name: 'eve', roles: ['admin'] } },
    { method: 'GET', path: '/v1/admin/users' },
    { method: 'POST', path: '/v1/admin/users/u-0000000000000000/revoke' },
    { method: 'POST', path: '/v1/admin/agents/a-0000000000000000/revoke' },
  ]

  it('refuse non-admins with 403 and no token with 401, writing nothing', async () => {
    const operator = await userToken(h.store, ['operator', 'approver'], 'not an admin')
    const users = await count(h.store, 'tally.users')
    const tokens = await count(h.store, 'tally.enroll_tokens')
    for (const call of adminCalls) {
      const forbidden = await request(call.path, { ...call, token: operator })
      expect(forbidden.status, `${call.method} ${call.path}`).toBe(403)
      expect((await errorBody(forbidden)).error).toBe('forbidden')
      const anonymous = await request(call.path, { ...call })
      expect(anonymous.status, `${call.method} ${call.path}`).toBe(401)
      expect((await errorBody(anonymous)).error).toBe('unauthenticated')
    }
    expect(await count(h.store, 'tally.users')).toBe(users)
    expect(await count(h.store, 'tally.enroll_tokens')).toBe(tokens)
  })

  it('validate bodies, naming the field', async () => {
    const users = await count(h.store, 'tally.users')
    const tokens = await count(h.store, 'tally.enroll_tokens')
    const cases: { path: string; body?: unknown; rawBody?: string; issue?: string }[] = [
      { path: '/v1/admin/users', body: { name: 'x' }, issue: 'roles' },
      { path: '/v1/admin/users', body: { name: 'x', roles: ['superuser'] }, issue: 'roles.0' },
      { path: '/v1/admin/users', body: { name: 'x', roles: [] }, issue: 'roles' },
      { path: '/v1/admin/users', body: { name: '', roles: ['operator'] }, issue: 'name' },
      {
        path: '/v1/admin/users',
        body: { name: 'x', roles: ['operator'], token: 'chosen' },
        issue: '(top level)',
      },
      { path: '/v1/admin/enroll-tokens', body: { site: 'Bad Site' }, issue: 'site' },
      { path: '/v1/admin/enroll-tokens', body: { site: 's', max_uses: 0 }, issue: 'max_uses' },
      { path: '/v1/admin/enroll-tokens', body: { site: 's', ttl_hours: -1 }, issue: 'ttl_hours' },
      { path: '/v1/admin/enroll-tokens', body: {}, issue: 'site' },
    ]
    for (const c of cases) {
      const res = await request(c.path, { method: 'POST', token: adminToken, body: c.body })
      expect(res.status, JSON.stringify(c.body)).toBe(400)
      const body = await errorBody(res)
      expect(body.error).toBe('invalid_request')
      expect(body.issues?.map((i) => i.path)).toEqual([c.issue])
    }
    const malformed = await request('/v1/admin/users', {
      method: 'POST',
      token: adminToken,
      rawBody: '{"name":',
    })
    expect(malformed.status).toBe(400)
    expect((await errorBody(malformed)).error).toBe('malformed_json')
    expect(await count(h.store, 'tally.users')).toBe(users)
    expect(await count(h.store, 'tally.enroll_tokens')).toBe(tokens)
  })

  it('create users whose token is stored only as a hash, and revoke them', async () => {
    const res = await request('/v1/admin/users', {
      method: 'POST',
      token: adminToken,
      body: { name: 'Olga Operator', roles: ['operator', 'operator'] },
    })
    expect(res.status).toBe(201)
    const proposed = (await res.json()) as {
      proposal_id: string
      user_id: string
      name: string
      roles: string[]
      state: string
      token_part: string
    }
    expect(proposed.roles).toEqual(['operator'])
    expect(proposed.state).toBe('proposed')
    // The second admin confirms and gets the token's second part; the person joins the two.
    const confirm = await request(`/v1/admin/proposals/${proposed.proposal_id}/confirm`, {
      method: 'POST',
      token: secondAdminToken,
    })
    expect(confirm.status).toBe(200)
    const confirmed = (await confirm.json()) as { token_part: string; state: string }
    expect(confirmed.state).toBe('confirmed')
    const created = { ...proposed, token: `${proposed.token_part}${confirmed.token_part}` }
    expect(created.token).toMatch(new RegExp(`^tly_u_${created.user_id}\\.[A-Za-z0-9_-]{86}$`))
    const secretPart = created.token.split('.')[1] ?? ''
    expect(secretPart).toHaveLength(86)

    // Nothing in the table holds the token or its random part.
    const dump = await (
      await h.store.query({ query: 'SELECT * FROM tally.users', format: 'TabSeparated' })
    ).text()
    expect(dump).toContain(created.user_id)
    expect(dump).not.toContain(created.token)
    expect(dump).not.toContain(secretPart)
    expect(dump).not.toContain(secretPart.slice(0, 43))
    expect(dump).not.toContain(secretPart.slice(43))
    const [row] = await selectRows<{ token_sha256: string }>(
      h.store,
      'SELECT token_sha256 FROM tally.users FINAL WHERE user_id = {id:String}',
      { id: created.user_id },
    )
    expect(row?.token_sha256).toBe(
      `${firstPartHash(h.store, created.user_id, proposed.token_part)}:${secondPartHash(h.store, created.user_id, confirmed.token_part)}`,
    )

    // The listing shows neither the token nor its hash.
    const list = await request('/v1/admin/users', { token: adminToken })
    expect(list.status).toBe(200)
    const listed = await list.text()
    expect(listed).not.toContain(secretPart)
    expect(listed).not.toContain(firstPartHash(h.store, created.user_id, proposed.token_part))
    expect(listed).not.toContain(sha256Hex(proposed.token_part))
    expect(JSON.parse(listed).users).toContainEqual(
      expect.objectContaining({
        user_id: created.user_id,
        name: 'Olga Operator',
        roles: ['operator'],
        revoked: false,
      }),
    )

    // The token works, until the user is revoked.
    expect((await request('/v1/fleet', { token: created.token })).status).toBe(200)
    const revoke = await request(`/v1/admin/users/${created.user_id}/revoke`, {
      method: 'POST',
      token: adminToken,
    })
    expect(revoke.status).toBe(200)
    expect(await revoke.json()).toEqual({ user_id: created.user_id, revoked: true })
    const refused = await request('/v1/fleet', { token: created.token })
    expect(refused.status).toBe(401)
    expect((await errorBody(refused)).message).toMatch(/revoked/)
    // Revoking again is fine; the user is listed as revoked.
    const again = await request(`/v1/admin/users/${created.user_id}/revoke`, {
      method: 'POST',
      token: adminToken,
    })
    expect(again.status).toBe(200)
    expect((await request('/v1/fleet', { token: created.token })).status).toBe(401)
    const after = (await (await request('/v1/admin/users', { token: adminToken })).json()) as {
      users: { user_id: string; revoked: boolean; roles: string[] }[]
    }
    expect(after.users.find((u) => u.user_id === created.user_id)).toMatchObject({
      revoked: true,
      roles: ['operator'],
    })
  })

  it('answer 404 for revoking who does not exist', async () => {
    for (const path of [
      '/v1/admin/users/u-0000000000000000/revoke',
      '/v1/admin/agents/a-0000000000000000/revoke',
    ]) {
      const res = await request(path, { method: 'POST', token: adminToken })
      expect(res.status).toBe(404)
      const body = await errorBody(res)
      expect(body.error).toBe('not_found')
      expect(body.message).toContain('0000000000000000')
    }
  })

  it('answer each refusal as exactly { error, message }, nothing more', async () => {
    const operator = await userToken(h.store, ['operator'], 'refusal shapes')
    const cases: [Response | Promise<Response>, number, { error: string; message: string }][] = [
      [
        request('/v1/admin/agents/a-0000000000000000/revoke', {
          method: 'POST',
          token: adminToken,
        }),
        404,
        { error: 'not_found', message: 'no agent a-0000000000000000' },
      ],
      [
        request('/v1/admin/users', { token: operator }),
        403,
        { error: 'forbidden', message: 'this needs one of the roles: admin, oios_chief' },
      ],
      [
        request('/v1/admin/users'),
        401,
        {
          error: 'unauthenticated',
          message: 'a user token is required (Authorization: Bearer ...)',
        },
      ],
      [
        request('/v1/admin/users', {
          method: 'POST',
          token: adminToken,
          body: { name: 'x', roles: ['oios_investigator'] },
        }),
        403,
        {
          error: 'forbidden',
          message: 'the role oios_investigator is granted by OIOS (an OIOS chief) only',
        },
      ],
      [
        request('/v1/admin/proposals/p-0000000000000000/confirm', {
          method: 'POST',
          token: adminToken,
        }),
        404,
        { error: 'not_found', message: 'no proposal p-0000000000000000' },
      ],
      [
        enroll('tly_e_e-0000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'h'),
        401,
        { error: 'enrollment_refused', message: 'unknown enrollment token' },
      ],
    ]
    for (const [pending, status, body] of cases) {
      const res = await pending
      expect(res.status, body.message).toBe(status)
      expect(await res.text()).toBe(JSON.stringify(body))
    }
  })

  it('make enrollment tokens that an agent can use for that site', async () => {
    const res = await request('/v1/admin/enroll-tokens', {
      method: 'POST',
      token: adminToken,
      body: { site: 'geneva', ttl_hours: 2, max_uses: 3 },
    })
    expect(res.status).toBe(201)
    const issued = (await res.json()) as IssuedEnrollToken
    expect(issued.max_uses).toBe(3)
    const ttl = Date.parse(issued.expires_at) - Date.now()
    expect(ttl).toBeGreaterThan(1.9 * 3_600_000)
    expect(ttl).toBeLessThanOrEqual(2 * 3_600_000)
    const [stored] = await selectRows<{ secret_sha256: string; created_by: string }>(
      h.store,
      'SELECT secret_sha256, created_by FROM tally.enroll_tokens FINAL WHERE token_id = {id:String}',
      { id: issued.token_id },
    )
    expect(stored?.secret_sha256).toBe(
      tokenKeyOf(h.store).hash('enroll-token', issued.token_id, issued.token),
    )
    for (const host of ['g1', 'g2', 'g3']) {
      const enrolled = await enroll(issued.token, host)
      expect(enrolled.status).toBe(201)
      expect(EnrollResponse.parse(await enrolled.json()).site).toBe('geneva')
    }
    await expectRefusedEnrollment(issued.token, /already used 3 time/)
  })
})

describe('probes and unknown routes', () => {
  it('/healthz and /readyz answer 200', async () => {
    const health = await request('/healthz')
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: 'ok' })
    const ready = await request('/readyz')
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready' })
  })

  it('an unknown route is a JSON 404', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/v1/ingest'],
      ['DELETE', '/v1/fleet'],
    ] as const) {
      const res = await request(path, { method })
      expect(res.status, `${method} ${path}`).toBe(404)
      const body = await errorBody(res)
      expect(body.error).toBe('not_found')
      expect(body.message).toBe(`no route ${method} ${path}`)
    }
  })
})
