/** Enrolled agents: who holds a credential, and revoking it. */
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import { secretId, secretMatches, tokenKeyOf } from './tokens.ts'

/** Who an agent is, as its credential says. The only source of a batch's host and site. */
export interface AgentIdentity {
  agent_id: string
  host: string
  site: string
}

interface AgentRow extends AgentIdentity {
  /** The credential's keyed hash (tokens.ts; the column is named for its first form). */
  credential_sha256: string
  enroll_token_id: string
  enrolled_at: number
  revoked: number
  version: number
}

const AGENT_COLUMNS = `agent_id, host, site, credential_sha256, enroll_token_id,
  toUnixTimestamp64Milli(enrolled_at) AS enrolled_at, revoked_at IS NOT NULL AS revoked, version`

async function findAgent(store: Store, agentId: string): Promise<AgentRow | undefined> {
  const rows = await selectRows<AgentRow>(
    store,
    `SELECT ${AGENT_COLUMNS} FROM tally.agents FINAL WHERE agent_id = {id:String}`,
    { id: agentId },
  )
  return rows[0]
}

function identityOf(
  store: Store,
  row: AgentRow | undefined,
  credential: string,
): AgentIdentity | undefined {
  if (
    row === undefined ||
    row.revoked ||
    !secretMatches(tokenKeyOf(store), 'a', credential, row.credential_sha256)
  ) {
    return undefined
  }
  return { agent_id: row.agent_id, host: row.host, site: row.site }
}

/** The identity behind a bearer credential, or undefined if it is unknown, wrong or revoked. */
export async function authenticateAgent(
  store: Store,
  credential: string,
): Promise<AgentIdentity | undefined> {
  const agentId = secretId('a', credential)
  if (agentId === undefined) return undefined
  return identityOf(store, await findAgent(store, agentId), credential)
}

/**
 * authenticateAgent for many credentials in one query (the ingest route's lookups, gathered):
 * the same answer for each as authenticateAgent gives, read from the store at the same moment.
 */
export async function authenticateAgents(
  store: Store,
  credentials: readonly string[],
): Promise<(AgentIdentity | undefined)[]> {
  const ids = [
    ...new Set(credentials.map((c) => secretId('a', c)).filter((id) => id !== undefined)),
  ]
  const rows =
    ids.length === 0
      ? []
      : await selectRows<AgentRow>(
          store,
          `SELECT ${AGENT_COLUMNS} FROM tally.agents FINAL WHERE agent_id IN {ids:Array(String)}`,
          { ids },
        )
  const byId = new Map(rows.map((r) => [r.agent_id, r]))
  return credentials.map((credential) => {
    const agentId = secretId('a', credential)
    return agentId === undefined ? undefined : identityOf(store, byId.get(agentId), credential)
  })
}

/** Revoking twice keeps the first time; an unknown agent is not_found. */
export async function revokeAgent(
  store: Store,
  agentId: string,
  now = Date.now(),
  record: () => Promise<unknown> = async () => undefined,
): Promise<void> {
  const row = await findAgent(store, agentId)
  if (row === undefined) throw new DomainError('not_found', 'not_found', `no agent ${agentId}`)
  if (row.revoked) return
  // The register entry first: a revocation it cannot record does not happen.
  await record()
  await insertRows(store, 'tally.agents', [
    {
      agent_id: row.agent_id,
      site: row.site,
      host: row.host,
      credential_sha256: row.credential_sha256,
      enroll_token_id: row.enroll_token_id,
      enrolled_at: row.enrolled_at,
      revoked_at: now,
      // A later version must win even if this clock is behind the one that wrote the row.
      version: Math.max(now, Number(row.version) + 1),
    },
  ])
}

/**
 * Replaces an agent's credential (its enrollment answered again): the previous one stops
 * working, so an agent has one valid credential at most. A revoked agent stays revoked.
 */
export async function reissueCredential(
  store: Store,
  agentId: string,
  credentialHash: string,
  now = Date.now(),
): Promise<AgentIdentity | 'revoked' | undefined> {
  const row = await findAgent(store, agentId)
  if (row === undefined) return undefined
  if (row.revoked) return 'revoked'
  await insertRows(store, 'tally.agents', [
    {
      agent_id: row.agent_id,
      site: row.site,
      host: row.host,
      credential_sha256: credentialHash,
      enroll_token_id: row.enroll_token_id,
      enrolled_at: row.enrolled_at,
      revoked_at: null,
      version: Math.max(now, Number(row.version) + 1),
    },
  ])
  return { agent_id: row.agent_id, host: row.host, site: row.site }
}
