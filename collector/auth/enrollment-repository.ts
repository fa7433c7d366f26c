/**
 * tally.enroll_tokens and tally.enroll_token_uses: their SQL, columns and row schemas. A use is
 * appended, never changed; a token is rewritten with a higher version (ReplacingMergeTree).
 */
import { z } from 'zod'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'

const TOKENS = 'tally.enroll_tokens'
const USES = 'tally.enroll_token_uses'

const TOKEN_COLUMNS = `token_id, site, secret_sha256, created_by, max_uses, version,
  toUnixTimestamp64Milli(created_at) AS created_at,
  toUnixTimestamp64Milli(expires_at) AS expires_at,
  toUnixTimestamp64Milli(revoked_at) AS revoked_at`

// 64-bit integers and DateTime64 milliseconds come back as JSON strings.
export const EnrollTokenRow = z.object({
  token_id: z.string(),
  site: z.string(),
  /** The token's keyed hash (tokens.ts; the column is named for its first form). */
  secret_sha256: z.string(),
  created_by: z.string(),
  max_uses: z.coerce.number(),
  version: z.coerce.number(),
  created_at: z.coerce.number(),
  expires_at: z.coerce.number(),
  revoked_at: z.coerce.number().nullable(),
})
export type EnrollTokenRow = z.output<typeof EnrollTokenRow>

/** A token with how many times it was used, read in one query. */
const TokenWithUses = EnrollTokenRow.extend({ uses: z.coerce.number() })
export type TokenWithUses = z.output<typeof TokenWithUses>

export const EnrollTokenUse = z.object({
  token_id: z.string(),
  agent_id: z.string(),
  used_at: z.coerce.number(),
  /** The instance secret's keyed hash, '' when the agent gave none. */
  instance_sha256: z.string(),
})
export type EnrollTokenUse = z.output<typeof EnrollTokenUse>

export class EnrollmentRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  async token(tokenId: string): Promise<TokenWithUses | undefined> {
    const [row] = await selectParsed(
      this.#store,
      TokenWithUses,
      `SELECT ${TOKEN_COLUMNS},
              (SELECT count() FROM ${USES} WHERE token_id = {id:String}) AS uses
       FROM ${TOKENS} FINAL WHERE token_id = {id:String}`,
      { id: tokenId },
    )
    return row
  }

  /** Every token, revoked and expired ones included. */
  async allTokens(): Promise<EnrollTokenRow[]> {
    return selectParsed(this.#store, EnrollTokenRow, `SELECT ${TOKEN_COLUMNS} FROM ${TOKENS} FINAL`)
  }

  /** Writes tokens as given (their version decides which one FINAL keeps). */
  async writeTokens(...rows: EnrollTokenRow[]): Promise<void> {
    await insertRows(this.#store, TOKENS, rows)
  }

  /** The token's uses, oldest first. */
  async uses(tokenId: string): Promise<EnrollTokenUse[]> {
    return selectParsed(
      this.#store,
      EnrollTokenUse,
      `SELECT token_id, agent_id, toUnixTimestamp64Milli(used_at) AS used_at, instance_sha256
       FROM ${USES} WHERE token_id = {id:String} ORDER BY used_at`,
      { id: tokenId },
    )
  }

  async addUse(use: EnrollTokenUse): Promise<void> {
    await insertRows(this.#store, USES, [use])
  }
}
