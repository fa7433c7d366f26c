/**
 * One lock per case: a step waiting on its register entry holds its own case, not every case.
 * CaseService on the real embedded engine; the register is a writer that records entries and
 * can hold one case's entry back (the register itself is tested in register.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadOrCreateSigningKey } from '../../../collector/auth/signing-key.ts'
import type { User } from '../../../collector/auth/users.ts'
import { GrantIssuer } from '../../../collector/cases/grants.ts'
import { Outbox } from '../../../collector/cases/outbox.ts'
import { CaseService, type RegisterWriter } from '../../../collector/cases/workflow.ts'
import { openStore, type Store } from '../../../collector/store/client.ts'
import { migrate } from '../../../collector/store/migrations.ts'
import { ROLES } from '../../../protocol/api/names.ts'
import { caseRequest } from '../cases-harness.ts'

type Entry = Parameters<RegisterWriter['append']>[0]

/** Records entries; while `holding` names a case, that case's entries wait for `release`. */
class HoldingRegister implements RegisterWriter {
  readonly entries: Entry[] = []
  holding: string | undefined
  #release: () => void = () => undefined
  #held = Promise.resolve()

  hold(caseId: string): void {
    this.holding = caseId
    this.#held = new Promise((resolve) => {
      this.#release = resolve
    })
  }

  release(): void {
    this.holding = undefined
    this.#release()
  }

  async append(entry: Entry): Promise<void> {
    if (entry.case_id !== undefined && entry.case_id === this.holding) await this.#held
    this.entries.push(entry)
  }
}

let dir: string
let store: Store
const register = new HoldingRegister()
let cases: CaseService
const requester: User = { user_id: 'u-requester000000a', name: 'Requester', roles: ['requester'] }
const approver: User = { user_id: 'u-approver0000000a', name: 'Approver', roles: ['approver'] }

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tally-case-locks-'))
  store = openStore({ dataDir: dir })
  await migrate(store)
  const log = pino({ level: 'silent' })
  cases = new CaseService({
    store,
    register,
    records: { caseOnRecord: async () => undefined },
    grants: new GrantIssuer(store, loadOrCreateSigningKey(join(dir, 'grant-signing.pem'))),
    outbox: new Outbox(store, {}, log),
    policy: { max_grant_days: 30, technical_max_hours: 72, emergency_written_hours: 24 },
    log,
    rolesOf: async () => [...ROLES],
  })
})

afterAll(async () => {
  register.release()
  await store?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('case locks', () => {
  it('a step held on one case leaves another case free, and the held case waits its turn', async () => {
    const request = caseRequest('u-official00000000a', ['a-0000000000000001'])
    const first = await cases.file(requester, request)
    const second = await cases.file(requester, request)

    register.hold(first.case_id)
    const heldDenial = cases.deny(approver, first.case_id, { reason: 'held' })
    let sameCaseRead = false
    const sameCase = cases.get(approver, first.case_id).then((doc) => {
      sameCaseRead = true
      return doc
    })

    // With one lock for all cases this would wait for the held denial, which never comes.
    const other = await cases.deny(approver, second.case_id, { reason: 'free' })
    expect(other.state).toBe('denied')
    expect(sameCaseRead).toBe(false)

    register.release()
    expect((await heldDenial).state).toBe('denied')
    expect((await sameCase).state).toBe('denied')
  }, 20_000)
})
