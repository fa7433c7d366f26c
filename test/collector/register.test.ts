/**
 * The tamper-evident register on the real embedded engine: two independent chains, tampering
 * done directly in ClickHouse and named by kind and seq, signed checkpoints and
 * countersignatures, fail closed, the routes' access rules and the auditor's own verification.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { ClickHouseLogLevel, createClient } from '@clickhouse/client'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import pino from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { buildCommand } from '../../cli/command-table.ts'
import { registerCommands } from '../../cli/commands/register.ts'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { DomainError } from '../../collector/errors.ts'
import { type CollectorEnv, problemOf } from '../../collector/http.ts'
import {
  AuditError,
  auditRegister,
  countersignCheckpoint,
  formatAudit,
  type KeptHead,
  type RegisterApi,
} from '../../collector/register/audit.ts'
import {
  BadCountersignature,
  canonicalJson,
  checkpointBytes,
  entryHash,
  entrySignatureValid,
  GENESIS_HASH,
  leafHash,
  MerkleTree,
  REGISTER_KEY_FILE,
  Register,
  type RegisterEntry,
  RegisterIntegrityError,
  type RegisterName,
  RegisterUnavailable,
  type SignedCheckpoint,
  signCheckpointBytes,
  signEntry,
  type VerifyProblem,
  type VerifyReport,
  verifyEntries,
} from '../../collector/register/register.ts'
import { registerRoutes } from '../../collector/routes/register.ts'
import { insertRows, selectRows } from '../../collector/store/rows.ts'
import { verifyConsistency } from '../../common/register-verify/merkle.ts'
import type { Role } from '../../protocol/api/names.ts'
import { CT_LEAVES } from '../common/ct-vectors.ts'
import { errorBody, type Harness, openHarness, userToken } from './harness.ts'

let h: Harness
let register: Register
let publicJwk: Record<string, string>
let app: Hono<CollectorEnv>
const N = 50

let signingKey: KeyObject
const log = pino({ level: 'silent' })

/**
 * A Register and its routes on the store. A Register remembers the head it wrote last and the
 * tree it signed; after a test puts the tables back, a new one starts from what is stored.
 */
function build(): void {
  register = new Register(h.store, signingKey)
  publicJwk = register.publicKeyJwk()
  app = appOver(register)
}

/** The register's routes as app.ts serves them: domain errors answered in one onError. */
function appOver(over: Register): Hono<CollectorEnv> {
  const routes = new Hono<CollectorEnv>()
    .use(async (c, next) => {
      c.set('log', log)
      await next()
    })
    .route('/', registerRoutes(h.store, over))
  routes.notFound((c) =>
    c.json({ error: 'not_found', message: `no route ${c.req.method} ${c.req.path}` }, 404),
  )
  routes.onError((err, c) => {
    if (!(err instanceof DomainError)) throw err
    if (err.failure === 'unavailable') c.header('Retry-After', '5')
    return problemOf(c, err)
  })
  return routes
}

beforeAll(async () => {
  h = await openHarness()
  signingKey = loadOrCreateSigningKey(join(h.dir, REGISTER_KEY_FILE)).privateKey
  build()
  for (let i = 1; i <= N; i++) {
    await register.append({
      register: 'itsd',
      kind: i === 1 ? 'case.requested' : 'case.retrieval',
      actor: `u-itsd-${i % 3}`,
      case_id: `c-${Math.ceil(i / 10)}`,
      details: { step: i, what: 'flows', fields: ['src', 'dst'], ratio: i / 7, ok: true },
    })
    await register.append({
      register: 'oios',
      kind: 'oios.access',
      actor: 'u-oios',
      details: { step: i, note: 'remote access without notice (9.2b)' },
    })
  }
})

afterAll(async () => {
  await h?.close()
})

// --- Tampering directly in ClickHouse, and putting things back. -------------------------------

interface RawEntryRow {
  register: string
  seq: number
  ts: number
  kind: string
  actor: string
  case_id: string
  entry: string
  prev_hash: string
  hash: string
  signature: string
}

const rawEntries = (where = '1') =>
  selectRows<RawEntryRow>(
    h.store,
    `SELECT register, seq, toUnixTimestamp64Milli(ts) AS ts, kind, actor, case_id, entry,
       prev_hash, hash, signature FROM tally.register_entries WHERE ${where} ORDER BY register, seq`,
  )

interface RawCheckpointRow {
  register: string
  size: number
  root: string
  ts: number
  key_id: string
  signature: string
  countersignatures: string
  version: number
}

const rawCheckpoints = () =>
  selectRows<RawCheckpointRow>(
    h.store,
    `SELECT register, size, root, toUnixTimestamp64Milli(ts) AS ts, key_id, signature,
       countersignatures, version FROM tally.register_checkpoints`,
  )

const mutate = (sql: string) => h.store.command({ query: `${sql} SETTINGS mutations_sync = 2` })

let saved: { entries: RawEntryRow[]; checkpoints: RawCheckpointRow[] } | undefined

/** Remembers both tables; afterEach puts them back as they were. */
async function snapshot() {
  saved = { entries: await rawEntries(), checkpoints: await rawCheckpoints() }
}

afterEach(async () => {
  if (saved === undefined) return
  await h.store.command({ query: 'TRUNCATE TABLE tally.register_entries' })
  await h.store.command({ query: 'TRUNCATE TABLE tally.register_checkpoints' })
  await insertRows(
    h.store,
    'tally.register_entries',
    saved.entries as unknown as Record<string, unknown>[],
  )
  await insertRows(
    h.store,
    'tally.register_checkpoints',
    saved.checkpoints as unknown as Record<string, unknown>[],
  )
  saved = undefined
  build()
})

