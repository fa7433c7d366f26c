/**
 * Grants: signed (EdDSA) statements of what a case allows, for an agent (capture) and for the
 * case's investigator (drill-down). Stored so they can be listed to agents and revoked at once.
 */
import { randomBytes } from 'node:crypto'
import { type JWTPayload, jwtVerify, SignJWT } from 'jose'
import {
  GRANT_AUDIENCE,
  GRANT_ISSUER,
  GRANT_TYPE,
  type GrantClaims,
} from '../../protocol/grants.ts'
import type { GrantSigningKey } from '../auth/signing-key.ts'
import type { Store } from '../store/client.ts'
import { GrantsRepository, type NewGrant } from './grants-repository.ts'
import type { Case } from './model.ts'

export const DRILLDOWN_AUDIENCE = 'tally-drilldown'
export const ACCESS_GRANT_TYPE = 'tally-access+jwt'

/** What an investigator's access grant allows: the case's scope, for one person. */
export interface AccessClaims {
  case_id: string
  categories: GrantClaims['categories']
  subjects: { agent_id: string; addresses: string[] }[]
  window: { start: number; end: number }
}

const grantId = () => `g-${randomBytes(8).toString('hex')}`

export class GrantIssuer {
  readonly #grants: GrantsRepository
  readonly #key: GrantSigningKey

  constructor(store: Store, key: GrantSigningKey) {
    this.#grants = new GrantsRepository(store)
    this.#key = key
  }

  /** Signs one grant per subject agent and one access grant for the investigator. */
  async issue(doc: Case, startMs: number, endMs: number, now = Date.now()): Promise<string[]> {
    const rows: NewGrant[] = []
    const sign = async (payload: JWTPayload, audience: string, type: string, subject: string) => {
      const id = grantId()
      const token = await new SignJWT(payload)
        .setProtectedHeader({ alg: 'EdDSA', typ: type, kid: this.#key.publicJwk.x ?? 'grant' })
        .setIssuer(GRANT_ISSUER)
        .setAudience(audience)
        .setSubject(subject)
        .setJti(id)
        .setIssuedAt(Math.floor(now / 1000))
        .setNotBefore(Math.floor(startMs / 1000))
        .setExpirationTime(Math.ceil(endMs / 1000))
        .sign(this.#key.privateKey)
      rows.push({
        grant_id: id,
        case_id: doc.case_id,
        audience,
        subject,
        token,
        window_start: startMs,
        window_end: endMs,
        issued_at: now,
      })
      return id
    }
    const window = { start: startMs, end: endMs }
    const ids: string[] = []
    for (const subject of doc.subjects) {
      const claims: GrantClaims = {
        case_id: doc.case_id,
        agent_id: subject.agent_id,
        addresses: subject.addresses,
        categories: doc.categories,
        window,
      }
      ids.push(await sign({ ...claims }, GRANT_AUDIENCE, GRANT_TYPE, subject.agent_id))
    }
    if (doc.investigator !== undefined) {
      const access: AccessClaims = {
        case_id: doc.case_id,
        categories: doc.categories,
        subjects: doc.subjects.map((s) => ({ agent_id: s.agent_id, addresses: s.addresses })),
        window,
      }
      ids.push(await sign({ ...access }, DRILLDOWN_AUDIENCE, ACCESS_GRANT_TYPE, doc.investigator))
    }
    await this.#grants.insert(rows)
    return ids
  }

  /** Revokes every grant of the case: agents stop at their next poll, drill-down at once. */
  async revokeCase(caseId: string, now = Date.now()): Promise<number> {
    const live = await this.#grants.unrevokedOfCase(caseId)
    await this.#grants.revoke(live, now)
    return live.length
  }

  /** The capture grants an agent must run now, for cases that `isActive` says are active. */
  async forAgent(
    agentId: string,
    isActive: (caseId: string) => Promise<boolean>,
    now = Date.now(),
  ): Promise<{ grant_id: string; token: string }[]> {
    const rows = await this.#grants.currentFor(GRANT_AUDIENCE, agentId, now)
    const out: { grant_id: string; token: string }[] = []
    for (const row of rows)
      if (await isActive(row.case_id)) out.push({ grant_id: row.grant_id, token: row.token })
    return out
  }

  /** A grant by id, if it is not revoked. */
  async find(
    grantIdValue: string,
  ): Promise<
    { case_id: string; audience: string; subject: string; start: number; end: number } | undefined
  > {
    const row = await this.#grants.find(grantIdValue)
    return row === undefined || row.revoked
      ? undefined
      : {
          case_id: row.case_id,
          audience: row.audience,
          subject: row.subject,
          start: row.window_start,
          end: row.window_end,
        }
  }

  /** The investigator's current access grant token for a case. */
  async accessToken(caseId: string, investigator: string): Promise<string | undefined> {
    return (await this.#grants.latestOfCaseFor(caseId, DRILLDOWN_AUDIENCE, investigator))?.token
  }

  /**
   * Verifies an access grant presented with a drill-down call: our signature, EdDSA only, for
   * this person, not expired, and still on record (not revoked).
   */
  async verifyAccess(
    token: string,
    userId: string,
    now = Date.now(),
  ): Promise<AccessClaims & { grant_id: string }> {
    const { payload } = await jwtVerify(token, this.#key.publicKeyObject, {
      algorithms: ['EdDSA'],
      issuer: GRANT_ISSUER,
      audience: DRILLDOWN_AUDIENCE,
      typ: ACCESS_GRANT_TYPE,
      subject: userId,
      currentDate: new Date(now),
    })
    const id = payload.jti
    if (id === undefined || (await this.find(id)) === undefined)
      throw new Error('the grant was revoked')
    return { ...(payload as unknown as AccessClaims), grant_id: id }
  }
}
