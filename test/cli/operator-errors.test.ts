/**
 * What a new operator meets when something is wrong: one line that names the thing to fix (the
 * variable, the setting, the missing scheme), never a stack, and never a secret on the screen.
 */
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadAgentConfig } from '../../agent/config.ts'
import { loadCollectorConfig } from '../../collector/config.ts'
import { ConfigError, maskSecrets } from '../../common/config.ts'
import { CollectorProcess, freePort, tmp } from '../e2e/harness.ts'
import { linesOf, tally } from './run-tally.ts'

const file = (name: string, text: string): string => {
  const path = join(tmp('operator'), name)
  writeFileSync(path, text)
  return path
}

describe('an environment override that does not parse names the variable', () => {
  it('TALLY_LISTEN_PORT=abc blames TALLY_LISTEN_PORT, not the file', () => {
    const config = file('collector.yaml', 'listen:\n  host: 127.0.0.1\n')
    let error: unknown
    try {
      loadCollectorConfig(config, { TALLY_LISTEN_PORT: 'abc' })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    const message = (error as Error).message
    expect(message).toContain('TALLY_LISTEN_PORT')
    expect(message).toContain('listen.port')
    expect(message).not.toContain(`${config} is invalid`)
  })

  it('the file is still blamed for what it set, the variable for its own', () => {
    const config = file('collector.yaml', 'usage:\n  k: 0\n')
    let message = ''
    try {
      loadCollectorConfig(config, { TALLY_LISTEN_PORT: 'abc' })
    } catch (err) {
      message = (err as Error).message
    }
    const [header, ...lines] = message.split('\n')
    expect(header).toBe(`${config} and the environment (TALLY_LISTEN_PORT) are invalid:`)
    expect(lines.sort()).toEqual([
      '  TALLY_LISTEN_PORT (environment, sets listen.port): Invalid input: expected number, received string',
      '  usage.k: Too small: expected number to be >=1',
    ])
  })

  it('an override that is not YAML names the variable and does not repeat its value', () => {
    expect(() =>
      loadAgentConfig(undefined, { TALLY_CAPTURE_SITE_PREFIXES: '[10.0.0.0/8, secret-ish' }),
    ).toThrow(
      /^TALLY_CAPTURE_SITE_PREFIXES \(the environment override of capture.site_prefixes\) is not valid YAML/,
    )
    try {
      loadAgentConfig(undefined, { TALLY_CAPTURE_SITE_PREFIXES: '[10.0.0.0/8, secret-ish' })
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-ish')
    }
  })

  it('through the CLI: one problem, one line, named by its variable', async () => {
    const result = await tally(['collector', 'check', '-c', 'deploy/collector.yaml'], {
      TALLY_LISTEN_PORT: 'abc',
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('TALLY_LISTEN_PORT (environment, sets listen.port)')
    expect(result.stderr).not.toContain('deploy/collector.yaml is invalid')
  })
})

describe('check refuses what run refuses', () => {
  it.each([
    ['localhost:8123', /scheme is missing \(http:\/\/localhost:8123 \?\)/],
    ['clickhouse://db:9000', /must be an http:\/\/ or https:\/\/ URL, not clickhouse:/],
  ])('clickhouse.url %s', async (url, why) => {
    const config = file('collector.yaml', `clickhouse:\n  url: ${url}\n`)
    for (const command of ['check', 'run']) {
      const result = await tally(['collector', command, '-c', config], {
        TALLY_DATA_DIR: tmp('refused'),
        TALLY_LISTEN_PORT: '0',
      })
      expect(result.code, command).toBe(1)
      expect(result.stderr, command).toMatch(why)
      expect(result.stderr, command).toContain('clickhouse.url')
    }
  })

  it('a webhook outbox without http(s) is refused too', () => {
    expect(() =>
      loadCollectorConfig(
        file('collector.yaml', 'cases:\n  outbox:\n    webhook_url: hooks.example.org/x\n'),
        {},
      ),
    ).toThrow(/cases.outbox.webhook_url: must be an http:\/\/ or https:\/\/ URL/)
  })
})

describe('check masks every secret it prints', () => {
  it('passwords, tokens, URL credentials and webhook paths are not printed', async () => {
    const config = file(
      'collector.yaml',
      [
        'clickhouse:',
        '  url: https://tally:url-pass-1@ch.example.org:8443/?access_token=query-secret-2',
        '  password: ch-pass-3',
        'cases:',
        '  outbox:',
        '    webhook_url: https://hooks.example.org/services/T0/B0/hook-secret-4',
        '',
      ].join('\n'),
    )
    const result = await tally(['collector', 'check', '-c', config])
    expect(result.code).toBe(0)
    for (const secret of ['url-pass-1', 'query-secret-2', 'ch-pass-3', 'hook-secret-4'])
      expect(result.stdout).not.toContain(secret)
    const shown = JSON.parse(result.stdout.slice(result.stdout.indexOf('{')))
    expect(shown.clickhouse.password).toBe('(set, not shown)')
    expect(shown.clickhouse.url).toContain('ch.example.org:8443')
    expect(shown.cases.outbox.webhook_url).toContain('hooks.example.org')
    expect(shown.listen.port).toBe(8080)

    const agent = file('agent.yaml', 'enrollment:\n  token: tly_e_agent-secret-5\n')
    const agentCheck = await tally(['agent', 'check', '-c', agent])
    expect(agentCheck.code).toBe(0)
    expect(agentCheck.stdout).not.toContain('agent-secret-5')
  })

  it('any key named like a secret, at any depth; an empty one stays empty', () => {
    expect(
      maskSecrets({
        a: { smtp: { password: 'p', pass: 'q', user: 'u' } },
        webhook_secret: 's',
        signing_key: 'k',
        token_file: '/etc/tally/token',
        token_ttl_hours: 24,
        password: '',
      }),
    ).toEqual({
      a: { smtp: { password: '(set, not shown)', pass: '(set, not shown)', user: 'u' } },
      webhook_secret: '(set, not shown)',
      signing_key: '(set, not shown)',
      token_file: '/etc/tally/token',
      token_ttl_hours: 24,
      password: '',
    })
  })
})

describe('the collector URL of the API commands', () => {
  it('--collector 127.0.0.1:18081 says the scheme is missing', async () => {
    const result = await tally(['fleet', '--collector', '127.0.0.1:18081', '--token', 'x'])
    expect(result.code).toBe(1)
    expect(linesOf(result.stderr)).toEqual([
      'tally: the collector URL 127.0.0.1:18081 (--collector or TALLY_COLLECTOR_URL) must be an http:// or https:// URL; the scheme is missing (http://127.0.0.1:18081 ?)',
    ])
  })

  it('the agent says the same of collector.url', async () => {
    const result = await tally(['agent', 'check', '-c', 'deploy/agent.yaml'], {
      TALLY_COLLECTOR_URL: '127.0.0.1:18081',
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('TALLY_COLLECTOR_URL (environment, sets collector.url)')
    expect(result.stderr).toContain('the scheme is missing')
  })
})

describe('a collector that cannot start says why in one line', () => {
  it('a ClickHouse server that cannot be reached: one line naming clickhouse.url, no stack', async () => {
    // A port that was free a moment ago and that nothing listens on.
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number }
        server.close(() => resolve(port))
      })
    })
    const result = await tally(['collector', 'run'], {
      TALLY_DATA_DIR: tmp('unreachable'),
      TALLY_LISTEN_PORT: '0',
      TALLY_CLICKHOUSE_URL: `http://127.0.0.1:${closed}`,
    })
    expect(result.code).toBe(1)
    // The collector's structured log (JSON records, for the supervisor's journal) may warn first,
    // e.g. of key files inside the data directory; what a person reads is one line, no stack.
    const lines = linesOf(result.stderr).filter((line) => !line.startsWith('{"level":'))
    expect(lines, result.stderr).toHaveLength(1)
    expect(lines[0]).toMatch(/^tally: .*clickhouse\.url/)
    expect(result.stderr).not.toMatch(/^\s+at /m)
  })

  describe('a second start on the same data directory', () => {
    let first: CollectorProcess
    beforeAll(async () => {
      first = await new CollectorProcess(tmp('twice'), await freePort()).ready()
    })
    afterAll(async () => {
      await first?.stop('SIGKILL')
    })

    it('is refused in one line that names the directory', async () => {
      const result = await tally(['collector', 'run'], {
        TALLY_DATA_DIR: first.dataDir,
        TALLY_LISTEN_PORT: '0',
      })
      expect(result.code).toBe(1)
      const lines = linesOf(result.stderr)
      expect(lines, result.stderr).toHaveLength(1)
      expect(lines[0]).toContain(first.dataDir)
      const demo = await tally(['demo', '--port', '0', '--data-dir', first.dataDir])
      expect(demo.code).toBe(1)
      expect(linesOf(demo.stderr), demo.stderr).toHaveLength(1)
      expect(demo.stderr).not.toContain('sonic boom')
    })
  })
})
