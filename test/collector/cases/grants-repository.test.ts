/**
 * tally.grants through its one repository on the real embedded engine: what is written reads
 * back as written, a revocation is a newer version that FINAL reads, and each query selects
 * exactly the grants its name says.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GrantsRepository, type NewGrant } from '../../../collector/cases/grants-repository.ts'
import { openStore, type Store } from '../../../collector/store/client.ts'
import { migrate } from '../../../collector/store/migrations.ts'

let dir: string
let store: Store
let grants: GrantsRepository

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tally-grants-repo-'))
  store = openStore({ dataDir: dir })
  await migrate(store)
  grants = new GrantsRepository(store)
})

afterAll(async () => {
  await store?.close()
  await rm(dir, { recursive: true, force: true })
})

const issued = 1_800_000_000_000
const grant = (id: string, over: Partial<NewGrant> = {}): NewGrant => ({
  grant_id: id,
  case_id: 'c-aaaaaaaaaaaaaaaa',
  audience: 'tally-agent',
  subject: 'agent-1',
  token: `token-${id}`,
  window_start: issued,
  window_end: issued + 3_600_000,
  issued_at: issued,
  ...over,
})

describe('GrantsRepository', () => {
  it('reads a grant back as written, unrevoked, versioned at its issue', async () => {
    await grants.insert([grant('g-read')])
    expect(await grants.find('g-read')).toEqual({
      ...grant('g-read'),
      revoked: false,
      version: issued,
    })
    expect(await grants.find('g-never')).toBeUndefined()
  })

  it('revokes by a newer version: find still answers, now revoked; unrevoked lists drop it', async () => {
    const caseId = 'c-bbbbbbbbbbbbbbbb'
    await grants.insert([grant('g-r1', { case_id: caseId }), grant('g-r2', { case_id: caseId })])
    const live = await grants.unrevokedOfCase(caseId)
    expect(live.map((g) => g.grant_id).sort()).toEqual(['g-r1', 'g-r2'])
    await grants.revoke(live, issued + 10)
    expect(await grants.unrevokedOfCase(caseId)).toEqual([])
    expect(await grants.find('g-r1')).toMatchObject({ revoked: true, version: issued + 10 })
  })

  it('selects current grants by audience, subject and window, and the latest of a case', async () => {
    const caseId = 'c-cccccccccccccccc'
    await grants.insert([
      grant('g-c-old', { case_id: caseId, subject: 'agent-9', window_end: issued + 1_000 }),
      grant('g-c-new', { case_id: caseId, subject: 'agent-9', window_end: issued + 9_000 }),
      grant('g-c-person', { case_id: caseId, audience: 'tally-drilldown', subject: 'agent-9' }),
    ])
    const current = await grants.currentFor('tally-agent', 'agent-9', issued + 5_000)
    expect(current.map((g) => g.grant_id)).toEqual(['g-c-new'])
    const latest = await grants.latestOfCaseFor(caseId, 'tally-agent', 'agent-9')
    expect(latest?.grant_id).toBe('g-c-new')
    expect(await grants.latestOfCaseFor(caseId, 'tally-agent', 'agent-0')).toBeUndefined()
  })
})
