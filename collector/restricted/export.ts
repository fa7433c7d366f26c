/**
 * Export bundles (bulletin 8.5c): what an investigator retrieves for the requesting office, as
 * files with SHA-256 digests in a manifest, which the receiving official acknowledges with their
 * own credential. The receipt ends the bundle's life: the case's tier I data is purged (8.5e).
 *
 * A bundle holds, for the grant's categories only: flows.json/.csv, dns.json/.csv,
 * web.json/.csv and packets.pcap (the case's decrypted segments joined into one classic pcap: a
 * single global header, then every record; a further packets-linktype-N.pcap per other link
 * type, since a pcap file has one). Files are stored in `tally_restricted.exports`, encrypted
 * with the case key, so the purge (key destruction, partition drop) takes them too. CSV cells
 * that a spreadsheet would take for a formula are escaped (csvField); the JSON files keep every
 * value exactly as captured.
 */
import { randomBytes } from 'node:crypto'
import type { z } from 'zod'
import { type ExportList, ExportManifest, type Receipt } from '../../protocol/api/restricted.ts'
import type { Access } from './access.ts'
import { sha256Hex } from './common.ts'
import { toCsv } from './csv.ts'
import { queryRecords } from './drilldown.ts'
import type { ExportsRepository } from './exports-repository.ts'
import { segmentAad } from './ingest.ts'
import { type CaseKeys, seal, unseal } from './keys.ts'
import { joinSegments, type ParsedSegment, parseSegment } from './pcap.ts'
import type { TierIRecordsRepository } from './records-repository.ts'

/** Rows per category in one bundle; a larger export is refused rather than cut short. */
export const EXPORT_MAX_ROWS = 1_000_000

export const MANIFEST = 'manifest.json'

/** A bundle's manifest.json, as the API contract describes it. */
export type Manifest = z.output<typeof ExportManifest>

/** One bundle of the case's listing (GET /v1/cases/{id}/exports). */
export type ExportListed = ExportList['exports'][number]

export class ExportTooLarge extends Error {
  override name = 'ExportTooLarge'
}

export const EXPORT_ID = /^x-[0-9a-f]{16}$/
export const FILE_NAME = /^[a-z0-9][a-z0-9.-]{0,63}$/

/** The case's packet segments in scope, decrypted and parsed, in time order. */
async function loadSegments(
  records: TierIRecordsRepository,
  keys: CaseKeys,
  access: Access,
): Promise<ParsedSegment[]> {
  const { grant } = access
  const agents = grant.subjects.map((s) => s.agent_id)
  const out: ParsedSegment[] = []
  for (const row of await records.segments(grant.case_id, agents, grant.window)) {
    const key = await keys.get(grant.case_id, row.key_version)
    const aad = segmentAad(grant.case_id, row.grant_id, row.agent_id, row.segment_index)
    out.push(parseSegment(unseal(key, row.sealed, aad)))
  }
  return out
}

export const newExportId = (): string => `x-${randomBytes(8).toString('hex')}`

/** Builds the bundle's files (not stored yet): name → bytes, the manifest last. */
export async function buildBundle(
  records: TierIRecordsRepository,
  keys: CaseKeys,
  access: Access,
  exportId: string,
  now = Date.now(),
): Promise<{ files: Map<string, Buffer>; manifest: Manifest; manifestBytes: Buffer }> {
  const { grant } = access
  const files = new Map<string, Buffer>()
  for (const category of ['flows', 'dns', 'web'] as const) {
    if (!grant.categories.includes(category)) continue
    const { rows, truncated } = await queryRecords(
      records,
      keys,
      category,
      grant.case_id,
      grant,
      undefined,
      EXPORT_MAX_ROWS,
      EXPORT_MAX_ROWS,
    )
    if (truncated) {
      throw new ExportTooLarge(
        `more than ${EXPORT_MAX_ROWS} ${category} records are stored in the grant's window`,
      )
    }
    files.set(`${category}.json`, Buffer.from(`${JSON.stringify(rows, null, 2)}\n`, 'utf8'))
    files.set(`${category}.csv`, Buffer.from(toCsv(category, rows), 'utf8'))
  }
  if (grant.categories.includes('packets')) {
    const joined = joinSegments(await loadSegments(records, keys, access))
    joined.forEach(([linkType, bytes], i) => {
      files.set(i === 0 ? 'packets.pcap' : `packets-linktype-${linkType}.pcap`, bytes)
    })
  }
  const manifest: Manifest = {
    case_id: grant.case_id,
    export_id: exportId,
    created_at: new Date(now).toISOString(),
    created_by: access.user.user_id,
    grant_id: grant.grant_id,
    files: [...files].map(([name, bytes]) => ({
      name,
      bytes: bytes.length,
      sha256: sha256Hex(bytes),
    })),
  }
  const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8')
  return { files, manifest, manifestBytes }
}

