/**
 * The first path end to end, as an operator runs it: a collector process on the embedded engine,
 * an agent process enrolled with a site token, host metrics stored and listed in the fleet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentProcess, CollectorProcess, freePort, queryStore, tmp, waitFor } from './harness.ts'

describe('collector and agent processes', () => {
  let collector: CollectorProcess
  let agent: AgentProcess
  const dataDir = tmp('pipeline-data')

  beforeAll(async () => {
    collector = await new CollectorProcess(dataDir, await freePort()).ready()
    const token = await collector.enrollToken('geneva-pm')
    agent = new AgentProcess(tmp('pipeline-agent'), collector.url, {
      TALLY_ENROLLMENT_TOKEN: token,
      TALLY_ENROLLMENT_HOSTNAME: 'delegate-ws-01',
    })
  })

  afterAll(async () => {
    await agent?.stop('SIGKILL')
    await collector?.stop('SIGKILL')
  })

  it('lists the host in /v1/fleet after two intervals', async () => {
    const entry = await waitFor('two batches in the fleet', async () => {
      const [first] = await collector.fleet()
      return first !== undefined && (first.last_seq ?? 0) >= 2 ? first : undefined
    })
    expect(entry).toMatchObject({
      host: 'delegate-ws-01',
      site: 'geneva-pm',
      version: expect.any(String),
    })
    expect(entry.batches).toBeGreaterThanOrEqual(2)
    expect(Date.parse(entry.last_seen ?? '')).toBeGreaterThan(Date.now() - 30_000)
  })

  it('stops both cleanly and stores sane host metrics', async () => {
    expect(await agent.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    expect(await collector.stop('SIGTERM')).toEqual({ code: 0, signal: null })

    const metric = (name: string) =>
      queryStore<{
        value: number
        ts: string
        attributes: Record<string, string>
        host: string
        site: string
      }>(
        dataDir,
        `SELECT value, toString(ts) AS ts, attributes, host, site FROM tally.host_metrics WHERE metric = '${name}'`,
      )
    const cpu = await metric('system.cpu.utilization')
    expect(cpu.length).toBeGreaterThanOrEqual(7 * 2)
    for (const row of cpu) {
      expect(row.value).toBeGreaterThanOrEqual(0)
      expect(row.value).toBeLessThanOrEqual(1)
      expect(row).toMatchObject({ host: 'delegate-ws-01', site: 'geneva-pm' })
    }
    const perInterval = await queryStore<{ used: number; limit: number }>(
      dataDir,
      `SELECT sumIf(value, metric = 'system.memory.usage' AND attributes['system.memory.state'] = 'used') AS used,
              anyIf(value, metric = 'system.memory.limit') AS limit
       FROM tally.host_metrics GROUP BY ts`,
    )
    expect(perInterval.length).toBeGreaterThanOrEqual(2)
    for (const { used, limit } of perInterval) {
      expect(limit).toBeGreaterThan(0)
      expect(used).toBeLessThanOrEqual(limit)
    }
    const io = await metric('system.network.io')
    expect(io.length).toBeGreaterThan(0)
    for (const row of io) expect(row.value).toBeGreaterThanOrEqual(0)
    const [inventory] = await queryStore<{ n: number }>(
      dataDir,
      'SELECT count() AS n FROM tally.host_inventory',
    )
    expect(inventory?.n).toBe(1)
    const [rollup] = await queryStore<{ raw: number; rolled: number }>(
      dataDir,
      `SELECT (SELECT count() FROM tally.host_metrics) AS raw,
              (SELECT sum(samples) FROM tally.host_metrics_1m) AS rolled`,
    )
    expect(rollup?.rolled).toBe(rollup?.raw)
  })
})