const kinds = (report: VerifyReport) => [...new Set(report.problems.map((p) => p.kind))].sort()
const problem = (seq: number, kind: VerifyProblem['kind']) => expect.objectContaining({ seq, kind })

// ------------------------------------------------------------------------------------------------

describe('chains and checkpoints', () => {
  it('keeps two independent chains of 50 entries that verify, with a signed checkpoint per append', async () => {
    for (const name of ['itsd', 'oios'] as const) {
      const report = await register.verify(name)
      expect(report, JSON.stringify(report.problems)).toMatchObject({
        register: name,
        ok: true,
        size: N,
        checked_checkpoints: N,
        problems: [],
      })
      const entries = await register.entries(name, { limit: 1000 })
      expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1))
      expect(entries.every((e) => e.register === name)).toBe(true)
      expect(entries[0]?.prev_hash).toBe(GENESIS_HASH)
      const checkpoints = await register.checkpoints(name)
      expect(checkpoints.map((c) => c.size)).toEqual(Array.from({ length: N }, (_, i) => i + 1))
      expect(checkpoints.at(-1)?.root).toBe(report.root)
    }
    // Nothing of OIOS in ITSD's register and nothing shared between the chains.
    const itsd = await register.entries('itsd', { limit: 1000 })
    const oios = await register.entries('oios', { limit: 1000 })
    expect(JSON.stringify(itsd)).not.toContain('oios')
    const oiosHashes = new Set(oios.map((e) => e.hash))
    expect(itsd.some((e) => oiosHashes.has(e.hash))).toBe(false)
    expect((await register.verify('itsd')).root).not.toBe((await register.verify('oios')).root)
  })

  it('stores each entry as the canonical JSON it hashed, chained to the one before', async () => {
    const rows = await rawEntries("register = 'itsd' AND seq <= 3")
    const entries = rows.map((r) => JSON.parse(r.entry) as RegisterEntry)
    for (const [i, row] of rows.entries()) {
      const entry = entries[i] as RegisterEntry
      expect(row.entry).toBe(canonicalJson(entry))
      expect(entryHash(entry)).toBe(row.hash)
      expect(entry.prev_hash).toBe(i === 0 ? GENESIS_HASH : entries[i - 1]?.hash)
      expect(row.case_id).toBe(entry.case_id)
    }
    // Keys in RFC 8785 order, numbers in their shortest form.
    expect(rows[0]?.entry).toMatch(/^\{"actor":"u-itsd-1","case_id":"c-1","details":\{"fields":/)
    expect(rows[0]?.entry).toContain('"ratio":0.14285714285714285')
  })

  it('computes RFC 6962 Merkle roots (the Certificate Transparency test vectors)', () => {
    const tree = new MerkleTree(
      CT_LEAVES.map((hex) =>
        createHash('sha256')
          .update(Buffer.from([0]))
          .update(Buffer.from(hex, 'hex'))
          .digest(),
      ),
    )
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => tree.root(n))).toEqual([
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    ])
    expect(tree.root(0)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  })

  it('serialises concurrent appends into one chain, one checkpoint per batch', async () => {
    await snapshot()
    const appended = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        register.append({ register: 'oios', kind: 'oios.access', actor: 'u-oios', details: { i } }),
      ),
    )
    expect(appended.map((e) => e.seq).sort((a, b) => a - b)).toEqual([
      51, 52, 53, 54, 55, 56, 57, 58,
    ])
    expect((await register.verify('oios')).ok).toBe(true)
    // Appends made together go in one batch: one insert and one checkpoint for the eight.
    const sizes = (await register.checkpoints('oios')).map((c) => c.size).filter((s) => s > N)
    expect(sizes).toEqual([58])
  })
})

