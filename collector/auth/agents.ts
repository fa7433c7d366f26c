/** Enrolled agents: who holds a credential, and revoking it. */
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import { type AgentRow, AgentsRepository } from './agents-repository.ts'
import { secretId, secretMatches, tokenKeyOf } from './tokens.ts'

/** Who an agent is, as its credential says. The only source of a batch's host and site. */
export interface AgentIdentity {
  agent_id: string
  host: string
  site: string
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
  return identityOf(store, await new AgentsRepository(store).find(agentId), credential)
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
  const rows = await new AgentsRepository(store).findMany(ids)
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
  const agents = new AgentsRepository(store)
  const row = await agents.find(agentId)
  if (row === undefined) throw new DomainError('not_found', 'not_found', `no agent ${agentId}`)
  if (row.revoked) return
  // The register entry first: a revocation it cannot record does not happen.
  await record()
  await agents.update(row, { revoked_at: now }, now)
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
  const agents = new AgentsRepository(store)
  const row = await agents.find(agentId)
  if (row === undefined) return undefined
  if (row.revoked) return 'revoked'
  await agents.update(row, { credential_sha256: credentialHash, revoked_at: null }, now)
  return { agent_id: row.agent_id, host: row.host, site: row.site }
}
