/**
 * Attack 1 of issue 9, replayed: one ITSD admin, alone, tries to run a case from request to an
 * active grant and a drill-down. They hold the founder's admin.token and even the data directory
 * (they can stop the collector, write the store, delete files, start it again). A second admin
 * exists, as on every site past its first hour; the insider does not hold that admin's token.
 *
 * Every way of making the people a case needs is tried, and each stops where a second person is
 * required. Then the OIOS variant: ITSD cannot make an OIOS chief or investigator at all. Last,
 * every user, role, token and enrollment step is on the ITSD register (OIOS's on OIOS's only),
 * and the register's own verification passes over them.
 *
 * Runs real collectors (startCollector) on the embedded engine, one after the other on one data
 * directory, as the insider would restart theirs.
 */
import { readFileSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bindTokenKey, loadOrCreateTokenKey, TOKEN_KEY_FILE } from '../../collector/auth/tokens.ts'
import { createUser } from '../../collector/auth/users.ts'
import { CollectorConfig } from '../../collector/config.ts'
import { type RunningCollector, startCollector } from '../../collector/server.ts'
import { openStore } from '../../collector/store/client.ts'

const silent = pino({ level: 'silent' })

let dir: string
let oiosDir: string
let running: RunningCollector | undefined

interface Answer {
  status: number
  body: Record<string, unknown>
}

async function call(
  method: 'GET' | 'POST',
  path: string,
  token: string,
  body?: unknown,
): Promise<Answer> {
  if (running === undefined) throw new Error('no collector running')
  const headers: Record<string, string> = { authorization: `Bearer ${token}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${running.url}${path}`, {
    method,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
  })
  const text = await res.text()
  return {
    status: res.status,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  }
}

const config = () =>
  CollectorConfig.parse({
    data_dir: dir,
    log_level: 'silent',
    listen: { port: 0 },
    oios: { bootstrap_token_file: join(oiosDir, 'oios-bootstrap.token') },
    cases: { outbox: { webhook_url: 'http://127.0.0.1:9/notices' } },
  })

async function start(): Promise<void> {
  running = await startCollector(config(), silent)
}
async function stop(): Promise<void> {
  await running?.close()
  running = undefined
}

const founderToken = () => readFileSync(join(dir, 'admin.token'), 'utf8').trim()

/** The second admin: made by the founder once, its provisional token replaced by its holder. */
let secondAdmin: { user_id: string; token: string }
let founderId: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tally-insider-'))
  oiosDir = await mkdtemp(join(tmpdir(), 'tally-insider-oios-'))
  await start()
  const listed = await call('GET', '/v1/admin/users', founderToken())
  founderId = String((listed.body.users as { user_id: string }[])[0]?.user_id)
  const made = await call('POST', '/v1/admin/users', founderToken(), {
    name: 'Second Admin',
    roles: ['admin'],
  })
  expect(made.status, JSON.stringify(made.body)).toBe(201)
  expect(made.body.state).toBe('active')
  const replaced = await call('POST', '/v1/users/me/token', String(made.body.token))
  expect(replaced.status).toBe(201)
  secondAdmin = { user_id: String(made.body.user_id), token: String(replaced.body.token) }
}, 60_000)

afterAll(async () => {
  await stop()
  await rm(dir, { recursive: true, force: true })
  await rm(oiosDir, { recursive: true, force: true })
})