describe('verify detects tampering done in ClickHouse', () => {
  it('a changed entry', async () => {
    await snapshot()
    await mutate(
      `ALTER TABLE tally.register_entries UPDATE entry = replaceOne(entry, '"actor":"u-itsd-2"', '"actor":"someone-else"')
       WHERE register = 'itsd' AND seq = 17`,
    )
    const report = await register.verify('itsd')
    expect(report.ok).toBe(false)
    expect(report.problems[0]).toEqual(problem(17, 'changed'))
    // Its own signature no longer verifies either: the collector did not write this content.
    expect(kinds(report)).toEqual(['bad-signature', 'changed', 'checkpoint-mismatch'])
    expect(report.problems.filter((p) => p.kind === 'changed').every((p) => p.seq === 17)).toBe(
      true,
    )
    expect(
      report.problems.filter((p) => p.kind === 'bad-signature').every((p) => p.seq === 17),
    ).toBe(true)
    expect((await register.verify('oios')).ok).toBe(true)
  })

  it('a changed entry whose hash was recomputed breaks the link to the next one', async () => {
    await snapshot()
    const [row] = await rawEntries("register = 'itsd' AND seq = 33")
    const entry = JSON.parse(row?.entry ?? '') as RegisterEntry
    const forged = { ...entry, details: { ...entry.details, what: 'nothing' } }
    forged.hash = entryHash(forged)
    await mutate(
      `ALTER TABLE tally.register_entries UPDATE entry = '${canonicalJson(forged)}', hash = '${forged.hash}'
       WHERE register = 'itsd' AND seq = 33`,
    )
    const report = await register.verify('itsd')
    expect(report.problems[0]).toEqual(problem(33, 'changed'))
    expect(kinds(report)).toEqual(['bad-signature', 'changed', 'checkpoint-mismatch'])
    expect(report.problems.find((p) => p.kind === 'bad-signature')?.seq).toBe(33)
  })

  it('a removed entry', async () => {
    await snapshot()
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq = 30")
    const report = await register.verify('itsd')
    expect(report.problems[0]).toEqual(problem(30, 'removed'))
    expect(kinds(report)).toEqual(['checkpoint-mismatch', 'removed'])
    // The register refuses to sign a checkpoint over it (a new instance, with no cached tree).
    const fresh = new Register(h.store, generateKeyPairSync('ed25519').privateKey)
    await expect(fresh.checkpoint('itsd')).rejects.toBeInstanceOf(RegisterIntegrityError)
  })

  it('entries removed from the end, below a signed checkpoint', async () => {
    await snapshot()
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq > 45")
    const report = await register.verify('itsd')
    expect(report.problems).toEqual([problem(46, 'removed')])
    expect(report.problems[0]?.message).toContain('46 to 50')
  })

  it('an inserted entry (a forged second row for a seq, hashed and linked correctly)', async () => {
    await snapshot()
    const [before] = await rawEntries("register = 'itsd' AND seq = 24")
    const prev = JSON.parse(before?.entry ?? '') as RegisterEntry
    const forgedAt = Date.now()
    const unsigned = {
      register: 'itsd' as const,
      seq: 25,
      ts: new Date(forgedAt).toISOString(),
      kind: 'case.retrieval',
      actor: 'u-mallory',
      details: { note: 'I was never here' },
      prev_hash: prev.hash,
    }
    const forged: RegisterEntry = { ...unsigned, hash: entryHash(unsigned) }
    await insertRows(h.store, 'tally.register_entries', [
      {
        register: 'itsd',
        seq: 25,
        // Consistent with the forged entry itself: only the chain can tell it apart.
        ts: forgedAt,
        kind: forged.kind,
        actor: forged.actor,
        case_id: '',
        entry: canonicalJson(forged),
        prev_hash: forged.prev_hash,
        hash: forged.hash,
      },
    ])
    const report = await register.verify('itsd')
    expect(report.problems).toEqual([problem(25, 'inserted')])
    expect(report.size).toBe(N)
    // The API pages never split the two rows of seq 25.
    const page = await register.entriesPage('itsd', { from: 1, limit: 25 })
    expect(page.entries.filter((e) => e.seq === 25)).toHaveLength(2)
    expect(page.next_from).toBe(26)
  })

  it('two entries swapped (their rows exchanged seq values)', async () => {
    await snapshot()
    const rows = await rawEntries("register = 'itsd' AND seq IN (12, 13)")
    await mutate(
      "ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq IN (12, 13)",
    )
    await insertRows(
      h.store,
      'tally.register_entries',
      rows.map((r) => ({ ...r, seq: r.seq === 12 ? 13 : 12 })),
    )
    const report = await register.verify('itsd')
    expect(report.problems.length).toBeGreaterThan(0)
    expect(kinds(report)).toEqual(['reordered'])
    expect(report.problems.every((p) => p.seq === 12 || p.seq === 13)).toBe(true)
    // The auditor's check of what the API serves sees it as well.
    const local = await verifyEntries(
      await register.entries('itsd', { limit: 1000 }),
      await register.checkpoints('itsd'),
      publicJwk,
    )
    expect(kinds(local)).toEqual(['reordered'])
  })

  it('an index column changed without the entry (a case hidden from a case_id search)', async () => {
    await snapshot()
    await mutate(
      "ALTER TABLE tally.register_entries UPDATE case_id = 'c-x' WHERE register = 'itsd' AND seq = 8",
    )
    const report = await register.verify('itsd')
    expect(report.problems).toEqual([problem(8, 'changed')])
    expect(report.problems[0]?.message).toContain('case_id')
  })

  it('a consistent rewrite of the whole chain is caught by the signed checkpoints', async () => {
    await snapshot()
    const rows = await rawEntries("register = 'itsd'")
    let prevHash = GENESIS_HASH
    const rewritten = rows.map((r) => {
      const entry = JSON.parse(r.entry) as RegisterEntry
      const changed: RegisterEntry = {
        ...entry,
        actor: entry.seq === 5 ? 'u-nobody' : entry.actor,
        prev_hash: prevHash,
      }
      changed.hash = entryHash(changed)
      prevHash = changed.hash
      return {
        ...r,
        actor: changed.actor,
        entry: canonicalJson(changed),
        prev_hash: changed.prev_hash,
        hash: changed.hash,
      }
    })
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd'")
    await insertRows(h.store, 'tally.register_entries', rewritten)

    const entries = await register.entries('itsd', { limit: 1000 })
    // The chain's hashes are whole again, but not one rewritten entry carries its signature...
    const alone = await verifyEntries(entries, [], publicJwk)
    expect(kinds(alone)).toEqual(['bad-signature'])
    expect(alone.problems.map((p) => p.seq)).toEqual(Array.from({ length: N - 4 }, (_, i) => i + 5))
    // ...and no signed root matches it.
    const report = await register.verify('itsd')
    expect(kinds(report)).toEqual(['bad-signature', 'checkpoint-mismatch'])
    // One problem at the first checkpoint over the rewritten entry; the later ones counted.
    const mismatches = report.problems.filter((p) => p.kind === 'checkpoint-mismatch')
    expect(mismatches.map((p) => p.seq)).toEqual([5])
    expect(mismatches[0]?.message).toContain('entries 5 to 5 were rewritten')
    expect(mismatches[0]?.message).toContain('and 45 later checkpoints do not match')

    // Re-signing the checkpoints with another key does not help: the auditor keeps the real one.
    const mallory = generateKeyPairSync('ed25519').privateKey
    const resigned = (await register.checkpoints('itsd')).map((c) => {
      const head = { register: c.register, size: c.size, root: '', ts: c.ts }
      const tree = new MerkleTree()
      for (const e of entries.slice(0, c.size)) tree.push(leafHash(e))
      head.root = tree.root()
      return { ...c, root: head.root, signature: signCheckpointBytes(head, mallory) }
    })
    const local = await verifyEntries(entries, resigned, publicJwk)
    expect(kinds(local)).toEqual(['bad-signature'])
    expect([...new Set(local.problems.map((p) => p.seq))]).toEqual(
      Array.from({ length: N }, (_, i) => i + 1),
    )
  })

  it('a forged checkpoint signature, and a checkpoint changed in the store', async () => {
    await snapshot()
    await mutate(
      `ALTER TABLE tally.register_checkpoints UPDATE signature = '${'A'.repeat(86)}'
       WHERE register = 'itsd' AND size = 20`,
    )
    await mutate(
      `ALTER TABLE tally.register_checkpoints UPDATE root = '${'0'.repeat(64)}'
       WHERE register = 'itsd' AND size = 40`,
    )
    const report = await register.verify('itsd')
    expect(report.problems).toEqual([problem(20, 'bad-signature'), problem(40, 'bad-signature')])
    expect(report.checked_checkpoints).toBe(N - 2)
  })
})

