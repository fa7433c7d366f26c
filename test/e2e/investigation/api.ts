/**
 * Helpers for the investigation end-to-end test: HTTP calls that answer with their status (a
 * refusal is something to assert, not an exception), the people of a case, drill-down calls
 * remembered for the comparison with the register, and the subject tcpdumps the agent runs.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

export const sha256 = (data: string | Uint8Array): string =>
  createHash('sha256').update(data).digest('hex')

export interface Answer {
  status: number
  text: string
  bytes: Buffer
}

export interface CallOptions {
  token: string
  /** The access grant (header X-Tally-Grant). */
  grant?: string
  body?: unknown
}

export async function call(
  baseUrl: string,
  method: 'GET' | 'POST',
  path: string,
  options: CallOptions,
): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${options.token}` }
  if (options.grant !== undefined) headers['x-tally-grant'] = options.grant
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: options.body === undefined ? null : JSON.stringify(options.body),
  })
  const bytes = Buffer.from(await response.arrayBuffer())
  return { status: response.status, text: bytes.toString('utf8'), bytes }
}

/** The JSON of a successful answer; anything else fails with the status and the body. */
export function json<T>(answer: Answer, status = 200): T {
  if (answer.status !== status)
    throw new Error(`expected ${status}, got ${answer.status}: ${answer.text.slice(0, 500)}`)
  return JSON.parse(answer.text) as T
}

/** The problem code of a refusal (`error` of the problem document). */
export function problemCode(answer: Answer): string {
  try {
    const body = JSON.parse(answer.text) as { error?: unknown }
    return typeof body.error === 'string' ? body.error : ''
  } catch {
    return ''
  }
}

export const PEOPLE = [
  'requester',
  'approver',
  'oios_chief',
  'itsd_investigator',
  'receiving_official',
  'auditor',
] as const
export type Role = (typeof PEOPLE)[number]
export interface Person {
  user_id: string
  token: string
}

/**
 * One user per role, made as on a site: the ITSD founder (admin.token) makes its one extra admin,
 * whose provisional token that admin replaces; every ITSD person is proposed by the founder and
 * confirmed by the second admin, the person's token joined from the two parts. The OIOS chief is
 * OIOS's founder, from the bootstrap token the collector wrote outside its data directory.
 */
export async function createPeople(
  baseUrl: string,
  adminToken: string,
  oiosBootstrapToken: string,
): Promise<Record<Role, Person>> {
  const out: Partial<Record<Role, Person>> = {}
  const extra = json<{ token: string }>(
    await call(baseUrl, 'POST', '/v1/admin/users', {
      token: adminToken,
      body: { name: 'e2e second admin', roles: ['admin'] },
    }),
    201,
  )
  const secondAdmin = json<Person>(
    await call(baseUrl, 'POST', '/v1/users/me/token', { token: extra.token }),
    201,
  )
  for (const role of PEOPLE) {
    if (role === 'oios_chief') {
      out[role] = json<Person>(
        await call(baseUrl, 'POST', '/v1/users/me/token', { token: oiosBootstrapToken }),
        201,
      )
      continue
    }
    const proposed = json<{ proposal_id: string; user_id: string; token_part: string }>(
      await call(baseUrl, 'POST', '/v1/admin/users', {
        token: adminToken,
        body: { name: `e2e ${role}`, roles: [role] },
      }),
      201,
    )
    const confirmed = json<{ token_part: string }>(
      await call(baseUrl, 'POST', `/v1/admin/proposals/${proposed.proposal_id}/confirm`, {
        token: secondAdmin.token,
      }),
    )
    out[role] = {
      user_id: proposed.user_id,
      token: `${proposed.token_part}${confirmed.token_part}`,
    }
  }
  return out as Record<Role, Person>
}

/** The agent's own bearer credential, from its state directory. */
export function agentCredential(stateDir: string): string {
  const stored = JSON.parse(readFileSync(join(stateDir, 'credential.json'), 'utf8')) as {
    credential: string
  }
  return stored.credential
}

export interface CaseDoc {
  case_id: string
  state: string
  window: { start: string; end: string }
  investigator?: string
  purged_at?: string
}

export interface FlowRow {
  agent_id: string
  start: number
  end: number
  protocol: number
  src: string
  dst: string
  src_port: number
  dst_port: number
  bytes: number
  packets: number
}
export interface DnsRow {
  agent_id: string
  ts: number
  client: string
  server: string
  query: string
  qtype: string
  rcode: string
}
export interface WebRow {
  agent_id: string
  ts: number
  client: string
  server: string
  server_port: number
  kind: string
  name: string
}
export interface DrillRows {
  flows: FlowRow
  dns: DnsRow
  web: WebRow
}
export type Category = keyof DrillRows

export interface DrillAnswer<C extends Category> {
  case_id: string
  category: C
  grant_id: string
  count: number
  truncated: boolean
  rows: DrillRows[C][]
}

/** What one answered drill-down call returned, for the comparison with the register. */
export interface DrillCall {
  case_id: string
  category: Category
  rows: number
  sha256: string
}

/** Drill-down calls of one investigator; every answered one is remembered. */
export class Investigator {
  readonly calls: DrillCall[] = []
  readonly #baseUrl: string
  readonly #token: string

  constructor(baseUrl: string, person: Person) {
    this.#baseUrl = baseUrl
    this.#token = person.token
  }

  /** The raw answer, whatever it is. */
  async raw(caseId: string, category: Category, grant?: string, query = ''): Promise<Answer> {
    const answer = await call(this.#baseUrl, 'GET', `/v1/cases/${caseId}/${category}${query}`, {
      token: this.#token,
      ...(grant === undefined ? {} : { grant }),
    })
    if (answer.status === 200) {
      const body = JSON.parse(answer.text) as { count: number }
      this.calls.push({ case_id: caseId, category, rows: body.count, sha256: sha256(answer.bytes) })
    }
    return answer
  }

  async rows<C extends Category>(
    caseId: string,
    category: C,
    grant: string,
  ): Promise<DrillRows[C][]> {
    const body = json<DrillAnswer<C>>(await this.raw(caseId, category, grant))
    expectTrue(body.count === body.rows.length, 'count is the number of rows')
    expectTrue(!body.truncated, 'the answer is not truncated')
    return body.rows
  }

  async accessGrant(caseId: string): Promise<Answer> {
    return call(this.#baseUrl, 'GET', `/v1/cases/${caseId}/access-grant`, { token: this.#token })
  }
}

function expectTrue(condition: boolean, what: string): void {
  if (!condition) throw new Error(`not true: ${what}`)
}

export interface RegisterEntry {
  seq: number
  kind: string
  actor: string
  case_id?: string
  details: Record<string, unknown>
}

/** Every entry of a register about one case, as `reader` sees them. */
export async function registerEntries(
  baseUrl: string,
  reader: Person,
  caseId: string,
): Promise<RegisterEntry[]> {
  const out: RegisterEntry[] = []
  let from: number | null = 1
  while (from !== null) {
    const page: { entries: RegisterEntry[]; next_from: number | null } = json(
      await call(
        baseUrl,
        'GET',
        `/v1/register/itsd/entries?case_id=${caseId}&from=${from}&limit=10000`,
        { token: reader.token },
      ),
    )
    out.push(...page.entries)
    from = page.next_from
  }
  return out
}

/** Command lines of the running tcpdumps whose filter names `address` (`pgrep -af`). */
export async function tcpdumpsFor(address: string): Promise<string[]> {
  let stdout = ''
  try {
    stdout = (await promisify(execFile)('pgrep', ['-af', 'tcpdump'])).stdout
  } catch (error) {
    // pgrep exits 1 when nothing matches.
    if ((error as { code?: unknown }).code !== 1) throw error
  }
  const pattern = new RegExp(`\\bhost ${address.replaceAll('.', '\\.')}\\b`)
  return stdout.split('\n').filter((line) => /(^|\/|\s)tcpdump\s/.test(line) && pattern.test(line))
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
