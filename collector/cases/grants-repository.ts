/**
 * `tally.grants`: the one place that knows its columns. A grant is written once when issued and
 * once more when revoked (a newer version with `revoked_at`); reads go through FINAL so only the
 * latest version of each grant counts.
 */
import { z } from 'zod'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'

/** A grant as on record. Times are epoch milliseconds. */
export interface GrantRecord {
  grant_id: string
  case_id: string
  /** Who the grant is for: an agent's capture (`GRANT_AUDIENCE`) or a person's drill-down. */
  audience: string
  /** The agent id or the user id the grant was signed for. */
  subject: string
  /** The signed grant (a JWT) as handed out. */
  token: string
  window_start: number
  window_end: number
  issued_at: number
  revoked: boolean
  version: number
}

/** What an issuer records; the repository adds the unrevoked state and the version. */
export type NewGrant = Omit<GrantRecord, 'revoked' | 'version'>

const COLUMNS = `grant_id, case_id, audience, subject, token,
  toUnixTimestamp64Milli(window_start) AS window_start,
  toUnixTimestamp64Milli(window_end) AS window_end,
  toUnixTimestamp64Milli(issued_at) AS issued_at,
  revoked_at IS NOT NULL AS revoked, version`

/*
 * Conditions name the table's columns through the alias `g`: unqualified, `window_end` would be
 * the select list's millisecond number of the same name, and comparing that number with a time
 * kept grants whose window had ended.
 */

const GrantRow = z
  .object({
    grant_id: z.string(),
    case_id: z.string(),
    audience: z.string(),
    subject: z.string(),
    token: z.string(),
    window_start: z.number(),
    window_end: z.number(),
    issued_at: z.number(),
    revoked: z.number(),
    version: z.number(),
  })
  .transform((row): GrantRecord => ({ ...row, revoked: row.revoked !== 0 }))

export class GrantsRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  async insert(grants: readonly NewGrant[]): Promise<void> {
    await insertRows(
      this.#store,
      'tally.grants',
      grants.map((g) => ({ ...g, revoked_at: null, version: g.issued_at })),
    )
  }

  /** A grant as on record, revoked or not; undefined only for an id never issued. */
  async find(grantId: string): Promise<GrantRecord | undefined> {
    const [row] = await this.#select('g.grant_id = {id:String}', { id: grantId })
    return row
  }

  /** The case's grants that are not revoked (expired ones included). */
  async unrevokedOfCase(caseId: string): Promise<GrantRecord[]> {
    return this.#select('g.case_id = {id:String} AND g.revoked_at IS NULL', { id: caseId })
  }

  /** Marks the grants revoked at `now`; a revoked grant stays on record. */
  async revoke(grants: readonly GrantRecord[], now: number): Promise<void> {
    await insertRows(
      this.#store,
      'tally.grants',
      grants.map(({ revoked: _revoked, ...g }) => ({
        ...g,
        revoked_at: now,
        version: Math.max(now, g.version + 1),
      })),
    )
  }

  /** The unrevoked grants for one audience and subject whose window has not ended at `now`. */
  async currentFor(audience: string, subject: string, now: number): Promise<GrantRecord[]> {
    return this.#select(
      `g.audience = {aud:String} AND g.subject = {subject:String} AND g.revoked_at IS NULL
         AND g.window_end > fromUnixTimestamp64Milli({now:Int64})`,
      { aud: audience, subject, now },
    )
  }

  /** The unrevoked grant of a case for one audience and subject that ends last. */
  async latestOfCaseFor(
    caseId: string,
    audience: string,
    subject: string,
  ): Promise<GrantRecord | undefined> {
    const [row] = await this.#select(
      `g.case_id = {id:String} AND g.audience = {aud:String} AND g.subject = {subject:String}
         AND g.revoked_at IS NULL
       ORDER BY g.window_end DESC LIMIT 1`,
      { id: caseId, aud: audience, subject },
    )
    return row
  }

  /** `where` names columns as `g.<column>` (see above). */
  #select(where: string, params: Record<string, unknown>): Promise<GrantRecord[]> {
    return selectParsed(
      this.#store,
      GrantRow,
      `SELECT ${COLUMNS} FROM tally.grants AS g FINAL WHERE ${where}`,
      params,
    )
  }
}
