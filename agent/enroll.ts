/**
 * The agent's identity: enrolled once with a site-scoped token, then its own credential and the
 * collector's grant-signing public key, kept in the state directory (0600).
 *
 * Before its first enrollment attempt the agent makes an instance secret and keeps it in the
 * state directory. It goes with every attempt: if an answer is lost (a timeout, a dropped
 * connection, the agent killed before it wrote the credential), the next attempt with the same
 * token gets the same enrollment again, with a new credential, instead of "already used".
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { readStateFile, writeFileAtomic } from '../common/atomic-file.ts'
import { EnrollResponse, ErrorBody, InstanceSecret } from '../protocol/v1.ts'
import type { AgentConfig } from './config.ts'
import { type AgentResponse, agentFetch } from './http.ts'
import { AGENT_VERSION } from './version.ts'

export const AgentCredential = EnrollResponse.extend({ collector_url: z.string() })
export type AgentCredential = z.infer<typeof AgentCredential>

export class EnrollmentError extends Error {
  override name = 'EnrollmentError'
  /** True when trying again later may work (the collector was unreachable or unavailable). */
  readonly retryable: boolean
  constructor(message: string, retryable = false) {
    super(message)
    this.retryable = retryable
  }
}

export const credentialPath = (stateDir: string): string => join(stateDir, 'credential.json')
export const instancePath = (stateDir: string): string => join(stateDir, 'instance')

/** The stored credential; undefined when there is none. An unusable file is one line naming it. */
export function readCredential(stateDir: string): AgentCredential | undefined {
  return readStateFile(credentialPath(stateDir), {
    parse: (data) => {
      const parsed = AgentCredential.safeParse(JSON.parse(data.toString('utf8')))
      if (!parsed.success) throw new Error('not an agent credential')
      return parsed.data
    },
    remedy: 'remove it to enroll again (with a new enrollment token)',
  })
}

/**
 * The agent's instance secret, made (and durably written) on first use. It must exist before the
 * first attempt: written after, a lost answer could not be asked for again.
 */
export function ensureInstance(stateDir: string): string {
  const file = instancePath(stateDir)
  const existing = readStateFile(file, {
    parse: (data) => {
      const parsed = InstanceSecret.safeParse(data.toString('utf8').trim())
      if (!parsed.success)
        throw new Error('not an instance secret (32 or more random bytes, base64url)')
      return parsed.data
    },
    remedy: 'remove it (and enroll with a new enrollment token if the agent is not enrolled yet)',
  })
  if (existing !== undefined) return existing
  const secret = randomBytes(32).toString('base64url')
  writeFileAtomic(file, `${secret}\n`, 0o600)
  return secret
}

function enrollmentToken(config: AgentConfig): string {
  const { token, token_file } = config.enrollment
  if (token !== undefined && token !== '') return token.trim()
  if (token_file !== undefined) {
    try {
      return readFileSync(token_file, 'utf8').trim()
    } catch (err) {
      throw new EnrollmentError(
        `cannot read enrollment.token_file ${token_file}: ${(err as Error).message}`,
      )
    }
  }
  throw new EnrollmentError(
    'this agent is not enrolled yet and has no enrollment token: set enrollment.token or ' +
      'enrollment.token_file (make one with `tally admin enroll-token --site NAME`)',
  )
}

/** The stored credential, or a new one from the collector when there is none yet. */
export async function ensureEnrolled(config: AgentConfig): Promise<AgentCredential> {
  const existing = readCredential(config.state_dir)
  if (existing !== undefined) return existing
  const token = enrollmentToken(config)
  mkdirSync(config.state_dir, { recursive: true, mode: 0o700 })
  const instance = ensureInstance(config.state_dir)
  const url = new URL('/v1/agents/enroll', config.collector.url)
  let response: AgentResponse
  let body: unknown
  try {
    response = await agentFetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        hostname: config.enrollment.hostname ?? hostname(),
        agent_version: AGENT_VERSION,
        instance,
      }),
      signal: AbortSignal.timeout(config.collector.timeout_seconds * 1000),
    })
    // Read within the same timeout: an answer cut off half way is a lost answer, asked again.
    body = await response.json().catch(() => undefined)
  } catch (err) {
    throw new EnrollmentError(
      `cannot reach the collector at ${url}: ${(err as Error).message}`,
      true,
    )
  }
  if (!response.ok) {
    const reason = ErrorBody.safeParse(body)
    throw new EnrollmentError(
      `enrollment refused (${response.status}): ${reason.success ? reason.data.message : 'no reason given'}`,
      response.status >= 500,
    )
  }
  const enrolled = EnrollResponse.safeParse(body)
  if (!enrolled.success) {
    // A 201 whose body did not arrive whole: the same token and instance get it again.
    throw new EnrollmentError(
      `the collector at ${url} answered ${response.status} without a whole enrollment`,
      true,
    )
  }
  const credential: AgentCredential = { ...enrolled.data, collector_url: config.collector.url }
  writeFileAtomic(
    credentialPath(config.state_dir),
    `${JSON.stringify(credential, null, 2)}\n`,
    0o600,
  )
  return credential
}
