/**
 * Site-scoped enrollment: an admin makes a token for a site; an agent trades it once for its own
 * credential. The site comes from the token and the host name is fixed at enrollment, so a batch
 * can never name another host or site.
 */

import { Mutex } from '../../common/mutex.ts'
import type { EnrollRequest, EnrollResponse } from '../../protocol/v1.ts'
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import { reissueCredential } from './agents.ts'
import { AgentsRepository } from './agents-repository.ts'
import {
  EnrollmentRepository,
  type EnrollTokenUse,
  type TokenWithUses,
} from './enrollment-repository.ts'
import { issueSecret, newId, secretId, secretMatches, type TokenKey, tokenKeyOf } from './tokens.ts'

export interface EnrollTokenRequest {
  site: string
  ttlHours: number
  maxUses: number
  createdBy: string
}

export interface IssuedEnrollToken {
  token_id: string
  token: string
  site: string
  expires_at: string
  max_uses: number
}

/**
 * `record` is called before anything is written (the register entry of the token: if it cannot
 * be made, no token is).
 */
export async function createEnrollToken(
  store: Store,
  request: EnrollTokenRequest,
  now = Date.now(),
  record: (tokenId: string, expiresAt: string) => Promise<unknown> = async () => undefined,
): Promise<IssuedEnrollToken> {
  const issued = issueSecret(tokenKeyOf(store), 'e', newId('e'))
  const expiresAt = now + request.ttlHours * 3_600_000
  await record(issued.id, new Date(expiresAt).toISOString())
  await new EnrollmentRepository(store).writeTokens({
    token_id: issued.id,
    site: request.site,
    secret_sha256: issued.hash,
    created_by: request.createdBy,
    created_at: now,
    expires_at: expiresAt,
    max_uses: request.maxUses,
    revoked_at: null,
    version: now,
  })
  return {
    token_id: issued.id,
    token: issued.secret,
    site: request.site,
    expires_at: new Date(expiresAt).toISOString(),
    max_uses: request.maxUses,
  }
}

/** The token cannot enroll (unknown, revoked, expired, used up): the agent gets no credential. */
export class EnrollmentRefused extends DomainError {
  override name = 'EnrollmentRefused'
  constructor(message: string) {
    super('unauthenticated', 'enrollment_refused', message)
  }
}

/** What an enrollment records (the register entry), before it writes anything. */
export type EnrollmentRecorder = (enrollment: {
  agent_id: string
  host: string
  site: string
  token_id: string
  replayed: boolean
}) => Promise<unknown>

/** An enrollment answered: `replayed` when it was the same agent's earlier one, given again. */
export interface Enrollment {
  response: EnrollResponse
  replayed: boolean
}

const enrollments = new Mutex()

/** What one enrollment works with, once its token is known to be valid. */
interface Enrolling {
  store: Store
  key: TokenKey
  token: TokenWithUses
  host: string
  now: number
  record: EnrollmentRecorder
  answer: (agentId: string, host: string, credential: string) => EnrollResponse
}

/**
 * Trades a token for a credential. With an instance secret, the use of the token is recorded
 * with the secret's keyed hash, and the same secret with the same token (still valid: known, not
 * revoked, not expired) gets the same enrollment again with a new credential that replaces the
 * previous one; it spends no further use. A used-up token without the secret, or with another,
 * is refused.
 *
 * The use is written before the agent: if the collector dies between the two, the replay finds
 * the use and writes the agent then, so no orphan agent is left and no use is spent twice.
 */
