/**
 * `tally_restricted.exports`: the files of export bundles, one row per file, sealed with the case
 * key (export.ts seals and opens them). Partitioned by case like every tier I table, so the purge
 * takes them with the rest.
 */
import { z } from 'zod'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'
import type { Sealed } from './keys.ts'

/** Where a file belongs: its case, its bundle and its name in the bundle. */
export interface ExportFileId {
  case_id: string
  export_id: string
  name: string
}

/** A file as stored: its plain size and digest beside its sealed bytes. */
export interface StoredExportFile {
  bytes: number
  sha256: string
  key_version: number
  sealed: Sealed
}

const FileRow = z
  .object({
    key_version: z.number(),
    sha256: z.string(),
    nonce: z.string(),
    ciphertext: z.string(),
    tag: z.string(),
  })
  .transform(
    ({ nonce, ciphertext, tag, ...rest }): Omit<StoredExportFile, 'bytes'> => ({
      ...rest,
      sealed: { nonce, ciphertext, tag },
    }),
  )

/** A bundle as its stored rows tell it, without opening any file (export.ts names the manifest). */
export interface StoredBundle {
  export_id: string
  /** Epoch milliseconds. */
  created_at: number
  created_by: string
  manifest_sha256: string
  /** The data files (the manifest not counted), and their plain size together. */
  files: number
  bytes: number
}

const BundleRow = z.object({
  export_id: z.string(),
  created_at: z.coerce.number(),
  created_by: z.string(),
  manifest_sha256: z.string(),
  files: z.coerce.number(),
  bytes: z.coerce.number(),
})

export class ExportsRepository {
  readonly #store: Store
  readonly #cluster: string | undefined

  /** `cluster`: set on a cluster, where a bundle is dropped from the `_local` table ON CLUSTER. */
  constructor(store: Store, cluster?: string) {
    this.#store = store
    this.#cluster = cluster
  }

  async insert(
    id: ExportFileId,
    file: StoredExportFile,
    createdBy: string,
    createdAt: number,
  ): Promise<void> {
    const { sealed, ...plain } = file
    await insertRows(this.#store, 'tally_restricted.exports', [
      { ...id, created_at: createdAt, created_by: createdBy, ...plain, ...sealed },
    ])
  }

  async find(id: ExportFileId): Promise<Omit<StoredExportFile, 'bytes'> | undefined> {
    const [row] = await selectParsed(
      this.#store,
      FileRow,
      `SELECT key_version, sha256, nonce, ciphertext, tag FROM tally_restricted.exports
       WHERE case_id = {case_id:String} AND export_id = {export_id:String} AND name = {name:String}
       LIMIT 1`,
      { ...id },
    )
    return row
  }

  /**
   * The case's bundles, oldest first, from the plain columns only. A bundle whose manifest is
   * not stored (its files being written, or dropped for want of a register entry) is left out.
   */
  async bundles(caseId: string, manifestName: string): Promise<StoredBundle[]> {
    return await selectParsed(
      this.#store,
      BundleRow,
      `SELECT export_id,
         toUnixTimestamp64Milli(min(created_at)) AS created_at,
         any(created_by) AS created_by,
         anyIf(sha256, name = {manifest:String}) AS manifest_sha256,
         countIf(name != {manifest:String}) AS files,
         sumIf(bytes, name != {manifest:String}) AS bytes
       FROM tally_restricted.exports
       WHERE case_id = {case_id:String}
       GROUP BY export_id
       HAVING countIf(name = {manifest:String}) > 0
       ORDER BY created_at, export_id`,
      { case_id: caseId, manifest: manifestName },
    )
  }

  /** Removes every file of a bundle, waiting until they are gone. */
  async drop(caseId: string, exportId: string): Promise<void> {
    const table =
      this.#cluster === undefined
        ? 'tally_restricted.exports'
        : `tally_restricted.exports_local ON CLUSTER ${this.#cluster}`
    await this.#store.command({
      query: `ALTER TABLE ${table} DELETE
        WHERE case_id = {case_id:String} AND export_id = {export_id:String}`,
      query_params: { case_id: caseId, export_id: exportId },
      clickhouse_settings: { mutations_sync: '2' },
    })
  }
}