describe('countersignatures', () => {
  const auditor = generateKeyPairSync('ed25519')
  const auditorJwk = () => auditor.publicKey.export({ format: 'jwk' })

  it('verifies and keeps an auditor countersignature; refuses a bad one', async () => {
    await snapshot()
    const [cp] = (await register.checkpoints('oios')).filter((c) => c.size === 20)
    if (cp === undefined) throw new Error('no checkpoint at 20')
    const signature = signCheckpointBytes(cp, auditor.privateKey)
    const signed = await register.countersign('oios', 20, 'OIOS Chief', auditorJwk(), signature)
    expect(signed.countersignatures).toEqual([
      expect.objectContaining({ by: 'OIOS Chief', key: auditorJwk().x, signature }),
    ])
    // Signing again with the same key keeps one countersignature; the register's own signature
    // and fields are unchanged.
    const again = await register.countersign('oios', 20, 'OIOS Chief', auditorJwk(), signature)
    expect(again.countersignatures).toHaveLength(1)
    const stored = (await register.checkpoints('oios')).find((c) => c.size === 20)
    expect(stored).toEqual({ ...cp, countersignatures: signed.countersignatures })
    expect((await register.verify('oios')).ok).toBe(true)

    // Wrong bytes, wrong key, unknown size.
    const wrong = signCheckpointBytes({ ...cp, size: 21 }, auditor.privateKey)
    await expect(register.countersign('oios', 20, 'x', auditorJwk(), wrong)).rejects.toBeInstanceOf(
      BadCountersignature,
    )
    const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' })
    await expect(register.countersign('oios', 20, 'x', other, signature)).rejects.toBeInstanceOf(
      BadCountersignature,
    )
    await expect(register.countersign('oios', 99, 'x', auditorJwk(), signature)).rejects.toThrow(
      /no checkpoint at size 99/,
    )
    expect(
      (await register.checkpoints('oios')).find((c) => c.size === 20)?.countersignatures,
    ).toHaveLength(1)

    // A countersignature changed in the store no longer verifies.
    const tampered = JSON.stringify([{ ...signed.countersignatures[0], signature: wrong }])
    await mutate(
      `ALTER TABLE tally.register_checkpoints UPDATE countersignatures = '${tampered}'
       WHERE register = 'oios' AND size = 20`,
    )
    expect((await register.verify('oios')).problems).toEqual([problem(20, 'bad-signature')])
  })
})

describe('fail closed', () => {
  it('append throws RegisterUnavailable, with the cause, when the store cannot be reached', async () => {
    const down = createClient({
      url: 'http://127.0.0.1:1',
      log: { level: ClickHouseLogLevel.OFF },
    })
    try {
      const broken = new Register(down, generateKeyPairSync('ed25519').privateKey)
      const attempt = broken.append({
        register: 'itsd',
        kind: 'case.retrieval',
        actor: 'u',
        details: {},
      })
      await expect(attempt).rejects.toBeInstanceOf(RegisterUnavailable)
      const err = await attempt.catch((e: unknown) => e)
      expect((err as Error).name).toBe('RegisterUnavailable')
      expect((err as Error).cause).toBeInstanceOf(Error)
      await expect(broken.checkpoint('itsd')).rejects.toBeInstanceOf(RegisterUnavailable)
    } finally {
      await down.close()
    }
  })

  it('append throws RegisterUnavailable when the insert fails, and the chain stays whole', async () => {
    await snapshot()
    const failing = new Register(h.store, signingKey)
    const spy = vi.spyOn(h.store, 'insert').mockRejectedValueOnce(new Error('disk full'))
    try {
      await expect(
        failing.append({ register: 'itsd', kind: 'case.retrieval', actor: 'u', details: {} }),
      ).rejects.toThrow(RegisterUnavailable)
    } finally {
      spy.mockRestore()
    }
    const next = await failing.append({
      register: 'itsd',
      kind: 'case.retrieval',
      actor: 'u',
      details: {},
    })
    expect(next.seq).toBe(N + 1)
    expect((await register.verify('itsd')).ok).toBe(true)
  })
})

// --- Routes ------------------------------------------------------------------------------------

const tokens = new Map<string, string>()
async function tokenFor(roles: Role[]): Promise<string> {
  const key = roles.join(',')
  let token = tokens.get(key)
  if (token === undefined) {
    token = await userToken(h.store, roles, key)
    tokens.set(key, token)
  }
  return token
}

async function call(
  path: string,
  roles: Role[] | undefined,
  init: { method?: string; body?: unknown } = {},
) {
  const headers: Record<string, string> = {}
  if (roles !== undefined) headers.authorization = `Bearer ${await tokenFor(roles)}`
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  return app.request(path, {
    method: init.method ?? 'GET',
    headers,
    body: init.body === undefined ? null : JSON.stringify(init.body),
  })
}

