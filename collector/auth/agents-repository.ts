/**
 * tally.agents: its SQL, its columns and its row schema. Rows come back checked; nothing here
 * judges a credential (agents.ts does).
 */
import { z } from 'zod'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'

const AGENTS = 'tally.agents'

const COLUMNS = `agent_id, host, site, credential_sha256, enroll_token_id,
  toUnixTimestamp64Milli(enrolled_at) AS enrolled_at,
  toUnixTimestamp64Milli(revoked_at) AS revoked_at, revoked_at IS NOT NULL AS revoked, version`

// 64-bit integers and DateTime64 milliseconds come back as JSON strings.
export const AgentRow = z.object({
  agent_id: z.string(),
  host: z.string(),
  site: z.string(),
  /** The credential's keyed hash (tokens.ts; the column is named for its first form). */
  credential_sha256: z.string(),
  enroll_token_id: z.string(),
  enrolled_at: z.coerce.number(),
  revoked_at: z.coerce.number().nullable(),
  revoked: z.coerce.number(),
  version: z.coerce.number(),
})
export type AgentRow = z.output<typeof AgentRow>

/** A row as written: `revoked` is the stored revoked_at, read back. */
export type NewAgentRow = Omit<AgentRow, 'revoked'>

export class AgentsRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  async find(agentId: string): Promise<AgentRow | undefined> {
    const [row] = await this.findMany([agentId])
    return row
  }

  /** The agents of these ids (FINAL: a revocation counts at once), in no particular order. */
  async findMany(agentIds: readonly string[]): Promise<AgentRow[]> {
    if (agentIds.length === 0) return []
    return selectParsed(
      this.#store,
      AgentRow,
      `SELECT ${COLUMNS} FROM ${AGENTS} FINAL WHERE agent_id IN {ids:Array(String)}`,
      { ids: agentIds },
    )
  }

  /** Every agent, revoked ones included. */
  async all(): Promise<AgentRow[]> {
    return selectParsed(this.#store, AgentRow, `SELECT ${COLUMNS} FROM ${AGENTS} FINAL`)
  }

  /** Writes rows as given (their version decides which one FINAL keeps). */
  async write(...rows: NewAgentRow[]): Promise<void> {
    await insertRows(this.#store, AGENTS, rows)
  }

  /** A new row for `row` with some fields changed, winning over it even behind a slower clock. */
  async update(
    row: AgentRow,
    change: Partial<Omit<NewAgentRow, 'version'>>,
    now = Date.now(),
  ): Promise<void> {
    const { revoked: _, ...kept } = row
    await this.write({ ...kept, ...change, version: Math.max(now, row.version + 1) })
  }
}
