/**
 * Site-scoped enrollment: an admin makes a token for a site; an agent trades it once for its own
 * credential. The site comes from the token and the host name is fixed at enrollment, so a batch
 * can never name another host or site.
 */
import type { EnrollRequest, EnrollResponse } from '../../protocol/v1.ts'
import type { Store } from '../store/client.ts'
import { insertRows, Mutex, selectRows } from '../store/rows.ts'
import { issueSecret, newId, secretId, secretMatches } from './tokens.ts'

export const SITE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/

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

export async function createEnrollToken(
  store: Store,
  request: EnrollTokenRequest,
  now = Date.now(),
): Promise<IssuedEnrollToken> {
  const issued = issueSecret('e', newId('e'))
  const expiresAt = now + request.ttlHours * 3_600_000
  await insertRows(store, 'tally.enroll_tokens', [
    {
      token_id: issued.id,
      site: request.site,
      secret_sha256: issued.sha256,
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

export class EnrollmentRefused extends Error {
  override name = 'EnrollmentRefused'
}

interface TokenRow {
  site: string
  secret_sha256: string
  expires_at: number
  max_uses: number
  revoked: number
  uses: number
}

const enrollments = new Mutex()

export async function enroll(
  store: Store,
  token: string,
  request: EnrollRequest,
  grantPublicKey: Record<string, string>,
  intervalSeconds: number,
  now = Date.now(),
): Promise<EnrollResponse> {
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
    if (row === undefined || !secretMatches(token, row.secret_sha256)) {
      throw new EnrollmentRefused('unknown enrollment token')
    }
    if (row.revoked) throw new EnrollmentRefused('this enrollment token was revoked')
    if (Number(row.expires_at) <= now)
      throw new EnrollmentRefused('this enrollment token has expired')
    if (Number(row.uses) >= Number(row.max_uses)) {
      throw new EnrollmentRefused(
        `this enrollment token was already used ${row.uses} time(s), its maximum`,
      )
    }
    const agentId = newId('a')
    const credential = issueSecret('a', agentId)
    await insertRows(store, 'tally.agents', [
      {
        agent_id: agentId,
        site: row.site,
        host: request.hostname.toLowerCase(),
        credential_sha256: credential.sha256,
        enroll_token_id: tokenId,
        enrolled_at: now,
        revoked_at: null,
        version: now,
      },
    ])
    await insertRows(store, 'tally.enroll_token_uses', [
      { token_id: tokenId, agent_id: agentId, used_at: now },
    ])
    return {
      agent_id: agentId,
      host: request.hostname.toLowerCase(),
      site: row.site,
      credential: credential.secret,
      grant_public_key: grantPublicKey,
      interval_seconds: intervalSeconds,
    }
  })
}
