/**
 * The auth repositories on the real embedded engine: rows come back as the domain's numbers,
 * and a row the schema does not allow (a role no release knows, written straight into the
 * store) is refused at the read, naming the column, instead of travelling on as a role.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentsRepository } from '../../collector/auth/agents-repository.ts'
import { ProposalsRepository } from '../../collector/auth/proposals-repository.ts'
import { UsersRepository } from '../../collector/auth/users-repository.ts'
import { insertRows } from '../../collector/store/rows.ts'
import { type Harness, openHarness } from './harness.ts'

let h: Harness

beforeAll(async () => {
  h = await openHarness()
})

afterAll(async () => {
  await h?.close()
})

describe('auth repositories', () => {
  it('read users back with numbers for the 64-bit and time columns, and update by version', async () => {
    const users = new UsersRepository(h.store)
    const t = 1_760_000_000_123
    await users.write({
      user_id: 'u-00000000000000a1',
      name: 'repository reader',
      roles: ['operator'],
      side: 'itsd',
      token_sha256: 'hmac.x',
      created_by: 'test',
      created_at: t,
      revoked_at: null,
      provisional: 0,
      version: t,
    })
    const row = await users.find('u-00000000000000a1')
    expect(row).toMatchObject({ created_at: t, version: t, revoked: 0, revoked_at: null })
    // A version behind the clock still wins: max(now, version + 1).
    await users.update(row as NonNullable<typeof row>, { roles: ['operator', 'auditor'] }, t - 5)
    expect(await users.activeRoles('u-00000000000000a1')).toEqual(['operator', 'auditor'])
    expect((await users.find('u-00000000000000a1'))?.version).toBe(t + 1)
  })

  it('refuse a stored role no release knows, naming the column', async () => {
    await insertRows(h.store, 'tally.users', [
      {
        user_id: 'u-00000000000000b2',
        name: 'planted',
        roles: ['superuser'],
        side: 'itsd',
        token_sha256: '',
        created_by: 'holder',
        created_at: Date.now(),
        revoked_at: null,
        provisional: 0,
        version: Date.now(),
      },
    ])
    await expect(new UsersRepository(h.store).find('u-00000000000000b2')).rejects.toThrow(/roles/)
  })

  it('read agents and proposals back checked', async () => {
    const agents = new AgentsRepository(h.store)
    const t = 1_760_000_000_456
    await agents.write({
      agent_id: 'a-00000000000000c3',
      host: 'web-01',
      site: 'geneva',
      credential_sha256: 'hmac.y',
      enroll_token_id: 'e-00000000000000c3',
      enrolled_at: t,
      revoked_at: null,
      version: t,
    })
    const row = await agents.find('a-00000000000000c3')
    expect(row).toMatchObject({ enrolled_at: t, revoked: 0, revoked_at: null })
    await agents.update(row as NonNullable<typeof row>, { revoked_at: t + 10 }, t + 10)
    expect(await agents.find('a-00000000000000c3')).toMatchObject({
      revoked: 1,
      revoked_at: t + 10,
    })

    const proposals = new ProposalsRepository(h.store)
    await proposals.add(
      {
        proposal_id: 'p-00000000000000d4',
        side: 'oios',
        user_id: 'u-00000000000000d4',
        roles: ['oios_investigator'],
        new_user: true,
        proposed_by: 'u-00000000000000e5',
      },
      t,
    )
    const open = await proposals.find('oios', 'p-00000000000000d4')
    expect(open).toMatchObject({
      state: 'proposed',
      new_user: true,
      proposed_at: new Date(t).toISOString(),
    })
    // Another side's proposal does not exist for ITSD.
    expect(await proposals.find('itsd', 'p-00000000000000d4')).toBeUndefined()
    await proposals.decide(open as NonNullable<typeof open>, 'rejected', 'u-00000000000000f6', t)
    expect(await proposals.list('oios', 'rejected')).toMatchObject([
      { proposal_id: 'p-00000000000000d4', decided_by: 'u-00000000000000f6' },
    ])
    expect(await proposals.countNaming('oios', 'oios_investigator')).toBe(1)
  })
})
