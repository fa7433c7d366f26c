/**
 * Grant verification: the only way into tier I.
 *
 * A grant is a compact JWS (EdDSA over Ed25519) signed by the collector. The agent verifies it
 * with the public key it pinned at enrollment (never a key named by the token: `kid`, `jwk` and
 * `jku` headers are ignored), accepts the EdDSA algorithm only, checks issuer, audience and
 * `typ`, parses the claims strictly (an unknown claim is a rejection, not something to ignore),
 * and requires the grant to be for this agent and its window not to be over.
 *
 * Privacy by construction: a `VerifiedGrant` can only be made here. Its constructor demands a
 * module-private symbol (checked at run time) and every genuine instance carries a private field
 * whose presence `VerifiedGrant.isGenuine` checks, so neither `new VerifiedGrant(...)` nor an
 * object made with `Object.create(VerifiedGrant.prototype)` passes as one. The subject capture
 * and every tier I record builder take a `VerifiedGrant` and check it.
 */
import { errors, importJWK, type JWTPayload, jwtVerify } from 'jose'
import {
  type Category,
  GRANT_AUDIENCE,
  GRANT_ISSUER,
  GRANT_TYPE,
  GrantClaims,
} from '../../protocol/grants.ts'

/** Why a grant was refused: a closed set, for logs and counters. */
export type GrantRejectionReason =
  /** The pinned key is not an Ed25519 public JWK. */
  | 'bad-pinned-key'
  /** Not a compact JWS, or its header or payload is not JSON. */
  | 'malformed'
  /** Any algorithm other than EdDSA (none, HS256, RS256, ...). */
  | 'algorithm'
  /** The signature does not verify with the pinned key. */
  | 'signature'
  | 'issuer'
  | 'audience'
  | 'type'
  /** `exp` is past. */
  | 'expired'
  /** `nbf` is in the future: the grant may become valid later. */
  | 'not-yet-valid'
  /** A registered claim is missing or invalid (jti, exp, iat, sub). */
  | 'registered-claims'
  /** The grant's own claims do not match GrantClaims exactly (missing, extra or invalid). */
  | 'claims'
  /** The grant names another agent. */
  | 'agent'
  /** The window is empty or already over. */
  | 'window'

export class GrantRejected extends Error {
  override name = 'GrantRejected'
  readonly reason: GrantRejectionReason
  constructor(reason: GrantRejectionReason, detail: string) {
    super(`grant rejected (${reason}): ${detail}`)
    this.reason = reason
  }
}

/** Registered claims that may accompany GrantClaims; everything else must be a grant claim. */
const REGISTERED = new Set(['iss', 'aud', 'jti', 'nbf', 'exp', 'iat', 'sub'])

/** The key to the VerifiedGrant constructor. Not exported: only this module can make one. */
const ISSUE: unique symbol = Symbol('VerifiedGrant.issue')

export class VerifiedGrant {
  /** Present on genuine instances only (see isGenuine). */
  readonly #genuine = true
  /** The grant's id (its `jti`), as the collector lists it. */
  readonly grantId: string
  readonly caseId: string
  readonly agentId: string
  readonly categories: readonly Category[]
  /** Gateway mode: the subject's addresses. Host mode: empty (the host itself). */
  readonly addresses: readonly string[]
  readonly window: Readonly<{ start: number; end: number }>
  /** The token this grant was verified from (to recognise it again in a later listing). */
  readonly token: string

  /** Not callable outside this module: use verifyGrant. */
  constructor(key: typeof ISSUE, grantId: string, claims: GrantClaims, token: string) {
    if (key !== ISSUE) {
      throw new TypeError('a VerifiedGrant is made only by verifyGrant, from a signed grant')
    }
    this.grantId = grantId
    this.caseId = claims.case_id
    this.agentId = claims.agent_id
    this.categories = Object.freeze([...new Set(claims.categories)])
    this.addresses = Object.freeze([...claims.addresses])
    this.window = Object.freeze({ start: claims.window.start, end: claims.window.end })
    this.token = token
    Object.freeze(this)
  }

