/**
 * A lost enrollment answer, with real processes: the collector enrolls the agent, the answer dies
 * with its connection (a proxy in this test hangs up instead of passing the 201 on), and the
 * agent, asking again with the same single-use token and its instance secret, gets its
 * enrollment back and ships batches: one agent in the fleet, no "already used". Then an empty
 * credential.json stops the agent with one line naming the file.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentProcess, CollectorProcess, freePort, tmp, waitFor } from './harness.ts'

describe('an enrollment answer lost on the way', () => {
  let collector: CollectorProcess
  let agent: AgentProcess | undefined
  let proxy: Server
  let proxyUrl: string
  const stateDir = tmp('enroll-replay-agent')
  let enrollAttempts = 0

  beforeAll(async () => {
    collector = await new CollectorProcess(tmp('enroll-replay-data'), await freePort()).ready()
    const upstream = new URL(collector.url)
    // Passes every request to the collector; of the first enrollment it passes the request
    // only, and hangs up on the agent once the collector has answered.
    proxy = createServer((req, res) => {
      const isEnroll = req.url === '/v1/agents/enroll'
      if (isEnroll) enrollAttempts += 1
      const loseAnswer = isEnroll && enrollAttempts === 1
      const forwarded = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          if (loseAnswer) {
            answer.resume()
            answer.on('end', () => req.socket.destroy())
            return
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
        },
      )
      forwarded.on('error', () => req.socket.destroy())
      req.pipe(forwarded)
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()))
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await agent?.stop('SIGKILL')
    await collector?.stop('SIGKILL')
    proxy?.closeAllConnections()
    await new Promise((resolve) => proxy?.close(resolve))
  })

  it('is asked for again and answered: one agent, shipping batches', async () => {
    const token = await collector.enrollToken('replay-site')
    agent = new AgentProcess(stateDir, proxyUrl, {
      TALLY_ENROLLMENT_TOKEN: token,
      TALLY_ENROLLMENT_HOSTNAME: 'replay-ws',
      TALLY_CAPTURE_INTERFACE: 'none',
    })
    const entry = await waitFor('a batch from the re-enrolled agent', async () => {
      if (agent?.child.exitCode !== null) throw new Error(`agent exited: ${agent?.stderr}`)
      const fleet = await collector.fleet()
      return fleet.length > 0 && (fleet[0]?.last_seq ?? 0) >= 1 ? fleet : undefined
    })
    expect(enrollAttempts).toBe(2)
    expect(entry).toHaveLength(1)
    expect(entry[0]).toMatchObject({ host: 'replay-ws', site: 'replay-site' })
    const agentId = entry[0]?.agent_id
    const enrolled = collector.lines.filter((l) => l.agent_id === agentId && 'replayed' in l)
    expect(enrolled.map((l) => l.replayed)).toEqual([false, true])
    const credential = JSON.parse(readFileSync(join(stateDir, 'credential.json'), 'utf8'))
    expect(credential.agent_id).toBe(agentId)
    for (const file of ['credential.json', 'instance']) {
      expect(statSync(join(stateDir, file)).mode & 0o777, file).toBe(0o600)
    }
    expect(await agent.stop('SIGTERM')).toEqual({ code: 0, signal: null })
  })

  it('an empty credential.json then stops the agent with one line naming it', async () => {
    const file = join(stateDir, 'credential.json')
    writeFileSync(file, '')
    agent = new AgentProcess(stateDir, proxyUrl, { TALLY_CAPTURE_INTERFACE: 'none' })
    const exit = await agent.exited
    expect(exit.code).toBe(1)
    const lines = agent.stderr.split('\n').filter((l) => l.trim() !== '')
    const naming = lines.filter((l) => l.includes(file))
    expect(naming, agent.stderr).toHaveLength(1)
    expect(naming[0]).toContain('is empty')
    expect(agent.stderr).not.toMatch(/\n\s+at /)
  })
})
