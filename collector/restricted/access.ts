/**
 * The check in front of every tier I read (drill-down, export): the caller's own credential
 * (already authenticated) plus the access grant it presents. The grant must carry our signature
 * (EdDSA), be for this person, not be expired or revoked, be for the case in the path, and the
 * case must be active right now: re-read and refreshed on every call, so closing a case or the
 * end of its window stops access at once.
 */
import { errors } from 'jose'
import { z } from 'zod'
import { CATEGORIES } from '../../protocol/grants.ts'
import type { User } from '../auth/users.ts'
import type { AccessClaims, GrantIssuer } from '../cases/grants.ts'
import type { GrantsRepository } from '../cases/grants-repository.ts'
import type { Case } from '../cases/model.ts'
import type { CaseService } from '../cases/workflow.ts'
import { DomainError } from '../errors.ts'

export const GRANT_HEADER = 'x-tally-grant'

export interface AccessDeps {
  /** Grants as on record, to tell a revoked one. */
  onRecord: GrantsRepository
  cases: CaseService
  grants: GrantIssuer
}

export interface Access {
  user: User
  grant: AccessClaims & { grant_id: string }
  doc: Case
}

/** A refusal of the credential or grant presented (401) or of what it may reach (403). */
const denied = (failure: 'unauthenticated' | 'forbidden', code: string, message: string) =>
  new DomainError(failure, code, message)

const epochMs = z.number().int().min(0)
/** The claims as issued (collector/cases/grants.ts), checked again rather than cast. */
const Claims = z.object({
  case_id: z.string(),
  categories: z.array(z.enum(CATEGORIES)).min(1),
  subjects: z
    .array(z.strictObject({ agent_id: z.string(), addresses: z.array(z.string()) }))
    .min(1),
  window: z.strictObject({ start: epochMs, end: epochMs }),
})

export async function checkAccess(
  deps: AccessDeps,
  user: User,
  token: string | undefined,
  caseId: string,
): Promise<Access> {
  if (token === undefined || token.trim() === '') {
    throw denied(
      'unauthenticated',
      'grant_required',
      `the access grant is required (header ${GRANT_HEADER})`,
    )
  }
  if (token.length > 16_384)
    throw denied('unauthenticated', 'grant_invalid', 'the access grant is not a grant')
  let verified: AccessClaims & { grant_id: string }
  try {
    verified = await deps.grants.verifyAccess(token.trim(), user.user_id)
  } catch (err) {
    if (err instanceof errors.JWTExpired) {
      throw denied('unauthenticated', 'grant_expired', 'the access grant has expired')
    }
    if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'sub') {
      throw denied('forbidden', 'not_your_grant', 'this access grant was issued to someone else')
    }
    if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'nbf') {
      throw denied('forbidden', 'grant_not_yet_valid', 'the access grant is not valid yet')
    }
    if (err instanceof errors.JOSEError) {
      throw denied(
        'unauthenticated',
        'grant_invalid',
        `the access grant is not valid (${err.code})`,
      )
    }
    // Verified, but no longer on record as live: revoked (closing, extension) or unknown.
    throw denied('forbidden', 'grant_revoked', 'the access grant was revoked')
  }
  const claims = Claims.safeParse(verified)
  if (!claims.success)
    throw denied('unauthenticated', 'grant_invalid', 'the access grant has unexpected claims')
  if (claims.data.case_id !== caseId) {
    throw denied('forbidden', 'wrong_case', 'the access grant is for another case')
  }
  const record = await deps.onRecord.find(verified.grant_id)
  if (record === undefined || record.revoked || record.case_id !== caseId) {
    throw denied('forbidden', 'grant_revoked', 'the access grant was revoked')
  }
  const doc = await deps.cases.current(caseId)
  if (doc === undefined || doc.state !== 'active') {
    throw denied(
      'forbidden',
      'case_not_active',
      `the case is ${doc?.state ?? 'unknown'}, not active`,
    )
  }
  if (doc.investigator !== user.user_id) {
    throw denied('forbidden', 'not_your_grant', "only the case's investigator reads its records")
  }
  return { user, grant: { ...claims.data, grant_id: verified.grant_id }, doc }
}