describe('routes', () => {
  it('itsd: auditor, admin and approver read it; operator and requester get 403', async () => {
    for (const role of ['auditor', 'admin', 'approver'] as const) {
      const res = await call('/v1/register/itsd/entries?limit=20', [role])
      expect(res.status, role).toBe(200)
      const page = (await res.json()) as { entries: RegisterEntry[]; next_from: number | null }
      expect(page.entries.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      expect(page.next_from).toBe(21)
    }
    for (const role of [
      'operator',
      'requester',
      'oios_investigator',
      'itsd_investigator',
    ] as const) {
      expect((await call('/v1/register/itsd/entries', [role])).status, role).toBe(403)
      expect((await call('/v1/register/itsd/verify', [role])).status, role).toBe(403)
    }
    expect((await call('/v1/register/itsd/entries', undefined)).status).toBe(401)
  })

  it('oios: only OIOS reads it; to everyone else it does not exist (404, as an unknown register)', async () => {
    for (const role of ['oios_investigator', 'oios_chief'] as const) {
      const res = await call('/v1/register/oios/entries?from=41', [role])
      expect(res.status, role).toBe(200)
      const page = (await res.json()) as { entries: RegisterEntry[] }
      expect(page.entries.map((e) => e.seq)).toEqual([41, 42, 43, 44, 45, 46, 47, 48, 49, 50])
      expect(page.entries.every((e) => e.register === 'oios')).toBe(true)
    }
    const unknown = await errorBody(await call('/v1/register/nope/entries', ['admin']))
    for (const role of [
      'auditor',
      'admin',
      'approver',
      'operator',
      'requester',
      'oios_designee',
    ] as const) {
      for (const [method, path] of [
        ['GET', '/v1/register/oios/entries'],
        ['GET', '/v1/register/oios/checkpoints'],
        ['POST', '/v1/register/oios/checkpoints'],
        ['GET', '/v1/register/oios/verify'],
      ] as const) {
        const res = await call(path, [role], { method })
        expect(res.status, `${role} ${method} ${path}`).toBe(404)
        const body = await errorBody(res)
        expect(body.error).toBe(unknown.error)
        expect(body.message).toBe(
          unknown.message
            .replace('/nope/entries', path.slice('/v1/register'.length))
            .replace('GET', method),
        )
      }
    }
  })

  it('entries by case, checkpoints, verify and the public key', async () => {
    const byCase = (await (
      await call('/v1/register/itsd/entries?case_id=c-2', ['auditor'])
    ).json()) as {
      entries: RegisterEntry[]
    }
    expect(byCase.entries.map((e) => e.seq)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
    expect((await call('/v1/register/itsd/entries?limit=0', ['auditor'])).status).toBe(400)

    const cps = (await (await call('/v1/register/itsd/checkpoints', ['auditor'])).json()) as {
      checkpoints: SignedCheckpoint[]
    }
    expect(cps.checkpoints.map((c) => c.size)).toEqual(Array.from({ length: N }, (_, i) => i + 1))

    const verify = (await (
      await call('/v1/register/oios/verify', ['oios_chief'])
    ).json()) as VerifyReport
    expect(verify).toMatchObject({ register: 'oios', ok: true, size: N, checked_checkpoints: N })

    const key = await call('/v1/register/public-key', ['auditor'])
    expect(key.status).toBe(200)
    expect(await key.json()).toEqual(publicJwk)
    expect((await call('/v1/register/public-key', ['oios_investigator'])).status).toBe(200)
    expect((await call('/v1/register/public-key', ['operator'])).status).toBe(403)
  })

  it('gives RFC 6962 consistency proofs that verify against the signed roots; bad sizes are 4xx', async () => {
    const cps = (await register.checkpoints('itsd')) as SignedCheckpoint[]
    const at = (size: number) => cps.find((c) => c.size === size) as SignedCheckpoint
    const res = await call('/v1/register/itsd/consistency?from=17&to=42', ['auditor'])
    expect(res.status).toBe(200)
    const body = (await res.json()) as { from: number; to: number; proof: string[] }
    expect(body).toMatchObject({ register: 'itsd', from: 17, to: 42 })
    expect(await verifyConsistency(17, 42, at(17).root, at(42).root, body.proof)).toBe(true)
    // `to` defaults to the latest signed head.
    const latest = (await (
      await call('/v1/register/itsd/consistency?from=30', ['auditor'])
    ).json()) as { to: number; proof: string[] }
    expect(latest.to).toBe(N)
    expect(await verifyConsistency(30, N, at(30).root, at(N).root, latest.proof)).toBe(true)
    for (const query of ['', '?from=abc', '?from=-1', '?from=5&to=4', '?from=1&extra=1']) {
      const bad = await call(`/v1/register/itsd/consistency${query}`, ['auditor'])
      expect(bad.status, query).toBe(400)
    }
    const beyond = await call('/v1/register/itsd/consistency?from=1&to=999', ['auditor'])
    expect(beyond.status).toBe(409)
    expect((await errorBody(beyond)).error).toBe('beyond_head')
    // OIOS's proofs exist only for OIOS.
    expect((await call('/v1/register/oios/consistency?from=1', ['admin'])).status).toBe(404)
    expect((await call('/v1/register/oios/consistency?from=1', ['oios_chief'])).status).toBe(200)
  })

  it('signs a checkpoint on request and takes a countersignature', async () => {
    await snapshot()
    await register.append({
      register: 'itsd',
      kind: 'case.closed',
      actor: 'u',
      case_id: 'c-5',
      details: {},
    })
    const res = await call('/v1/register/itsd/checkpoints', ['auditor'], { method: 'POST' })
    expect(res.status).toBe(201)
    const cp = (await res.json()) as SignedCheckpoint
    expect(cp).toMatchObject({ register: 'itsd', size: N + 1, countersignatures: [] })
    expect(
      (await verifyEntries(await register.entries('itsd', { limit: 100 }), [cp], publicJwk)).ok,
    ).toBe(true)
    // Asking again at the same size gives the same checkpoint, not a second signature.
    const again = (await (
      await call('/v1/register/itsd/checkpoints', ['admin'], { method: 'POST' })
    ).json()) as SignedCheckpoint
    expect(again).toEqual(cp)

    const auditor = generateKeyPairSync('ed25519')
    const jwk = auditor.publicKey.export({ format: 'jwk' })
    const path = `/v1/register/itsd/checkpoints/${cp.size}/countersign`
    const bad = await call(path, ['auditor'], {
      method: 'POST',
      body: {
        by: 'Auditor',
        public_key: jwk,
        signature: signCheckpointBytes({ ...cp, root: '00' }, auditor.privateKey),
      },
    })
    expect(bad.status).toBe(400)
    expect((await errorBody(bad)).error).toBe('bad_countersignature')
    const good = await call(path, ['auditor'], {
      method: 'POST',
      body: {
        by: 'Auditor',
        public_key: jwk,
        signature: signCheckpointBytes(cp, auditor.privateKey),
      },
    })
    expect(good.status).toBe(200)
    expect(((await good.json()) as SignedCheckpoint).countersignatures).toHaveLength(1)
    expect(
      (
        await call('/v1/register/itsd/checkpoints/999/countersign', ['auditor'], {
          method: 'POST',
          body: {
            by: 'Auditor',
            public_key: jwk,
            signature: signCheckpointBytes(cp, auditor.privateKey),
          },
        })
      ).status,
    ).toBe(404)
  })

  it('refuses to sign a checkpoint over a register that does not verify (409)', async () => {
    await snapshot()
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq = 3")
    await register.append({ register: 'itsd', kind: 'case.closed', actor: 'u', details: {} })
    // This instance's tree covers 1..50 already; a fresh one reads from the start.
    const fresh = new Register(h.store, signingKey)
    const freshApp = appOver(fresh)
    const res = await freshApp.request('/v1/register/itsd/checkpoints', {
      method: 'POST',
      headers: { authorization: `Bearer ${await tokenFor(['auditor'])}` },
    })
    expect(res.status).toBe(409)
    expect((await errorBody(res)).message).toMatch(/does not verify at entry 3 \(missing\)/)
  })
})

// --- The auditor's own verification (what `tally register verify` runs) -------------------------

const apiAs = (roles: Role[]): RegisterApi => ({
  get: async <T>(path: string) => {
    const res = await call(path, roles)
    if (!res.ok) throw new Error(`GET ${path}: ${res.status}`)
    return (await res.json()) as T
  },
  post: async <T>(path: string, body?: unknown) => {
    const res = await call(path, roles, { method: 'POST', body })
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  },
})

describe('the auditor verifies locally', () => {
  it('verifies what the API serves, names each problem, and trusts a pinned key over the collector', async () => {
    const ok = await auditRegister(apiAs(['auditor']), 'itsd')
    expect(ok.report.ok).toBe(true)
    expect(formatAudit(ok)).toMatch(
      /^register itsd: 50 entries, 50 checkpoints, root [0-9a-f]{16}…: OK$/,
    )

    await snapshot()
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq = 7")
    const bad = await auditRegister(apiAs(['auditor']), 'itsd', { publicKey: publicJwk })
    expect(bad.report.problems[0]).toEqual(problem(7, 'removed'))
    expect(formatAudit(bad)).toMatch(/problems\n {2}seq {6}7 {2}removed/)

    // A pinned key that is not the collector's: every signature is refused, the checkpoints'
    // and the entries' own.
    const other = generateKeyPairSync('ed25519').publicKey
    const pinned = await auditRegister(apiAs(['auditor']), 'itsd', { publicKey: other })
    expect(pinned.report.problems.filter((p) => p.kind === 'bad-signature')).toHaveLength(2 * N - 1)
    expect(pinned.key.key_id).not.toBe(pinned.key.collector_key_id)
  })

  it('checks checkpoints kept elsewhere, even when the collector has lost them', async () => {
    await snapshot()
    const kept = await register.checkpoints('itsd')
    await mutate("ALTER TABLE tally.register_checkpoints DELETE WHERE register = 'itsd'")
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq > 40")
    // Without the kept checkpoints the truncation is invisible...
    expect((await auditRegister(apiAs(['auditor']), 'itsd')).report.ok).toBe(true)
    // ...with them it is not.
    const audit = await auditRegister(apiAs(['auditor']), 'itsd', {
      publicKey: publicJwk,
      keptCheckpoints: kept,
    })
    expect(audit.report.problems).toEqual([problem(41, 'removed')])
  })

  it('countersigns only a register that verifies', async () => {
    await snapshot()
    const auditorKey: KeyObject = generateKeyPairSync('ed25519').privateKey
    const { checkpoint } = await countersignCheckpoint(
      apiAs(['auditor']),
      'itsd',
      30,
      'Auditor',
      auditorKey,
    )
    expect(checkpoint.countersignatures).toEqual([expect.objectContaining({ by: 'Auditor' })])
    expect(checkpointBytes(checkpoint).toString()).toBe(
      canonicalJson({ register: 'itsd', size: 30, root: checkpoint.root, ts: checkpoint.ts }),
    )
    await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq = 2")
    await expect(
      countersignCheckpoint(apiAs(['auditor']), 'itsd', 40, 'Auditor', auditorKey),
    ).rejects.toBeInstanceOf(AuditError)
  })

  it('`tally register verify` over HTTP prints OK, or each problem and exits 1', async () => {
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 })
    await new Promise<void>((ready) => server.once('listening', () => ready()))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const token = await tokenFor(['auditor'])
    const keyFile = join(h.dir, 'register-public.jwk')
    await writeFile(keyFile, JSON.stringify(publicJwk))
    const run = async (...args: string[]) => {
      let stdout = ''
      const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
        stdout += String(chunk)
        return true
      })
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
      process.exitCode = undefined
      try {
        await buildCommand(registerCommands).parseAsync([
          'node',
          'register',
          ...args,
          '--collector',
          url,
          '--token',
          token,
        ])
      } finally {
        write.mockRestore()
        stderr.mockRestore()
      }
      const code = process.exitCode
      process.exitCode = undefined
      return { stdout, code }
    }
    const stateFile = join(h.dir, 'auditor-state', 'register-itsd.json')
    try {
      const ok = await run('verify', '--public-key', keyFile, '--state', stateFile)
      expect(ok.stdout).toMatch(
        /^register itsd: 50 entries, 50 checkpoints, root [0-9a-f]{16}…: OK\n$/,
      )
      expect(ok.code).toBeUndefined()
      // The verified head is kept for the next run.
      const kept = JSON.parse(await readFile(stateFile, 'utf8')) as KeptHead
      expect(kept).toMatchObject({ version: 1, collector: url, register: 'itsd' })
      expect(kept.head.size).toBe(N)

      await snapshot()
      await mutate("ALTER TABLE tally.register_entries DELETE WHERE register = 'itsd' AND seq = 44")
      const bad = await run('verify', '--json', '--state', stateFile)
      expect(bad.code).toBe(1)
      const report = JSON.parse(bad.stdout) as VerifyReport
      expect(report.ok).toBe(false)
      expect(report.problems[0]).toEqual(problem(44, 'removed'))
      // A failed run leaves the kept head as it was.
      expect(JSON.parse(await readFile(stateFile, 'utf8'))).toEqual(kept)

      // OIOS's register through the same command, with an OIOS token: independent and whole.
      const oiosToken = await tokenFor(['oios_investigator'])
      let out = ''
      const w = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
        out += String(chunk)
        return true
      })
      const e = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
      try {
        await buildCommand(registerCommands).parseAsync([
          'node',
          'register',
          'verify',
          '--register',
          'oios',
          '--no-state',
          '--collector',
          url,
          '--token',
          oiosToken,
        ])
      } finally {
        w.mockRestore()
        e.mockRestore()
      }
      expect(out).toMatch(/^register oios: 50 entries, 50 checkpoints, .*: OK\n$/)
      expect(process.exitCode).toBeUndefined()
    } finally {
      await new Promise<void>((done) => server.close(() => done()))
    }
  })
})

