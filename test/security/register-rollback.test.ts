/**
 * Attack 5: the register rolled back by someone holding the collector's data directory.
 *
 * On the real embedded engine, with the collector built in-process and "restarted" (a new
 * collector on the same store and keys, so nothing of the old one's memory survives), the
 * insider edits the store as they could with direct SQL:
 * - cuts the tail of ITSD's register (entries and their checkpoints), restarts, appends;
 * - rewrites the whole register and re-signs every checkpoint with the register key taken from
 *   the data directory.
 * An auditor who verified once (and kept the head) and an agent that kept the head from its
 * grants poll both detect each attack; the same check without a kept head does not, which is
 * what makes the kept head the mechanism under test.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GrantManager } from '../../agent/grants/manager.ts'
import { RegisterHeadWatch } from '../../agent/register-head.ts'
import { createCollector } from '../../collector/app.ts'
import { type GrantSigningKey, loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import {
  type AuditResult,
  auditRegister,
  type KeptHead,
  type RegisterApi,
  readKeptHead,
  writeKeptHead,
} from '../../collector/register/audit.ts'
import {
  canonicalJson,
  entryHash,
  GENESIS_HASH,
  leafHash,
  MerkleTree,
  REGISTER_KEY_FILE,
  type Register,
  type RegisterEntry,
  RegisterIntegrityError,
  signCheckpointBytes,
} from '../../collector/register/register.ts'
import { insertRows, selectRows } from '../../collector/store/rows.ts'
import { enrollAgent, type Harness, openHarness, userToken } from '../collector/harness.ts'

let h: Harness
let grantKey: GrantSigningKey
let registerKey: GrantSigningKey
let auditorToken: string
const logger = pino({ level: 'silent' })
const checkpointErrors: unknown[] = []

/** A collector process on the data directory: a new one is a restart. */
function start(): { app: ReturnType<typeof createCollector>['app']; register: Register } {
  const { app, register } = createCollector({
    store: h.store,
    config: h.config,
    logger: {
      ...logger,
      child: () => logger,
      error: (obj: { err?: unknown }) => checkpointErrors.push(obj?.err),
    } as unknown as typeof logger,
    signingKey: grantKey,
    registerKey,
  })
  return { app, register }
}

const apiOf = (app: ReturnType<typeof start>['app']): RegisterApi => {
  const call = async <T>(method: string, path: string): Promise<T> => {
    const res = await app.request(path, {
      method,
      headers: { authorization: `Bearer ${auditorToken}` },
    })
    const body = (await res.json()) as T & { message?: string }
    if (!res.ok) throw new Error(`${res.status}: ${body.message}`)
    return body
  }
  return { get: (path) => call('GET', path), post: (path) => call('POST', path) }
}

async function append(register: Register, n: number, what = 'case.retrieval') {
  for (let i = 0; i < n; i++) {
    await register.append({ register: 'itsd', kind: what, actor: 'u-investigator', details: { i } })
  }
}

const mutate = (sql: string) => h.store.command({ query: `${sql} SETTINGS mutations_sync = 2` })

/** What the auditor's `tally register verify` does with its state file, as functions. */
async function auditorRun(app: ReturnType<typeof start>['app'], stateFile: string) {
  const keptHead = readKeptHead(stateFile)
  const result = await auditRegister(apiOf(app), 'itsd', {
    publicKey: registerKey.publicJwk,
    keptHead,
  })
  if (result.report.ok && result.head !== undefined) {
    const { register, size, root, ts, signature } = result.head
    const kept: KeptHead = {
      version: 1,
      collector: 'in-process',
      register: 'itsd',
      key_id: result.key.key_id,
      head: { register, size, root, ts, signature },
      verified_at: new Date().toISOString(),
    }
    writeKeptHead(stateFile, kept)
  }
  return result
}

const kinds = (result: AuditResult) => [...new Set(result.report.problems.map((p) => p.kind))]

/** An agent's grants poll through the real GrantManager and RegisterHeadWatch. */
function agentOf(stateDir: string, agentId: string, credential: string) {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 })
  const watch = new RegisterHeadWatch(stateDir)
  const manager = new GrantManager({
    agentId,
    pinnedKey: grantKey.publicJwk,
    createCapture: () => {
      throw new Error('no grant is expected')
    },
    registerHead: watch,
  })
  return {
    watch,
    poll: (app: ReturnType<typeof start>['app']) =>
      manager.refresh('http://collector.test', credential, Date.now(), {
        fetch: ((url: URL, init?: RequestInit) =>
          app.request(String(url), init)) as unknown as typeof fetch,
      }),
  }
}

async function resetRegister() {
  await h.store.command({ query: 'TRUNCATE TABLE tally.register_entries' })
  await h.store.command({ query: 'TRUNCATE TABLE tally.register_checkpoints' })
}