describe('one ITSD admin alone cannot make the people of a case', () => {
  it('a proposed requester, approver and investigator hold no role and no working token', async () => {
    const parts: Record<string, Answer> = {}
    for (const role of ['requester', 'approver', 'itsd_investigator', 'receiving_official']) {
      parts[role] = await call('POST', '/v1/admin/users', founderToken(), {
        name: `mine ${role}`,
        roles: [role],
      })
      expect(parts[role].status).toBe(201)
      expect(parts[role].body.state).toBe('proposed')
      // The insider holds only the first part: it is no token.
      const first = String(parts[role].body.token_part)
      expect((await call('GET', '/v1/cases', first)).status).toBe(401)
    }
    // Step where a second person is required: the proposer confirming their own proposal.
    for (const answer of Object.values(parts)) {
      const own = await call(
        'POST',
        `/v1/admin/proposals/${answer.body.proposal_id}/confirm`,
        founderToken(),
      )
      expect(own.status).toBe(403)
      expect(own.body.error).toBe('second_person_required')
    }
    // So no case can even be filed: the requester's first part is refused.
    const request = await call('POST', '/v1/cases', String(parts.requester?.body.token_part), {})
    expect(request.status).toBe(401)
  })

  it('a third admin made alone is only a proposal (the founder made its one extra already)', async () => {
    const third = await call('POST', '/v1/admin/users', founderToken(), {
      name: 'my other me',
      roles: ['admin'],
    })
    expect(third.status).toBe(201)
    expect(third.body.state).toBe('proposed')
    expect(third.body.token).toBeUndefined()
    const own = await call(
      'POST',
      `/v1/admin/proposals/${third.body.proposal_id}/confirm`,
      founderToken(),
    )
    expect(own.body.error).toBe('second_person_required')
  })

  it('roles for oneself, or an admin who also holds a case role, are refused', async () => {
    const self = await call('POST', `/v1/admin/users/${founderId}/roles`, founderToken(), {
      roles: ['approver'],
    })
    expect(self.status).toBe(403)
    const both = await call('POST', '/v1/admin/users', founderToken(), {
      name: 'requester and approver',
      roles: ['requester', 'approver'],
    })
    expect(both.status).toBe(422)
    expect(both.body.error).toBe('conflicting_roles')
    // Even confirmed by the second admin, a conflict is refused at confirmation.
    const requester = await call('POST', '/v1/admin/users', founderToken(), {
      name: 'r',
      roles: ['requester'],
    })
    await call(
      'POST',
      `/v1/admin/proposals/${requester.body.proposal_id}/confirm`,
      secondAdmin.token,
    )
    const more = await call(
      'POST',
      `/v1/admin/users/${requester.body.user_id}/roles`,
      founderToken(),
      {
        roles: ['approver'],
      },
    )
    expect(more.status).toBe(422)
  })

  it('the second admin confirming gives the person a token neither admin holds', async () => {
    const proposed = await call('POST', '/v1/admin/users', founderToken(), {
      name: 'Rita Requester',
      roles: ['requester'],
    })
    const confirmed = await call(
      'POST',
      `/v1/admin/proposals/${proposed.body.proposal_id}/confirm`,
      secondAdmin.token,
    )
    expect(confirmed.status).toBe(200)
    const first = String(proposed.body.token_part)
    const second = String(confirmed.body.token_part)
    // Either part alone is nothing; only the person, given both, holds the token.
    expect((await call('GET', '/v1/cases', first)).status).toBe(401)
    expect((await call('GET', '/v1/cases', second)).status).toBe(401)
    expect((await call('GET', '/v1/cases', `${first}${second}`)).status).toBe(200)
  })

  it('deleting admin.token and restarting gives the same founder a new token, never a second admin', async () => {
    const before = founderToken()
    await stop()
    rmSync(join(dir, 'admin.token'))
    await start()
    const after = founderToken()
    expect(after).not.toBe(before)
    expect((await call('GET', '/v1/admin/users', before)).status).toBe(401)
    const me = await call('POST', '/v1/admin/users', after, { name: 'x', roles: ['operator'] })
    // The same identity: its own proposals still need the second admin.
    const own = await call('POST', `/v1/admin/proposals/${me.body.proposal_id}/confirm`, after)
    expect(own.body.error).toBe('second_person_required')
    const users = (await call('GET', '/v1/admin/users', after)).body.users as {
      roles: string[]
      revoked: boolean
    }[]
    expect(users.filter((u) => u.roles.includes('admin') && !u.revoked)).toHaveLength(2)
  }, 60_000)

  it('roles written straight into the store are gone at the next start, and the register says so', async () => {
    await stop()
    // The insider, with the collector stopped, writes a user with every role they need.
    const store = openStore({ dataDir: dir })
    // The token key is in the data directory here (the default), so they hold it too.
    bindTokenKey(store, loadOrCreateTokenKey(join(dir, TOKEN_KEY_FILE)))
    const forged = await createUser(store, 'forged', ['requester'], 'me')
    const forgedApprover = await createUser(store, 'forged 2', ['approver'], 'me')
    const forgedInvestigator = await createUser(store, 'forged 3', ['itsd_investigator'], 'me')
    await store.close()
    await start()
    for (const token of [forged.token, forgedApprover.token, forgedInvestigator.token]) {
      // Authenticated, but with no role left: every case route refuses it.
      const answer = await call('POST', '/v1/cases', token, {})
      expect(answer.status).toBe(403)
    }
    const entries = await itsdEntries()
    const removed = entries.filter((e) => e.kind === 'roles without a register entry removed')
    expect(removed.map((e) => (e.details as { user_id: string }).user_id).sort()).toEqual(
      [forged.user.user_id, forgedApprover.user.user_id, forgedInvestigator.user.user_id].sort(),
    )
  }, 60_000)
})

