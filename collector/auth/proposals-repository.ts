/**
 * tally.role_proposals: its SQL, its columns and its row schema. A proposal is rewritten, never
 * updated in place: each decision is a new row with a higher version (ReplacingMergeTree).
 */
import { z } from 'zod'
import { ROLES, type Role } from '../../protocol/api/names.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'
import type { Side } from './roles.ts'

const PROPOSALS = 'tally.role_proposals'

const COLUMNS = `proposal_id, side, user_id, roles, new_user, proposed_by,
  toUnixTimestamp64Milli(proposed_at) AS proposed_at, state, decided_by, version`

export const PROPOSAL_STATES = ['proposed', 'confirmed', 'rejected'] as const
export type ProposalState = (typeof PROPOSAL_STATES)[number]

export interface Proposal {
  proposal_id: string
  side: Side
  user_id: string
  roles: Role[]
  new_user: boolean
  proposed_by: string
  proposed_at: string
  state: ProposalState
  decided_by: string
}

// 64-bit integers and DateTime64 milliseconds come back as JSON strings.
const ProposalRow = z.object({
  proposal_id: z.string(),
  side: z.enum(['itsd', 'oios']),
  user_id: z.string(),
  roles: z.array(z.enum(ROLES)),
  new_user: z.coerce.number(),
  proposed_by: z.string(),
  proposed_at: z.coerce.number(),
  state: z.enum(PROPOSAL_STATES),
  decided_by: z.string(),
  version: z.coerce.number(),
})
type ProposalRow = z.output<typeof ProposalRow>

const CountRow = z.object({ n: z.coerce.number() })

export class ProposalsRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  /** The side's proposals (in one state), oldest first. */
  async list(side: Side, state?: ProposalState): Promise<Proposal[]> {
    const rows = await selectParsed(
      this.#store,
      ProposalRow,
      `SELECT ${COLUMNS} FROM ${PROPOSALS} FINAL
       WHERE side = {side:String} ${state === undefined ? '' : 'AND state = {state:String}'}
       ORDER BY proposed_at`,
      { side, state: state ?? '' },
    )
    return rows.map(proposalOf)
  }

  /** The proposal of `side` by that id; another side's does not exist for it. */
  async find(side: Side, proposalId: string): Promise<Proposal | undefined> {
    const [row] = await selectParsed(
      this.#store,
      ProposalRow,
      `SELECT ${COLUMNS} FROM ${PROPOSALS} FINAL
       WHERE proposal_id = {id:String} AND side = {side:String}`,
      { id: proposalId, side },
    )
    return row === undefined ? undefined : proposalOf(row)
  }

  /** How many proposals of `side`, in any state, name `role`. */
  async countNaming(side: Side, role: Role): Promise<number> {
    const [row] = await selectParsed(
      this.#store,
      CountRow,
      `SELECT count() AS n FROM ${PROPOSALS} FINAL
       WHERE side = {side:String} AND has(roles, {role:String})`,
      { side, role },
    )
    return row?.n ?? 0
  }

  /** Writes a new proposal, made at `now`. */
  async add(proposal: Omit<Proposal, 'proposed_at' | 'state' | 'decided_by'>, now: number) {
    await this.#write({
      ...proposal,
      new_user: proposal.new_user ? 1 : 0,
      proposed_at: now,
      state: 'proposed',
      decided_by: '',
      decided_at: null,
      version: now,
    })
  }

  /** Writes the decision on `proposal`, winning over its stored row even behind a slower clock. */
  async decide(
    proposal: Proposal,
    state: 'confirmed' | 'rejected',
    by: string,
    now: number,
  ): Promise<void> {
    const [row] = await selectParsed(
      this.#store,
      z.object({ version: z.coerce.number() }),
      `SELECT version FROM ${PROPOSALS} FINAL WHERE proposal_id = {id:String}`,
      { id: proposal.proposal_id },
    )
    await this.#write({
      ...proposal,
      new_user: proposal.new_user ? 1 : 0,
      proposed_at: Date.parse(proposal.proposed_at),
      state,
      decided_by: by,
      decided_at: now,
      version: Math.max(now, (row?.version ?? 0) + 1),
    })
  }

  async #write(row: ProposalRow & { decided_at: number | null }): Promise<void> {
    await insertRows(this.#store, PROPOSALS, [row])
  }
}

function proposalOf(row: ProposalRow): Proposal {
  return {
    proposal_id: row.proposal_id,
    side: row.side,
    user_id: row.user_id,
    roles: row.roles,
    new_user: Boolean(row.new_user),
    proposed_by: row.proposed_by,
    proposed_at: new Date(row.proposed_at).toISOString(),
    state: row.state,
    decided_by: row.decided_by,
  }
}