const fileAad = (caseId: string, exportId: string, name: string) =>
  `tally-export:${caseId}:${exportId}:${name}`

/** Stores every file of a bundle, manifest included, encrypted with the case key. */
export async function storeBundle(
  exports: ExportsRepository,
  keys: CaseKeys,
  caseId: string,
  exportId: string,
  createdBy: string,
  files: Map<string, Buffer>,
  manifestBytes: Buffer,
  now = Date.now(),
): Promise<void> {
  const { version, key } = await keys.current(caseId)
  const all: [string, Buffer][] = [...files, [MANIFEST, manifestBytes]]
  // One insert per file: a packet capture can be large, and each row is one file.
  for (const [name, bytes] of all) {
    await exports.insert(
      { case_id: caseId, export_id: exportId, name },
      {
        bytes: bytes.length,
        sha256: sha256Hex(bytes),
        key_version: version,
        sealed: seal(key, bytes, fileAad(caseId, exportId, name)),
      },
      createdBy,
      now,
    )
  }
}

/** The case's stored bundles as a receiving official picks one: ids, time, digest, sizes. */
export async function listBundles(
  exports: ExportsRepository,
  caseId: string,
): Promise<ExportListed[]> {
  const stored = await exports.bundles(caseId, MANIFEST)
  return stored.map((b) => ({ ...b, created_at: new Date(b.created_at).toISOString() }))
}

/** One stored file, decrypted and checked against its digest; undefined when there is none. */
export async function readBundleFile(
  exports: ExportsRepository,
  keys: CaseKeys,
  caseId: string,
  exportId: string,
  name: string,
): Promise<Buffer | undefined> {
  const file = await exports.find({ case_id: caseId, export_id: exportId, name })
  if (file === undefined) return undefined
  const key = await keys.get(caseId, file.key_version)
  const bytes = unseal(key, file.sealed, fileAad(caseId, exportId, name))
  if (sha256Hex(bytes) !== file.sha256)
    throw new Error(`export file ${name} does not match its digest`)
  return bytes
}

/** What a receipt gets wrong against the manifest, one line each; empty when it matches. */
export function receiptMismatches(manifestBytes: Buffer, receipt: Receipt): string[] {
  // Our own file, read back through its digest: checked all the same rather than cast.
  const manifest = ExportManifest.parse(JSON.parse(manifestBytes.toString('utf8')))
  const problems: string[] = []
  if (receipt.manifest_sha256 !== sha256Hex(manifestBytes)) {
    problems.push('manifest_sha256 does not match the manifest')
  }
  const listed = new Map(manifest.files.map((f) => [f.name, f.sha256]))
  const seen = new Set<string>()
  for (const f of receipt.files) {
    if (seen.has(f.name)) problems.push(`${f.name} is listed twice`)
    seen.add(f.name)
    const expected = listed.get(f.name)
    if (expected === undefined) problems.push(`${f.name} is not in the bundle`)
    else if (expected !== f.sha256) problems.push(`${f.name}: the digest does not match`)
  }
  for (const name of listed.keys()) {
    if (!seen.has(name)) problems.push(`${name} is missing from the receipt`)
  }
  return problems
}
