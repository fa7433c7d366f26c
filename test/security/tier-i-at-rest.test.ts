/**
 * Attack 7 (part): tier I flows, DNS names and visited sites sat in plaintext at rest, and a
 * dropped partition lingers on disk for minutes. Replayed as someone holding the collector's
 * data directory (not the master key, which lives outside it: cases.master_key_file):
 *
 * - after restricted ingest through the real collector, every tally_restricted table read raw
 *   with SQL, and the raw bytes of every file of the data directory, hold none of the subject's
 *   addresses, DNS names or site names (a plaintext marker in the case's description is found by
 *   the same scan, so the scan can see what is stored in clear);
 * - the rows copied before the purge (as a lingering part or a backup would keep them) open no
 *   more after it, with any key left in the store;
 * - a row moved to another case does not open;
 * - the drill-down still returns the right values;
 * - exported CSV cells that a spreadsheet would run as formulas are escaped.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Collector } from '../../collector/app.ts'
import { CaseKeys, loadOrCreateMasterKey, masterKeyFile } from '../../collector/restricted/keys.ts'
import { openRow, type SealedCategory } from '../../collector/restricted/sealed.ts'
import { selectRows } from '../../collector/store/rows.ts'
import type { RestrictedBatch } from '../../protocol/grants.ts'
import {
  type CasesHarness,
  call,
  iso,
  marker,
  openCasesHarness,
  postTierI,
  type TestAgent,
  type TestUser,
} from '../collector/cases-harness.ts'

const HOUR = 3_600_000
const SUBJECT = '10.77.41.5'
const PEER = '203.0.113.77'
const NAME = `needle-${marker('q')}.example`
const SITE = `site-${marker('s')}.example`
const FORMULA = '=HYPERLINK("http://evil.example","x")'

let h: CasesHarness
let keyDir: string
let collector: Collector
let investigator: TestUser
let official: TestUser
let agent: TestAgent
let caseId: string
let grantId: string
let access: string
const description = marker('plaintext-control')

/** Every file under `dir`, recursively. */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return files(path)
    return e.isFile() ? [path] : []
  })
}

/** The files of the data directory holding `needle` in their raw bytes. */
function filesHolding(needle: string | Buffer): string[] {
  const bytes = typeof needle === 'string' ? Buffer.from(needle, 'utf8') : needle
  return files(h.dir).filter((f) => statSync(f).size > 0 && readFileSync(f).includes(bytes))
}

/** Every row of every tally_restricted table, as the JSON the engine gives. */
async function restrictedDump(): Promise<string> {
  const tables = await selectRows<{ name: string }>(
    h.store,
    "SELECT name FROM system.tables WHERE database = 'tally_restricted'",
  )
  expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['flows', 'dns', 'web']))
  let out = ''
  for (const { name } of tables) {
    out += JSON.stringify(await selectRows(h.store, `SELECT * FROM tally_restricted.${name}`))
  }
  return out
}

const drill = async (category: string) => {
  const res = await collector.app.request(`/v1/cases/${caseId}/${category}`, {
    headers: { authorization: `Bearer ${investigator.token}`, 'x-tally-grant': access },
  })
  const text = await res.text()
  expect(res.status, text).toBe(200)
  return (JSON.parse(text) as { rows: Record<string, unknown>[] }).rows
}

interface RawRow {
  category: SealedCategory
  case_id: string
  grant_id: string
  agent_id: string
  key_version: number
  start_ms?: number
  end_ms?: number
  flow_key?: string
  ts_ms?: number
  row_id?: string
  nonce: string
  ciphertext: string
  tag: string
}

/** The case's sealed rows, raw, as a copy of the data directory would keep them. */
async function rawRows(): Promise<RawRow[]> {
  const flows = await selectRows<RawRow>(
    h.store,
    `SELECT 'flows' AS category, case_id, grant_id, agent_id, key_version, flow_key,
       toUnixTimestamp64Milli(start) AS start_ms, toUnixTimestamp64Milli(\`end\`) AS end_ms,
       nonce, ciphertext, tag FROM tally_restricted.flows WHERE case_id = {id:String}`,
    { id: caseId },
  )
  const events: RawRow[] = []
  for (const category of ['dns', 'web'] as const) {
    events.push(
      ...(await selectRows<RawRow>(
        h.store,
        `SELECT '${category}' AS category, case_id, grant_id, agent_id, key_version, row_id,
           toUnixTimestamp64Milli(ts) AS ts_ms, nonce, ciphertext, tag
         FROM tally_restricted.${category} WHERE case_id = {id:String}`,
        { id: caseId },
      )),
    )
  }
  return [...flows, ...events]
}