beforeAll(async () => {
  h = await openHarness()
  grantKey = loadOrCreateSigningKey(join(h.dir, 'grant-signing.pem'))
  // The register key in the data directory: the insider holds it (the worst case).
  registerKey = loadOrCreateSigningKey(join(h.dir, REGISTER_KEY_FILE))
  auditorToken = await userToken(h.store, ['auditor'])
})

afterAll(async () => {
  await h?.close()
})

describe('attack 5: the register rolled back by the data directory holder', () => {
  it('a cut tail, after a restart and new appends, fails verify with a kept head', async () => {
    await resetRegister()
    const stateFile = join(h.dir, 'auditor-cut', 'register-itsd.json')
    let collector = start()
    await append(collector.register, 30)
    // The auditor verifies once: every append batch is signed, so the head it keeps covers
    // every entry (with a checkpoint every 100 entries it would keep none here).
    const first = await auditorRun(collector.app, stateFile)
    expect(first.report.ok).toBe(true)
    expect(readKeptHead(stateFile)?.head.size).toBe(30)

    // The insider cuts entries 21-30 and their checkpoints, restarts the collector, appends.
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq > 20")
    await mutate(
      "ALTER TABLE tally.register_checkpoints DELETE WHERE register = 'itsd' AND size > 20",
    )
    collector = start()
    await append(collector.register, 3)

    // Without a kept head the cut is invisible: the chain and every stored checkpoint verify.
    const naive = await auditRegister(apiOf(collector.app), 'itsd', {
      publicKey: registerKey.publicJwk,
    })
    expect(naive.report.ok).toBe(true)
    expect(naive.head?.size).toBe(23)

    // With it: the head is below the kept size (no proof can exist), and the downloaded entries
    // do not reach the kept root.
    const cut = await auditorRun(collector.app, stateFile)
    expect(cut.report.ok).toBe(false)
    expect(kinds(cut)).toEqual(expect.arrayContaining(['rolled-back', 'removed']))
    expect(cut.report.problems.find((p) => p.kind === 'rolled-back')?.message).toMatch(
      /23 entries, fewer than the head you kept \(size 30/,
    )
    // Appending past the kept size does not hide it: the proof from 30 cannot be made.
    await append(collector.register, 10)
    const grown = await auditorRun(collector.app, stateFile)
    expect(grown.report.ok).toBe(false)
    expect(kinds(grown)).toEqual(expect.arrayContaining(['inconsistent', 'checkpoint-mismatch']))
    // The kept head was not replaced by a failed run.
    expect(readKeptHead(stateFile)?.head.size).toBe(30)
  })

  it('an agent that kept the head from its grants poll reports the cut register', async () => {
    await resetRegister()
    let collector = start()
    await append(collector.register, 12)
    const agent = await enrollAgent({ ...h, app: collector.app }, 'geneva', 'ws-rollback')
    const { watch, poll } = agentOf(join(h.dir, 'agent-cut'), agent.agent_id, agent.credential)
    const before = await poll(collector.app)
    expect(before).toMatchObject({ ok: true, register: { status: 'kept', first: true } })
    // 12 entries, and the enrollment's own when it is registered.
    const base = watch.keptSize
    expect(base).toBeGreaterThanOrEqual(12)
    await append(collector.register, 4)
    expect(await poll(collector.app)).toMatchObject({
      register: { status: 'kept', size: base + 4 },
    })
    expect(watch.inconsistent).toBe(false)

    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq > 10")
    await mutate(
      "ALTER TABLE tally.register_checkpoints DELETE WHERE register = 'itsd' AND size > 10",
    )
    collector = start()
    await append(collector.register, 2)
    const after = await poll(collector.app)
    expect(after).toMatchObject({ ok: true, register: { status: 'inconsistent' } })
    expect(watch.inconsistent).toBe(true)
    // Growing past the kept size, it stays inconsistent at every poll (the kept head stays).
    await append(collector.register, 10)
    expect(await poll(collector.app)).toMatchObject({
      register: { status: 'inconsistent', problem: 'inconsistent' },
    })
    expect(watch.keptSize).toBe(base + 4)
    // A restarted agent still holds the head it kept and still reports.
    const restarted = agentOf(join(h.dir, 'agent-cut'), agent.agent_id, agent.credential)
    await restarted.poll(collector.app)
    expect(restarted.watch.inconsistent).toBe(true)
  })

  it('a full rewrite re-signed with the stolen register key is caught by a kept head', async () => {
    await resetRegister()
    const stateFile = join(h.dir, 'auditor-rewrite', 'register-itsd.json')
    let collector = start()
    await append(collector.register, 25)
    const agent = await enrollAgent({ ...h, app: collector.app }, 'geneva', 'ws-rewrite')
    const { watch, poll } = agentOf(join(h.dir, 'agent-rewrite'), agent.agent_id, agent.credential)
    await poll(collector.app)
    expect(watch.keptSize).toBe((await collector.register.checkpoints('itsd')).at(-1)?.size)
    expect(watch.keptSize).toBeGreaterThanOrEqual(25)
    expect((await auditorRun(collector.app, stateFile)).report.ok).toBe(true)

    // The insider rewrites entry 7's actor, recomputes every hash and link, and signs a new
    // checkpoint at every size with the register key read from the data directory.
    const rows = await selectRows<{ entry: string; seq: number; ts_ms: number }>(
      h.store,
      `SELECT entry, seq, toUnixTimestamp64Milli(ts) AS ts_ms FROM tally.register_entries
       WHERE register = 'itsd' ORDER BY seq`,
    )
    let prev = GENESIS_HASH
    const tree = new MerkleTree()
    const entries: Record<string, unknown>[] = []
    const checkpoints: Record<string, unknown>[] = []
    for (const row of rows) {
      const original = JSON.parse(row.entry) as RegisterEntry
      const forged: RegisterEntry = {
        ...original,
        actor: original.seq === 7 ? 'u-nobody' : original.actor,
        prev_hash: prev,
      }
      forged.hash = entryHash(forged)
      prev = forged.hash
      tree.push(leafHash(forged))
      entries.push({
        register: 'itsd',
        seq: forged.seq,
        ts: Number(row.ts_ms),
        kind: forged.kind,
        actor: forged.actor,
        case_id: '',
        entry: canonicalJson(forged),
        prev_hash: forged.prev_hash,
        hash: forged.hash,
      })
      const head = {
        register: 'itsd' as const,
        size: tree.size,
        root: tree.root(),
        ts: new Date(Number(row.ts_ms)).toISOString(),
      }
      checkpoints.push({
        ...head,
        ts: Number(row.ts_ms),
        key_id: registerKey.publicJwk.kid ?? '',
        signature: signCheckpointBytes(head, registerKey.privateKey),
        countersignatures: '[]',
        version: Number(row.ts_ms),
      })
    }
    const keyId = collector.register.publicKeyJwk().kid
    for (const c of checkpoints) c.key_id = keyId
    await resetRegister()
    await insertRows(h.store, 'tally.register_entries', entries)
    await insertRows(h.store, 'tally.register_checkpoints', checkpoints)
    collector = start()
    await append(collector.register, 5)

    // Validly signed throughout: without a kept head nothing is wrong.
    const naive = await auditRegister(apiOf(collector.app), 'itsd', {
      publicKey: registerKey.publicJwk,
    })
    expect(naive.report.ok).toBe(true)
    expect(checkpointErrors.filter((e) => e instanceof RegisterIntegrityError)).toEqual([])

    // The auditor's kept head has no proof into the rewritten tree, and the entries
    // no longer give its root.
    const audit = await auditorRun(collector.app, stateFile)
    expect(audit.report.ok).toBe(false)
    expect(kinds(audit)).toEqual(expect.arrayContaining(['inconsistent', 'checkpoint-mismatch']))
    // The agent that kept the head reports it too.
    expect(await poll(collector.app)).toMatchObject({
      register: { status: 'inconsistent', problem: 'inconsistent' },
    })
    expect(watch.inconsistent).toBe(true)
  })

  it('the grants poll: the head only on request, ITSD only, bad sizes 400', async () => {
    await resetRegister()
    const collector = start()
    await append(collector.register, 3)
    await collector.register.append({
      register: 'oios',
      kind: 'oios.access',
      actor: 'u-oios',
      details: {},
    })
    const agent = await enrollAgent({ ...h, app: collector.app }, 'geneva', 'ws-poll')
    const poll = (query: string) =>
      collector.app.request(`/v1/agents/grants${query}`, {
        headers: { authorization: `Bearer ${agent.credential}` },
      })
    // An agent from before heads were served asks without register_size: grants alone.
    expect(await (await poll('')).json()).toEqual({ grants: [] })
    const answer = (await (await poll('?register_size=0')).json()) as {
      register: { head: { register: string; size: number }; proof: string[] }
    }
    expect(answer.register.head.register).toBe('itsd')
    const itsdSize = (await collector.register.checkpoints('itsd')).at(-1)?.size
    expect(answer.register.head.size).toBe(itsdSize)
    expect(JSON.stringify(answer)).not.toContain('oios')
    for (const bad of ['?register_size=-1', '?register_size=abc', '?register_size=1.5', '?x=1']) {
      expect((await poll(bad)).status, bad).toBe(400)
    }
  })

  it('entries cut without their checkpoints: the restarted collector refuses to sign over them', async () => {
    await resetRegister()
    let collector = start()
    await append(collector.register, 8)
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq > 5")
    collector = start()
    checkpointErrors.length = 0
    await append(collector.register, 1)
    expect(checkpointErrors).toEqual([expect.any(RegisterIntegrityError)])
    // The new entry took seq 6; a head was signed at 8 before the cut.
    expect(String((checkpointErrors[0] as Error).message)).toMatch(
      /signed at size 8 but only 6 entries are stored/,
    )
    const checkpoints = await collector.register.checkpoints('itsd')
    expect(checkpoints.map((c) => c.size)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })
})
