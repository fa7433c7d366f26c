/**
 * Tier I data for the console's tests, as an agent sends it: its capture grant for a case from
 * GET /v1/agents/grants, and batches of flow, DNS and web records posted to the restricted
 * ingest route under its own credential (gzip'd JSON), as the restricted tests do.
 */
import { decodeJwt } from 'jose'
import { expect } from 'vitest'
import type { FlowRecord, RestrictedBatch } from '../../protocol/grants.ts'
import { type App, postTierI, type TestAgent } from '../collector/cases-harness.ts'

export interface CaptureGrant {
  grant_id: string
  window: { start: number; end: number }
}

/** The capture grant `agent` runs for `caseId` (issued when the case became active). */
export async function captureGrant(
  app: App,
  agent: TestAgent,
  caseId: string,
): Promise<CaptureGrant> {
  const res = await app.request('/v1/agents/grants', {
    headers: { authorization: `Bearer ${agent.credential}` },
  })
  expect(res.status).toBe(200)
  const { grants } = (await res.json()) as { grants: { grant_id: string; token: string }[] }
  const found = grants.find((g) => decodeJwt(g.token).case_id === caseId)
  if (found === undefined) throw new Error(`the agent has no grant for ${caseId}`)
  const claims = decodeJwt(found.token) as unknown as CaptureGrant
  return { grant_id: found.grant_id, window: claims.window }
}

/** A TCP flow between the subject and a remote end, `at` ms since the epoch. */
export function flow(
  at: number,
  subject: string,
  remote: string,
  remotePort: number,
  protocol = 6,
): FlowRecord {
  return {
    start: at,
    end: at + 500,
    ip_version: 4,
    protocol,
    src: subject,
    dst: remote,
    src_port: 40_000 + (at % 20_000),
    dst_port: remotePort,
    bytes: 1200,
    packets: 4,
    tcp_flags: protocol === 6 ? 0x1b : 0,
    community_id: `1:${at}-${remotePort}-${protocol}`,
  }
}

/** Posts one batch of records under the grant; expects it stored. */
export async function ingest(
  app: App,
  agent: TestAgent,
  grant: CaptureGrant,
  seq: number,
  records: Partial<Pick<RestrictedBatch, 'flows' | 'dns' | 'web'>>,
): Promise<void> {
  const res = await postTierI(app, agent.credential, {
    version: 1,
    agent_id: agent.agent_id,
    grant_id: grant.grant_id,
    seq,
    flows: [],
    dns: [],
    web: [],
    pcap: [],
    ...records,
  })
  expect(res.status, await res.clone().text()).toBe(200)
  expect(((await res.json()) as { status: string }).status).toBe('stored')
}