describe('verifyEntries on its own', () => {
  const key = generateKeyPairSync('ed25519')
  const chain = (n: number, register: RegisterName = 'itsd'): RegisterEntry[] => {
    const out: RegisterEntry[] = []
    let prev = GENESIS_HASH
    for (let seq = 1; seq <= n; seq++) {
      const unsigned = {
        register,
        seq,
        ts: new Date(0).toISOString(),
        kind: 'k',
        actor: 'a',
        details: { seq },
        prev_hash: prev,
      }
      const hashed = { ...unsigned, hash: entryHash(unsigned) }
      const entry = { ...hashed, signature: signEntry(hashed, key.privateKey) }
      out.push(entry)
      prev = entry.hash
    }
    return out
  }

  it('names an entry inserted with the rest renumbered and relinked as inserted', async () => {
    const entries = chain(6)
    // Insert a forged entry after 3 and renumber 4..6 to 5..7 with recomputed hashes, keeping
    // entry 4's link to 3 (the forger did not rewrite the links).
    const forgedUnsigned = {
      register: 'itsd' as const,
      seq: 4,
      ts: new Date(0).toISOString(),
      kind: 'k',
      actor: 'm',
      details: {},
      prev_hash: entries[2]?.hash ?? '',
    }
    const forged = { ...forgedUnsigned, hash: entryHash(forgedUnsigned) }
    const renumbered = entries.slice(3).map((e) => {
      const moved = { ...e, seq: e.seq + 1 }
      return { ...moved, hash: entryHash(moved) }
    })
    const report = await verifyEntries(
      [...entries.slice(0, 3), forged, ...renumbered],
      [],
      key.publicKey,
    )
    expect(report.problems[0]).toEqual(problem(4, 'inserted'))
  })

  it('rejects entries of the other register mixed in', async () => {
    const report = await verifyEntries(
      [...chain(3), chain(1, 'oios')[0] as RegisterEntry],
      [],
      key.publicKey,
      'itsd',
    )
    expect(report.problems).toEqual([problem(1, 'inserted')])
  })
})