  /** True for instances made by verifyGrant, false for anything else (forgeries included). */
  static isGenuine(value: unknown): value is VerifiedGrant {
    return typeof value === 'object' && value !== null && #genuine in value
  }

  /** Inside the window: start <= now < end. */
  active(nowMs: number): boolean {
    return nowMs >= this.window.start && nowMs < this.window.end
  }

  allows(category: Category): boolean {
    return this.categories.includes(category)
  }

  /** Host mode: the subject is this host itself. */
  get hostMode(): boolean {
    return this.addresses.length === 0
  }
}

function rejectionOf(error: unknown): GrantRejected {
  if (error instanceof GrantRejected) return error
  const message = error instanceof Error ? error.message : String(error)
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported)
    return new GrantRejected('algorithm', message)
  if (error instanceof errors.JWSSignatureVerificationFailed)
    return new GrantRejected('signature', message)
  if (error instanceof errors.JWTExpired) return new GrantRejected('expired', message)
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'iss':
        return new GrantRejected('issuer', message)
      case 'aud':
        return new GrantRejected('audience', message)
      case 'typ':
        return new GrantRejected('type', message)
      case 'nbf':
        return new GrantRejected(
          error.reason === 'check_failed' ? 'not-yet-valid' : 'registered-claims',
          message,
        )
      default:
        return new GrantRejected('registered-claims', message)
    }
  }
  return new GrantRejected('malformed', message)
}

async function importPinnedKey(jwk: Record<string, string>) {
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw new GrantRejected('bad-pinned-key', 'the pinned grant key is not an Ed25519 public JWK')
  }
  if ('d' in jwk) {
    throw new GrantRejected('bad-pinned-key', 'the pinned grant key holds a private part')
  }
  try {
    return await importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x }, 'EdDSA')
  } catch (error) {
    throw new GrantRejected('bad-pinned-key', (error as Error).message)
  }
}

/**
 * Verifies a grant token for this agent at `nowMs`. Resolves with the VerifiedGrant, or rejects
 * with GrantRejected saying why. Nothing else is thrown.
 */
export async function verifyGrant(
  token: string,
  pinnedPublicJwk: Record<string, string>,
  agentId: string,
  nowMs: number,
): Promise<VerifiedGrant> {
  try {
    const key = await importPinnedKey(pinnedPublicJwk)
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, key, {
        algorithms: ['EdDSA'],
        issuer: GRANT_ISSUER,
        audience: GRANT_AUDIENCE,
        typ: GRANT_TYPE,
        currentDate: new Date(nowMs),
        requiredClaims: ['jti', 'exp'],
      }))
    } catch (error) {
      throw rejectionOf(error)
    }
    const jti = payload.jti
    if (typeof jti !== 'string' || jti === '') {
      throw new GrantRejected('registered-claims', 'the grant has no id (jti)')
    }
    const own: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(payload)) {
      if (!REGISTERED.has(name)) own[name] = value
    }
    const parsed = GrantClaims.safeParse(own)
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(claims)'}: ${i.message}`)
        .join('; ')
      throw new GrantRejected('claims', issues)
    }
    const claims = parsed.data
    if (claims.agent_id !== agentId) {
      throw new GrantRejected('agent', `the grant is for agent ${claims.agent_id}, not ${agentId}`)
    }
    if (payload.sub !== undefined && payload.sub !== agentId) {
      throw new GrantRejected('registered-claims', 'the grant subject (sub) is another agent')
    }
    const { start, end } = claims.window
    if (end <= start) throw new GrantRejected('window', 'the grant window is empty')
    if (end <= nowMs) throw new GrantRejected('window', 'the grant window is over')
    return new VerifiedGrant(ISSUE, jti, claims, token)
  } catch (error) {
    throw rejectionOf(error)
  }
}
