/**
 * `tally.case_keys`: every case key, wrapped with the master key (keys.ts does the wrapping).
 * A key is never deleted: destroying it overwrites its wrapped bytes and marks it destroyed, so
 * that whatever ciphertext survives names a key that is gone.
 */
import { z } from 'zod'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'

/** A live key as stored: its version and its bytes wrapped with the master key (base64). */
export interface WrappedCaseKey {
  version: number
  wrapped: string
}

const KeyRow = z
  .object({ key_ciphertext: z.string(), version: z.number() })
  .transform((row): WrappedCaseKey => ({ version: row.version, wrapped: row.key_ciphertext }))

export class CaseKeysRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  /** The case's newest key not destroyed, if any. */
  async newest(caseId: string): Promise<WrappedCaseKey | undefined> {
    const [row] = await selectParsed(
      this.#store,
      KeyRow,
      `SELECT key_ciphertext, version FROM tally.case_keys
       WHERE case_id = {id:String} AND destroyed_at IS NULL AND key_ciphertext != ''
       ORDER BY version DESC LIMIT 1`,
      { id: caseId },
    )
    return row
  }

  /** One version of the case's key, unless it is destroyed (its bytes may still be empty). */
  async byVersion(caseId: string, version: number): Promise<WrappedCaseKey | undefined> {
    const [row] = await selectParsed(
      this.#store,
      KeyRow,
      `SELECT key_ciphertext, version FROM tally.case_keys
       WHERE case_id = {id:String} AND version = {version:UInt64} AND destroyed_at IS NULL
       LIMIT 1`,
      { id: caseId, version },
    )
    return row
  }

  async insert(caseId: string, key: WrappedCaseKey, createdAt: number): Promise<void> {
    await insertRows(this.#store, 'tally.case_keys', [
      {
        case_id: caseId,
        key_ciphertext: key.wrapped,
        created_at: createdAt,
        destroyed_at: null,
        version: key.version,
      },
    ])
  }

  /** Destroys every key of a case. Needs no master key: it overwrites the wrapped keys. */
  async destroyAll(caseId: string, now: number): Promise<void> {
    await this.#store.command({
      query: `ALTER TABLE tally.case_keys
        UPDATE key_ciphertext = '', destroyed_at = fromUnixTimestamp64Milli({now:Int64})
        WHERE case_id = {id:String} AND destroyed_at IS NULL`,
      query_params: { id: caseId, now },
      // Wait for the rewrite: the purge is done only when the keys are gone.
      clickhouse_settings: { mutations_sync: '2' },
    })
  }
}
