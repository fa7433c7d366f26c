/**
 * `tally usage` against a real collector process: the same buckets as GET /v1/usage, the same
 * k rule (a service used by fewer than k hosts is not shown, not even folded into `other` when
 * that stays under k), as a table and as JSON. The collector releases a minute
 * `usage.release_after_seconds` after it closed, on its own maintenance tick: the tests wait for
 * that release (test/e2e/usage-release.ts) before they read.
 */
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildCommand } from '../../cli/command-table.ts'
import { usageCommand } from '../../cli/commands/fleet-usage.ts'
import { agents } from '../../protocol/api/index.ts'
import { USAGE_DIMENSIONS } from '../../protocol/api/names.ts'
import { call } from '../../protocol/client.ts'
import type { EnrollResponse, HostBatch, UsageContribution } from '../../protocol/v1.ts'
import { CollectorProcess, freePort, tmp } from '../e2e/harness.ts'
import { awaitRelease, RELEASE_ENV, RELEASE_WAIT_MS } from '../e2e/usage-release.ts'
import { tally } from './run-tally.ts'

const usage = (service: string, bytes: number): UsageContribution => ({
  direction: 'outbound',
  ip_version: 4,
  transport: 'tcp',
  service,
  peer_class: 'internet',
  bytes,
  packets: 2,
  flows: 1,
})

describe('tally usage', () => {
  let collector: CollectorProcess
  let admin: string[]
  let from: string
  let to: string

  beforeAll(async () => {
    collector = await new CollectorProcess(tmp('usage-cli'), await freePort(), {
      TALLY_USAGE_K: '3',
      ...RELEASE_ENV,
    }).ready()
    admin = ['--collector', collector.url, '--token', collector.adminToken()]
    const token = await collector.enrollToken('lyon-pm', 4)
    // https from four hosts; ssh from one, ftp from one: "other" has two hosts, under k = 3.
    const plan: UsageContribution[][] = [
      [usage('https', 1000), usage('ssh', 50)],
      [usage('https', 2000), usage('ftp', 60)],
      [usage('https', 3000)],
      [usage('https', 4000)],
    ]
    const enrollment = { collectorUrl: collector.url, token }
    const hosts: { agent: EnrollResponse; contributions: UsageContribution[] }[] = []
    for (const [i, contributions] of plan.entries()) {
      const agent = await call(enrollment, agents.enrollAgent, {
        body: { hostname: `ws-${i}`, agent_version: '0.1.0-test' },
      })
      hosts.push({ agent, contributions })
    }
    // Usage counts only from a batch that started within the release delay of its arrival, so
    // the interval is taken now, after the slow part (a loaded machine may take longer than the
    // delay to start a collector and enroll). Usage is stamped at the interval's start: one
    // minute, one bucket.
    const start = Math.floor(Date.now() / 1000) - 2
    from = new Date((start - 600) * 1000).toISOString()
    to = new Date((start + 600) * 1000).toISOString()
    for (const { agent, contributions } of hosts) {
      const { agent_id, credential } = agent
      const batch: HostBatch = {
        version: 1,
        agent_id,
        seq: 1,
        agent_version: '0.1.0-test',
        interval: { start: start * 1000, end: (start + 10) * 1000 },
        samples: [],
        usage: contributions,
      }
      const ingested = await fetch(`${collector.url}/v1/ingest`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${credential}`,
          'content-type': 'application/json',
          'content-encoding': 'gzip',
        },
        body: gzipSync(JSON.stringify(batch)),
      })
      expect(ingested.status, await ingested.text()).toBe(200)
    }
    // Released as k allows: https from 4 hosts, 2 packets each; ssh and ftp (2 hosts together,
    // under k = 3) never are.
    await awaitRelease(collector, 'lyon-pm', start * 1000, 8)
  }, RELEASE_WAIT_MS + 60_000)
  afterAll(async () => {
    await collector?.stop('SIGKILL')
  })

  it('prints what the API answers, with the k rule applied', async () => {
    const json = await tally([
      'usage',
      '--by',
      'service',
      '--from',
      from,
      '--to',
      to,
      '--json',
      ...admin,
    ])
    expect(json.code, json.stderr).toBe(0)
    const answer = JSON.parse(json.stdout)
    const direct = await collector.api<unknown>(
      'GET',
      `/v1/usage?by=service&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`,
    )
    expect(answer).toEqual(direct)
    expect(answer.k).toBe(3)
    expect(answer.buckets).toEqual([
      expect.objectContaining({ site: 'lyon-pm', service: 'https', bytes: 10_000, hosts: 4 }),
    ])
  })

  it('prints a table an operator can read, without the buckets under k', async () => {
    const table = await tally(['usage', '--from', from, '--to', to, ...admin])
    expect(table.code, table.stderr).toBe(0)
    const lines = table.stdout.trimEnd().split('\n')
    expect(lines[0]).toContain('site usage by service')
    expect(lines[0]).toContain('at least k=3 hosts')
    expect(lines[1]).toMatch(/^time\s+site\s+service\s+bytes\s+packets\s+flows\s+hosts$/)
    expect(lines.slice(2)).toHaveLength(1)
    expect(lines[2]).toMatch(/lyon-pm\s+https\s+10000\s+8\s+4\s+4$/)
    expect(table.stdout).not.toMatch(/ssh|ftp|other/)
  })

  it("says so when no bucket reaches k, and refuses a bad query in the API's words", async () => {
    const empty = await tally([
      'usage',
      '--site',
      'nowhere-pm',
      '--from',
      from,
      '--to',
      to,
      ...admin,
    ])
    expect(empty.code).toBe(0)
    expect(empty.stdout).toContain('no bucket reaches k=3 hosts in this range')
    const bad = await tally(['usage', '--step', '5', ...admin])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('failed (400)')
    expect(bad.stderr).toContain('step')
  })

  it('needs an operator or admin token', async () => {
    const result = await tally(['usage', '--collector', collector.url, '--token', 'tly_u_nobody'])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('failed (401)')
  })

  it('offers the groupings the API has', () => {
    const by = usageCommand.options?.find((o) => o.flags.startsWith('--by '))
    expect(by?.choices).toEqual([...USAGE_DIMENSIONS])
  })
})

describe('tally usage --help', () => {
  it('says what the API sums: released cells of a minute, and steps of whole minutes', () => {
    const help = buildCommand(usageCommand).helpInformation().replace(/\s+/g, ' ')
    expect(help).toContain('summed from released cells only')
    expect(help).toContain('A cell is one site, minute and value of each grouping')
    expect(help).toContain('a whole number of minutes')
    // The k rule holds per cell of one minute, not per row of the answer.
    expect(help).not.toMatch(/bucket/i)
    expect(help).not.toContain('at least 10')
  })
})