const clearOf = (row: RawRow) =>
  row.category === 'flows'
    ? { start: Number(row.start_ms), end: Number(row.end_ms), flow_key: row.flow_key ?? '' }
    : { ts: Number(row.ts_ms), row_id: row.row_id ?? '' }

/** Opens a raw row with `key`, as if it belonged to `asCase`; undefined when it does not open. */
function tryOpen(key: Buffer, row: RawRow, asCase = row.case_id): string | undefined {
  try {
    const id = { case_id: asCase, grant_id: row.grant_id, agent_id: row.agent_id }
    return JSON.stringify(openRow(key, row.category, id, clearOf(row), row))
  } catch {
    return undefined
  }
}

beforeAll(async () => {
  h = await openCasesHarness()
  keyDir = await mkdtemp(join(tmpdir(), 'tally-master-key-'))
  collector = h.collectorWith({ master_key_file: join(keyDir, 'case-master.key') })
  investigator = await h.user(['oios_investigator'], 'oios investigator')
  official = await h.user(['receiving_official'], 'official')
  agent = await h.agent('pc-subject')
  const now = Date.now()
  const opened = await call(collector.app, 'POST', '/v1/cases/oios', investigator.token, {
    description,
    categories: ['flows', 'dns', 'web'],
    subjects: [{ agent_id: agent.agent_id, addresses: [] }],
    window: { start: iso(now - HOUR), end: iso(now + 6 * HOUR) },
    receiving_official: official.user_id,
  })
  expect(opened.status, opened.text).toBe(201)
  caseId = (opened.body as { case_id: string }).case_id
  const grants = await call(collector.app, 'GET', '/v1/agents/grants', agent.credential)
  grantId = (grants.body as { grants: { grant_id: string }[] }).grants[0]?.grant_id as string
  const t = Date.now() + 100
  const batch: RestrictedBatch = {
    version: 1,
    agent_id: agent.agent_id,
    grant_id: grantId,
    seq: 1,
    flows: [
      {
        start: t,
        end: t + 2_000,
        ip_version: 4,
        protocol: 6,
        src: SUBJECT,
        dst: PEER,
        src_port: 51_234,
        dst_port: 8443,
        bytes: 4_321,
        packets: 7,
        tcp_flags: 0x1b,
        community_id: '1:needle-community-id=',
      },
    ],
    dns: [
      { ts: t + 10, client: SUBJECT, server: PEER, query: NAME, qtype: 'A', rcode: 'NOERROR' },
      { ts: t + 20, client: SUBJECT, server: PEER, query: FORMULA, qtype: 'TXT', rcode: '' },
    ],
    web: [
      { ts: t + 30, client: SUBJECT, server: PEER, server_port: 8443, kind: 'tls-sni', name: SITE },
    ],
    pcap: [],
  }
  const res = await postTierI(collector.app, agent.credential, batch)
  expect(res.status, await res.clone().text()).toBe(200)
  const grant = await call(
    collector.app,
    'GET',
    `/v1/cases/${caseId}/access-grant`,
    investigator.token,
  )
  expect(grant.status, grant.text).toBe(200)
  access = (grant.body as { token: string }).token
})

afterAll(async () => {
  await h?.close()
  if (keyDir !== undefined) await rm(keyDir, { recursive: true, force: true })
})

