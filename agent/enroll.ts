/**
 * The agent's identity: enrolled once with a site-scoped token, then its own credential and the
 * collector's grant-signing public key, kept in the state directory (0600).
 */
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { EnrollResponse, ErrorBody } from '../protocol/v1.ts'
import type { AgentConfig } from './config.ts'
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

export function readCredential(stateDir: string): AgentCredential | undefined {
  const file = credentialPath(stateDir)
  if (!existsSync(file)) return undefined
  const parsed = AgentCredential.safeParse(JSON.parse(readFileSync(file, 'utf8')))
  if (!parsed.success)
    throw new EnrollmentError(`${file} is not a valid agent credential; remove it to enroll again`)
  return parsed.data
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
  const url = new URL('/v1/agents/enroll', config.collector.url)
  let response: Response
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        hostname: config.enrollment.hostname ?? hostname(),
        agent_version: AGENT_VERSION,
      }),
      signal: AbortSignal.timeout(config.collector.timeout_seconds * 1000),
    })
  } catch (err) {
    throw new EnrollmentError(
      `cannot reach the collector at ${url}: ${(err as Error).message}`,
      true,
    )
  }
  const body: unknown = await response.json().catch(() => undefined)
  if (!response.ok) {
    const reason = ErrorBody.safeParse(body)
    throw new EnrollmentError(
      `enrollment refused (${response.status}): ${reason.success ? reason.data.message : 'no reason given'}`,
      response.status >= 500,
    )
  }
  const enrolled = EnrollResponse.parse(body)
  const credential: AgentCredential = { ...enrolled, collector_url: config.collector.url }
  const file = credentialPath(config.state_dir)
  writeFileSync(`${file}.tmp`, `${JSON.stringify(credential, null, 2)}\n`, { mode: 0o600 })
  chmodSync(`${file}.tmp`, 0o600)
  renameSync(`${file}.tmp`, file)
  return credential
}