describe('each entry signed on its own', () => {
  /** An entry appended at ITSD's tail with a correct hash chain, as a holder of the store can. */
  async function forgeTail(
    signature: (entry: RegisterEntry) => string,
    caseId?: string,
  ): Promise<RegisterEntry> {
    const last = (await rawEntries("register = 'itsd'")).at(-1)
    const unsigned = {
      register: 'itsd' as const,
      seq: Number(last?.seq) + 1,
      ts: new Date().toISOString(),
      kind: caseId === undefined ? 'roles confirmed' : 'grants_issued',
      actor: 'u-second-admin',
      ...(caseId === undefined ? {} : { case_id: caseId }),
      details: (caseId === undefined
        ? { user_id: 'u-mallory', roles: ['itsd_investigator'] }
        : {
            state: 'active',
            window: { start: 'x', end: 'y' },
            agents: ['ag-mallory'],
          }) as RegisterEntry['details'],
      prev_hash: String(last?.hash),
    }
    const entry: RegisterEntry = { ...unsigned, hash: entryHash(unsigned) }
    await insertRows(h.store, 'tally.register_entries', [
      {
        register: 'itsd',
        seq: entry.seq,
        ts: Date.parse(entry.ts),
        kind: entry.kind,
        actor: entry.actor,
        case_id: entry.case_id ?? '',
        entry: canonicalJson(entry),
        prev_hash: entry.prev_hash,
        hash: entry.hash,
        signature: signature(entry),
      },
    ])
    return entry
  }

  it('writes each entry with the register key signature over its bytes, seq and links included', async () => {
    const rows = await rawEntries("register = 'itsd'")
    expect(rows.every((r) => r.signature !== '')).toBe(true)
    const entries = await register.entries('itsd', { limit: 1000 })
    expect(entries.every((e) => entrySignatureValid(e, publicJwk))).toBe(true)
    // The signature covers the seq: the same content at another seq does not verify.
    const moved = { ...(entries[4] as RegisterEntry), seq: 99 }
    expect(entrySignatureValid(moved, publicJwk)).toBe(false)
  })

  it.each([
    ['unsigned', () => ''],
    [
      'signed with another key',
      (e: RegisterEntry) => signEntry(e, generateKeyPairSync('ed25519').privateKey),
    ],
  ])(
    'a tail entry %s: verify names it, no checkpoint over it, nothing trusts it',
    async (_, sign) => {
      await snapshot()
      const forged = await forgeTail(sign)
      const report = await register.verify('itsd')
      expect(report.problems).toEqual([problem(forged.seq, 'bad-signature')])
      // A restarted collector (no cached tree) refuses to sign over it, and says so once.
      const told: unknown[] = []
      const restarted = new Register(h.store, signingKey, {
        onCheckpointError: (err) => told.push(err),
      })
      await expect(restarted.checkStored('itsd')).rejects.toBeInstanceOf(RegisterIntegrityError)
      await restarted.append({ register: 'itsd', kind: 'k', actor: 'a', details: {} })
      await restarted.append({ register: 'itsd', kind: 'k', actor: 'a', details: {} })
      expect(told).toEqual([])
      expect((await restarted.checkpoints('itsd')).at(-1)?.size).toBe(N)
      // The entries after it are the collector's; the forged one is in no trusted page.
      const trusted = await restarted.trustedEntriesPage('itsd', { from: 1, limit: 10_000 })
      expect(trusted.entries.map((e) => e.seq)).toEqual([
        ...Array.from({ length: N }, (_, i) => i + 1),
        forged.seq + 1,
        forged.seq + 2,
      ])
    },
  )

  it('an entry from before signatures stands only under a signed checkpoint', async () => {
    await snapshot()
    // Entries 1 to 50 as a store from before migration 013 holds them: no signature column.
    await mutate("ALTER TABLE tally.register_entries UPDATE signature = '' WHERE register = 'itsd'")
    const fresh = new Register(h.store, signingKey)
    expect((await fresh.verify('itsd')).ok).toBe(true)
    await fresh.checkStored('itsd')
    const page = await fresh.trustedEntriesPage('itsd', { from: 1, limit: 10_000 })
    expect(page.entries).toHaveLength(N)
    // Without the checkpoints that covered them, they are nobody's.
    await mutate(
      "ALTER TABLE tally.register_checkpoints DELETE WHERE register = 'itsd' AND size > 40",
    )
    const later = new Register(h.store, signingKey)
    const report = await later.verify('itsd')
    expect(report.problems.map((p) => p.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 41))
    expect(kinds(report)).toEqual(['bad-signature'])
    const trusted = await later.trustedEntriesPage('itsd', { from: 1, limit: 10_000 })
    expect(trusted.entries.map((e) => e.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
    await expect(later.checkStored('itsd')).rejects.toBeInstanceOf(RegisterIntegrityError)
  })

  it("says what a case's signed entries record, read again after every append", async () => {
    await snapshot()
    const caseId = 'c-onrecord'
    expect(await register.caseOnRecord('itsd', caseId)).toBeUndefined()
    await register.append({
      register: 'itsd',
      kind: 'case_approved',
      actor: 'u-approver',
      case_id: caseId,
      details: { state: 'approved' },
    })
    expect(await register.caseOnRecord('itsd', caseId)).toMatchObject({ state: 'approved' })
    await register.append({
      register: 'itsd',
      kind: 'grants_issued',
      actor: 'u-approver',
      case_id: caseId,
      details: { state: 'active', window: { start: 'a', end: 'b' }, agents: ['ag-1'] },
    })
    // A drill-down's entry records no state: the case stays active on record.
    await register.append({
      register: 'itsd',
      kind: 'drilldown',
      actor: 'u-inv',
      case_id: caseId,
      details: { rows: 1 },
    })
    expect(await register.caseOnRecord('itsd', caseId)).toMatchObject({
      state: 'active',
      kind: 'grants_issued',
      grants: { start: 'a', end: 'b', agents: ['ag-1'] },
    })
    // OIOS's register records nothing of it; an entry forged for it there counts for nothing.
    expect(await register.caseOnRecord('oios', caseId)).toBeUndefined()
    await register.append({
      register: 'itsd',
      kind: 'case_closed',
      actor: 'u-approver',
      case_id: caseId,
      details: { state: 'closed' },
    })
    expect(await register.caseOnRecord('itsd', caseId)).toMatchObject({ state: 'closed' })
    // A holder's "grants issued" after the closing, unsigned: the case stays closed on record.
    await forgeTail(() => '', caseId)
    const fresh = new Register(h.store, signingKey)
    expect(await fresh.caseOnRecord('itsd', caseId)).toMatchObject({ state: 'closed' })
  })
})