describe('tier I at rest, as the holder of the data directory sees it', () => {
  const needles = [SUBJECT, PEER, NAME, SITE, 'needle-community-id', 'HYPERLINK']

  it('the drill-down returns the right values', async () => {
    expect(await drill('flows')).toEqual([
      expect.objectContaining({ src: SUBJECT, dst: PEER, dst_port: 8443, bytes: 4_321 }),
    ])
    expect((await drill('dns')).map((r) => r.query)).toEqual([NAME, FORMULA])
    expect(await drill('web')).toEqual([
      expect.objectContaining({ name: SITE, server: PEER, server_port: 8443 }),
    ])
  })

  it('no tally_restricted table holds a tier I value in clear', async () => {
    const dump = await restrictedDump()
    expect(dump).toContain(caseId)
    for (const needle of needles) expect(dump, needle).not.toContain(needle)
  })

  it('no file of the data directory holds one in its raw bytes, nor the master key', async () => {
    // The scan sees what the store keeps in clear: the case's description is in tally.cases.
    expect(filesHolding(description).length).toBeGreaterThan(0)
    for (const needle of needles) expect(filesHolding(needle), needle).toEqual([])
    const master = readFileSync(join(keyDir, 'case-master.key'))
    expect(master.length).toBe(32)
    expect(filesHolding(master)).toEqual([])
    expect(files(h.dir)).not.toContain(masterKeyFile(h.dir))
  })

  it('a row moved to another case does not open, even with the key', async () => {
    const master = loadOrCreateMasterKey(join(keyDir, 'case-master.key'))
    const rows = await rawRows()
    expect(rows.map((r) => r.category).sort()).toEqual(['dns', 'dns', 'flows', 'web'])
    const key = await new CaseKeys(h.store, master).get(caseId, Number(rows[0]?.key_version))
    for (const row of rows) {
      expect(tryOpen(key, row), row.category).toBeDefined()
      expect(tryOpen(key, row, 'c-0000000000000000'), row.category).toBeUndefined()
      // Nor at another time.
      expect(tryOpen(key, { ...row, start_ms: 1, ts_ms: 1 }), row.category).toBeUndefined()
    }
    expect(tryOpen(key, rows.find((r) => r.category === 'dns') as RawRow)).toContain(NAME)
  })

  it('exports a subject-made formula as text in CSV, and as it was in JSON', async () => {
    const headers = { authorization: `Bearer ${investigator.token}`, 'x-tally-grant': access }
    const made = await collector.app.request(`/v1/cases/${caseId}/exports`, {
      method: 'POST',
      headers,
    })
    const text = await made.text()
    expect(made.status, text).toBe(201)
    const { export_id } = JSON.parse(text) as { export_id: string }
    const file = async (name: string) => {
      const res = await collector.app.request(
        `/v1/cases/${caseId}/exports/${export_id}/files/${name}`,
        { headers },
      )
      expect(res.status).toBe(200)
      return await res.text()
    }
    const csv = (await file('dns.csv')).split('\r\n')
    expect(csv[2]).toBe(
      `${agent.agent_id},${csv[2]?.split(',')[1]},${SUBJECT},${PEER},"'=HYPERLINK(""http://evil.example"",""x"")",TXT,`,
    )
    expect(csv.some((line) => /(^|,)"?[=+\-@]/.test(line))).toBe(false)
    const json = JSON.parse(await file('dns.json')) as { query: string }[]
    expect(json.map((r) => r.query)).toEqual([NAME, FORMULA])
  })

  it('after the purge, rows copied before it open with no key left in the store', async () => {
    const copied = await rawRows()
    expect(copied.length).toBe(4)
    const closed = await call(
      collector.app,
      'POST',
      `/v1/cases/${caseId}/closing`,
      investigator.token,
      { outcome: 'done (test)' },
    )
    expect(closed.status, closed.text).toBe(200)
    expect(await rawRows()).toEqual([])
    // Even holding the master key: no wrapped key of the case opens any more, and none of the
    // keys the store still holds (any case's) opens a copied row.
    const master = loadOrCreateMasterKey(join(keyDir, 'case-master.key'))
    const keys = new CaseKeys(h.store, master)
    await expect(keys.get(caseId, Number(copied[0]?.key_version))).rejects.toThrow(/destroyed/)
    const live = await selectRows<{ case_id: string; version: number }>(
      h.store,
      "SELECT case_id, version FROM tally.case_keys WHERE key_ciphertext != ''",
    )
    for (const { case_id, version } of live) {
      const other = await keys.get(case_id, Number(version))
      for (const row of copied) expect(tryOpen(other, row)).toBeUndefined()
    }
  })
})
