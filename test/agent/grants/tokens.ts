/**
 * Test grants: an Ed25519 key pair made here, and tokens signed the way the collector signs
 * them (collector/cases/grants.ts): EdDSA, typ, iss, aud, sub, jti, iat, nbf, exp.
 */
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose'
import { type VerifiedGrant, verifyGrant } from '../../../agent/grants/verify.ts'
import {
  GRANT_AUDIENCE,
  GRANT_ISSUER,
  GRANT_TYPE,
  type GrantClaims,
} from '../../../protocol/grants.ts'

export type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>

export interface TestKeys {
  pair: KeyPair
  publicJwk: Record<string, string>
}

export async function makeKeys(): Promise<TestKeys> {
  const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
  const jwk = await exportJWK(pair.publicKey)
  const publicJwk: Record<string, string> = {}
  for (const [k, v] of Object.entries(jwk)) if (typeof v === 'string') publicJwk[k] = v
  return { pair, publicJwk }
}

export const AGENT_ID = 'a-0123456789abcdef'
export const CASE_ID = 'c-0123456789abcdef'

export function claims(nowMs: number, overrides: Partial<GrantClaims> = {}): GrantClaims {
  return {
    case_id: CASE_ID,
    agent_id: AGENT_ID,
    addresses: ['192.0.2.10'],
    categories: ['flows', 'dns'],
    window: { start: nowMs - 60_000, end: nowMs + 3_600_000 },
    ...overrides,
  }
}

export interface SignOptions {
  jti?: string | null
  issuer?: string
  audience?: string
  typ?: string
  sub?: string | null
  nbfMs?: number
  expMs?: number
  iatMs?: number
}

export async function signGrant(
  key: KeyPair['privateKey'],
  payload: JWTPayload,
  options: SignOptions = {},
): Promise<string> {
  const windowOf = payload.window as { start?: number; end?: number } | undefined
  const start = options.nbfMs ?? windowOf?.start ?? Date.now()
  const end = options.expMs ?? windowOf?.end ?? Date.now() + 3_600_000
  let jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: 'EdDSA', typ: options.typ ?? GRANT_TYPE, kid: 'test' })
    .setIssuer(options.issuer ?? GRANT_ISSUER)
    .setAudience(options.audience ?? GRANT_AUDIENCE)
    .setIssuedAt(Math.floor((options.iatMs ?? start) / 1000))
    .setNotBefore(Math.floor(start / 1000))
    .setExpirationTime(Math.ceil(end / 1000))
  if (options.jti !== null) jwt = jwt.setJti(options.jti ?? 'g-0011223344556677')
  const sub = options.sub === undefined ? (payload.agent_id as string | undefined) : options.sub
  if (sub !== null && sub !== undefined) jwt = jwt.setSubject(sub)
  return jwt.sign(key)
}

/** A verified grant for tests (signed and verified for real). */
export async function grantFor(
  keys: TestKeys,
  nowMs: number,
  overrides: Partial<GrantClaims> = {},
  jti = 'g-0011223344556677',
): Promise<VerifiedGrant> {
  const c = claims(nowMs, overrides)
  const token = await signGrant(keys.pair.privateKey, { ...c }, { jti })
  return verifyGrant(token, keys.publicJwk, c.agent_id, nowMs)
}