describe('ITSD cannot make OIOS people (OIOS variant)', () => {
  it('an ITSD admin cannot propose an OIOS chief, investigator or designee, nor confirm one', async () => {
    for (const role of ['oios_chief', 'oios_investigator', 'oios_designee']) {
      const answer = await call('POST', '/v1/admin/users', founderToken(), {
        name: `mine ${role}`,
        roles: [role],
      })
      expect(answer.status, role).toBe(403)
    }
    const proposals = await call('GET', '/v1/admin/proposals', secondAdmin.token)
    expect(
      (proposals.body.proposals as { roles: string[] }[]).some((p) =>
        p.roles.some((r) => r.startsWith('oios')),
      ),
    ).toBe(false)
  })

  it("OIOS's bootstrap token is outside the data directory; a copy the ITSD starter kept stops working", async () => {
    const bootstrapFile = join(oiosDir, 'oios-bootstrap.token')
    const bootstrap = readFileSync(bootstrapFile, 'utf8').trim()
    // Provisional: it does nothing but be replaced, so an ITSD copy cannot act without OIOS
    // finding its own token dead.
    expect((await call('GET', '/v1/admin/users', bootstrap)).status).toBe(403)
    const claimed = await call('POST', '/v1/users/me/token', bootstrap)
    expect(claimed.status).toBe(201)
    expect((await call('POST', '/v1/users/me/token', bootstrap)).status).toBe(401)
    const chief = String(claimed.body.token)
    // OIOS's own administration goes to the OIOS register, not ITSD's.
    const itsdBefore = (await itsdEntries()).length
    const deputy = await call('POST', '/v1/admin/users', chief, {
      name: 'OIOS deputy',
      roles: ['oios_chief'],
    })
    expect(deputy.status).toBe(201)
    expect((await itsdEntries()).length).toBe(itsdBefore)
    // And ITSD does not see OIOS's users.
    const users = (await call('GET', '/v1/admin/users', founderToken())).body.users as {
      user_id: string
    }[]
    expect(users.map((u) => u.user_id)).not.toContain(String(deputy.body.user_id))
  })
})

describe('the ITSD register holds every administration step', () => {
  it('users, proposals, confirmations, revocations, tokens, enrollments and guard settings, verified', async () => {
    const admin = founderToken()
    const proposed = await call('POST', '/v1/admin/users', admin, {
      name: 'Olga Operator',
      roles: ['operator'],
    })
    await call(
      'POST',
      `/v1/admin/proposals/${proposed.body.proposal_id}/confirm`,
      secondAdmin.token,
    )
    const userId = String(proposed.body.user_id)
    await call('POST', `/v1/admin/users/${userId}/roles/operator/revoke`, admin)
    await call('POST', `/v1/admin/users/${userId}/revoke`, admin)
    const token = await call('POST', '/v1/admin/enroll-tokens', admin, { site: 'geneva-pm' })
    expect(token.status).toBe(201)
    const enrolled = await fetch(`${running?.url}/v1/agents/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token.body.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hostname: 'pc-1', agent_version: '0.1.0' }),
    })
    const agent = (await enrolled.json()) as { agent_id: string }
    await call('POST', `/v1/admin/agents/${agent.agent_id}/revoke`, admin)

    const entries = await itsdEntries()
    const kinds = (kind: string, id?: string) =>
      entries.filter(
        (e) =>
          e.kind === kind &&
          (id === undefined || Object.values(e.details as Record<string, unknown>).includes(id)),
      )
    expect(kinds('user proposed', userId)).toHaveLength(1)
    expect(kinds('roles confirmed', userId)).toHaveLength(1)
    expect(kinds('roles confirmed', userId)[0]?.actor).toBe(secondAdmin.user_id)
    expect(kinds('role revoked', userId)).toHaveLength(1)
    expect(kinds('user revoked', userId)).toHaveLength(1)
    expect(kinds('enrollment token created', String(token.body.token_id))).toHaveLength(1)
    expect(kinds('agent enrolled', agent.agent_id)).toHaveLength(1)
    expect(kinds('agent revoked', agent.agent_id)).toHaveLength(1)
    expect(kinds('founder token reissued', founderId)).toHaveLength(1)
    expect(kinds('user created', secondAdmin.user_id)).toHaveLength(1)
    expect(kinds('user token replaced', secondAdmin.user_id)).toHaveLength(1)
    expect(
      kinds('guard setting changed').map((e) => (e.details as { setting: string }).setting),
    ).toContain('usage.k')
    // Nothing of OIOS's administration on ITSD's register.
    expect(entries.some((e) => JSON.stringify(e.details).includes('oios_chief'))).toBe(false)

    const verified = await call('GET', '/v1/register/itsd/verify', secondAdmin.token)
    expect(verified.status).toBe(200)
    expect(verified.body.ok, JSON.stringify(verified.body)).toBe(true)
  })

  it('a guard setting changed between two starts is an entry with the old and the new value', async () => {
    await stop()
    running = await startCollector(
      CollectorConfig.parse({ ...config(), usage: { ...config().usage, k: 2 } }),
      silent,
    )
    const changes = (await itsdEntries()).filter(
      (e) =>
        e.kind === 'guard setting changed' &&
        (e.details as { setting: string }).setting === 'usage.k',
    )
    expect(changes.at(-1)?.details).toMatchObject({ setting: 'usage.k', old: 5, new: 2 })
    await stop()
    await start()
  }, 60_000)
})

async function itsdEntries(): Promise<{ kind: string; actor: string; details: unknown }[]> {
  // Read while the collector runs: the embedded engine is this process's, so a reader goes
  // through the collector's own store by starting no second one; the register route serves it.
  const answer = await call('GET', '/v1/register/itsd/entries?limit=10000', secondAdmin.token)
  expect(answer.status, JSON.stringify(answer.body)).toBe(200)
  return answer.body.entries as { kind: string; actor: string; details: unknown }[]
}
