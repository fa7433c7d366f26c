/**
 * Site-scoped enrollment: an admin makes a token for a site; an agent trades it once for its own
 * credential. The site comes from the token and the host name is fixed at enrollment, so a batch
 * can never name another host or site.
 */

import { Mutex } from '../../common/mutex.ts'
import type { EnrollRequest, EnrollResponse } from '../../protocol/v1.ts'
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import { reissueCredential } from './agents.ts'
import { issueSecret, newId, secretId, secretMatches, type TokenKey, tokenKeyOf } from './tokens.ts'

export { SITE_NAME } from '../../protocol/api/names.ts'

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
  await insertRows(store, 'tally.enroll_tokens', [
    {
      token_id: issued.id,
      site: request.site,
      secret_sha256: issued.hash,
      created_by: request.createdBy,
      created_at: now,
      expires_at: expiresAt,
      max_uses: request.maxUses,
      revoked_at: null,
      version: now,
    },
  ])
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

interface TokenRow {
  site: string
  secret_sha256: string
  expires_at: number
  max_uses: number
  revoked: number
  uses: number
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
    const [row] = await selectRows<TokenRow>(
      store,
      `SELECT site, secret_sha256, toUnixTimestamp64Milli(expires_at) AS expires_at, max_uses,
              revoked_at IS NOT NULL AS revoked,
              (SELECT count() FROM tally.enroll_token_uses WHERE token_id = {id:String}) AS uses
       FROM tally.enroll_tokens FINAL WHERE token_id = {id:String}`,
      { id: tokenId },
    )
    const key = tokenKeyOf(store)
    if (row === undefined || !secretMatches(key, 'e', token, row.secret_sha256)) {
      throw new EnrollmentRefused('unknown enrollment token')
    }
    if (row.revoked) throw new EnrollmentRefused('this enrollment token was revoked')
    if (Number(row.expires_at) <= now)
      throw new EnrollmentRefused('this enrollment token has expired')
    const answer = (agentId: string, host: string, credential: string): EnrollResponse => ({
      agent_id: agentId,
      host,
      site: row.site,
      credential,
      grant_public_key: grantPublicKey,
      interval_seconds: intervalSeconds,
    })

    if (request.instance !== undefined) {
      const use = await useOf(store, key, tokenId, request.instance)
      if (use !== undefined) {
        await record({
          agent_id: use.agent_id,
          host: request.hostname.toLowerCase(),
          site: row.site,
          token_id: tokenId,
          replayed: true,
        })
        const credential = issueSecret(key, 'a', use.agent_id)
        const agent = await reissueCredential(store, use.agent_id, credential.hash, now)
        if (agent === 'revoked') {
          throw new EnrollmentRefused(
            `the agent this token and instance enrolled (${use.agent_id}) was revoked`,
          )
        }
        if (agent === undefined) {
          // The collector died after recording the use and before writing the agent.
          await writeAgent(store, {
            agentId: use.agent_id,
            site: row.site,
            host: request.hostname.toLowerCase(),
            credentialHash: credential.hash,
            tokenId,
            enrolledAt: Number(use.used_at),
            version: now,
          })
          return {
            response: answer(use.agent_id, request.hostname.toLowerCase(), credential.secret),
            replayed: true,
          }
        }
        return { response: answer(use.agent_id, agent.host, credential.secret), replayed: true }
      }
    }

    if (Number(row.uses) >= Number(row.max_uses)) {
      throw new EnrollmentRefused(
        `this enrollment token was already used ${row.uses} time(s), its maximum` +
          (request.instance === undefined
            ? ''
            : '; this instance secret is not the one it was used with'),
      )
    }
    const agentId = newId('a')
    const credential = issueSecret(key, 'a', agentId)
    const host = request.hostname.toLowerCase()
    await record({ agent_id: agentId, host, site: row.site, token_id: tokenId, replayed: false })
    await insertRows(store, 'tally.enroll_token_uses', [
      {
        token_id: tokenId,
        agent_id: agentId,
        used_at: now,
        instance_sha256:
          request.instance === undefined
            ? ''
            : instanceHash(key, tokenId, agentId, request.instance),
      },
    ])
    await writeAgent(store, {
      agentId,
      site: row.site,
      host,
      credentialHash: credential.hash,
      tokenId,
      enrolledAt: now,
      version: now,
    })
    return { response: answer(agentId, host, credential.secret), replayed: false }
  })
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
  store: Store,
  key: TokenKey,
  tokenId: string,
  instance: string,
): Promise<{ agent_id: string; used_at: number } | undefined> {
  const uses = await selectRows<{ agent_id: string; used_at: number; instance_sha256: string }>(
    store,
    `SELECT agent_id, toUnixTimestamp64Milli(used_at) AS used_at, instance_sha256
     FROM tally.enroll_token_uses WHERE token_id = {id:String} ORDER BY used_at`,
    { id: tokenId },
  )
  return uses.find((u) =>
    key.matches('enroll-instance', `${tokenId}/${u.agent_id}`, instance, u.instance_sha256),
  )
}

interface AgentRecord {
  agentId: string
  site: string
  host: string
  credentialHash: string
  tokenId: string
  enrolledAt: number
  version: number
}

async function writeAgent(store: Store, agent: AgentRecord): Promise<void> {
  await insertRows(store, 'tally.agents', [
    {
      agent_id: agent.agentId,
      site: agent.site,
      host: agent.host,
      credential_sha256: agent.credentialHash,
      enroll_token_id: agent.tokenId,
      enrolled_at: agent.enrolledAt,
      revoked_at: null,
      version: agent.version,
    },
  ])
}