export async function enroll(
  store: Store,
  token: string,
  request: EnrollRequest,
  grantPublicKey: Record<string, string>,
  intervalSeconds: number,
  now = Date.now(),
  record: EnrollmentRecorder = async () => undefined,
): Promise<Enrollment> {
  const tokenId = secretId('e', token)
  if (tokenId === undefined) throw new EnrollmentRefused('not an enrollment token')
  return enrollments.run(async () => {
    const repository = new EnrollmentRepository(store)
    const key = tokenKeyOf(store)
    const row = await repository.token(tokenId)
    if (row === undefined || !secretMatches(key, 'e', token, row.secret_sha256)) {
      throw new EnrollmentRefused('unknown enrollment token')
    }
    if (row.revoked_at !== null) throw new EnrollmentRefused('this enrollment token was revoked')
    if (row.expires_at <= now) throw new EnrollmentRefused('this enrollment token has expired')
    const enrolling: Enrolling = {
      store,
      key,
      token: row,
      host: request.hostname.toLowerCase(),
      now,
      record,
      answer: (agentId, host, credential) => ({
        agent_id: agentId,
        host,
        site: row.site,
        credential,
        grant_public_key: grantPublicKey,
        interval_seconds: intervalSeconds,
      }),
    }
    if (request.instance !== undefined) {
      const use = await useOf(repository, key, tokenId, request.instance)
      if (use !== undefined) return enrollAgain(enrolling, use)
    }
    if (row.uses >= row.max_uses) {
      throw new EnrollmentRefused(
        `this enrollment token was already used ${row.uses} time(s), its maximum` +
          (request.instance === undefined
            ? ''
            : '; this instance secret is not the one it was used with'),
      )
    }
    return enrollNew(enrolling, repository, request.instance)
  })
}

/** A first enrollment: one use of the token spent, a new agent. */
async function enrollNew(
  e: Enrolling,
  repository: EnrollmentRepository,
  instance: string | undefined,
): Promise<Enrollment> {
  const tokenId = e.token.token_id
  const agentId = newId('a')
  const credential = issueSecret(e.key, 'a', agentId)
  await e.record({
    agent_id: agentId,
    host: e.host,
    site: e.token.site,
    token_id: tokenId,
    replayed: false,
  })
  await repository.addUse({
    token_id: tokenId,
    agent_id: agentId,
    used_at: e.now,
    instance_sha256: instance === undefined ? '' : instanceHash(e.key, tokenId, agentId, instance),
  })
  await writeAgent(e, agentId, e.host, credential.hash, e.now)
  return { response: e.answer(agentId, e.host, credential.secret), replayed: false }
}

/** The same token and instance again: the same agent, with a new credential replacing its own. */
async function enrollAgain(e: Enrolling, use: EnrollTokenUse): Promise<Enrollment> {
  await e.record({
    agent_id: use.agent_id,
    host: e.host,
    site: e.token.site,
    token_id: e.token.token_id,
    replayed: true,
  })
  const credential = issueSecret(e.key, 'a', use.agent_id)
  const agent = await reissueCredential(e.store, use.agent_id, credential.hash, e.now)
  if (agent === 'revoked') {
    throw new EnrollmentRefused(
      `the agent this token and instance enrolled (${use.agent_id}) was revoked`,
    )
  }
  if (agent === undefined) {
    // The collector died after recording the use and before writing the agent.
    await writeAgent(e, use.agent_id, e.host, credential.hash, use.used_at)
    return { response: e.answer(use.agent_id, e.host, credential.secret), replayed: true }
  }
  return { response: e.answer(use.agent_id, agent.host, credential.secret), replayed: true }
}

/**
 * What a use keeps of the instance secret: its keyed hash, bound to the token and the agent it
 * enrolled, so that a use row written into the store (or one whose agent was changed) never
 * hands out another agent's credential.
 */
export const instanceHash = (
  key: TokenKey,
  tokenId: string,
  agentId: string,
  instance: string,
): string => key.hash('enroll-instance', `${tokenId}/${agentId}`, instance)

/** The first use of the token by this instance, checked against each use's keyed hash. */
async function useOf(
  repository: EnrollmentRepository,
  key: TokenKey,
  tokenId: string,
  instance: string,
): Promise<EnrollTokenUse | undefined> {
  const uses = await repository.uses(tokenId)
  return uses.find((u) =>
    key.matches('enroll-instance', `${tokenId}/${u.agent_id}`, instance, u.instance_sha256),
  )
}

async function writeAgent(
  e: Enrolling,
  agentId: string,
  host: string,
  credentialHash: string,
  enrolledAt: number,
): Promise<void> {
  await new AgentsRepository(e.store).write({
    agent_id: agentId,
    site: e.token.site,
    host,
    credential_sha256: credentialHash,
    enroll_token_id: e.token.token_id,
    enrolled_at: enrolledAt,
    revoked_at: null,
    version: e.now,
  })
}
