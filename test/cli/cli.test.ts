/** The `tally` command line as an operator meets it: help, config checks, admin commands. */
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProposalAnswer, ProposalDecided, ReplacedToken } from '../../protocol/api/admin.ts'
import { CollectorProcess, freePort, tmp } from '../e2e/harness.ts'

const ROOT = new URL('../../', import.meta.url).pathname

async function tally(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['bin/tally.ts', ...args],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
      },
    )
    return { code: 0, stdout, stderr }
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

/** A field the answer's schema leaves optional, which this answer must have. */
function given<T>(value: T | null | undefined, field: string): T {
  if (value === null || value === undefined) throw new Error(`the answer has no ${field}`)
  return value
}

describe('help', () => {
  it('lists every command, and each has its own help', async () => {
    const top = await tally(['--help'])
    for (const command of ['demo', 'collector', 'agent', 'admin', 'fleet'])
      expect(top.stdout).toContain(command)
    const sub = await tally(['admin', 'user', 'create', '--help'])
    expect(sub.stdout).toContain('--role')
    expect(sub.stdout).toContain('receiving_official')
  })
})

describe('config checks', () => {
  it('accepts the example files in deploy/', async () => {
    expect(await tally(['collector', 'check', '-c', 'deploy/collector.yaml'])).toMatchObject({
      code: 0,
    })
    expect(await tally(['agent', 'check', '-c', 'deploy/agent.yaml'])).toMatchObject({ code: 0 })
  })

  it('says exactly what is wrong, one line per problem', async () => {
    const file = join(tmp('config'), 'collector.yaml')
    writeFileSync(file, 'listen:\n  port: eighty\n  hots: x\nclickhouse:\n  url: not a url\n')
    const result = await tally(['collector', 'check', '-c', file])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('listen.port: Invalid input: expected number, received string')
    expect(result.stderr).toContain('listen: Unrecognized key: "hots"')
    expect(result.stderr).toContain('clickhouse.url: must be an http:// or https:// URL')
  })

  it('applies environment overrides and reports a missing file', async () => {
    const result = await tally(['agent', 'check', '-c', 'deploy/agent.yaml'], {
      TALLY_INTERVAL_SECONDS: '0',
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(
      /TALLY_INTERVAL_SECONDS \(environment, sets interval_seconds\): .*>=1/,
    )
    const missing = await tally(['agent', 'check', '-c', '/nonexistent/agent.yaml'])
    expect(missing.stderr).toContain('cannot read config file /nonexistent/agent.yaml')
  })
})

describe('admin commands against a running collector', () => {
  let collector: CollectorProcess
  beforeAll(async () => {
    collector = await new CollectorProcess(tmp('cli-data'), await freePort()).ready()
  })
  afterAll(async () => {
    await collector?.stop('SIGKILL')
  })

  it('make enrollment tokens and users, and show the fleet with an operator token', async () => {
    const admin = [
      '--collector',
      collector.url,
      '--token-file',
      join(collector.dataDir, 'admin.token'),
    ]
    const token = await tally([
      'admin',
      'enroll-token',
      '--site',
      'nairobi-pm',
      '--max-uses',
      '3',
      '--json',
      ...admin,
    ])
    expect(token.code).toBe(0)
    expect(JSON.parse(token.stdout)).toMatchObject({
      site: 'nairobi-pm',
      max_uses: 3,
      token: expect.stringMatching(/^tly_e_/),
    })

    // The founder's one extra admin, who replaces its provisional token, then confirms what the
    // founder proposes; the operator's token is the two parts joined.
    const extra = await tally([
      'admin',
      'user',
      'create',
      '--name',
      'Second Admin',
      '--role',
      'admin',
      '--json',
      ...admin,
    ])
    const provisional = given(ProposalAnswer.parse(JSON.parse(extra.stdout)).token, 'token')
    const replaced = await tally([
      'admin',
      'replace-token',
      '--json',
      '--collector',
      collector.url,
      '--token',
      provisional,
    ])
    const secondAdmin = ReplacedToken.parse(JSON.parse(replaced.stdout)).token
    const operator = await tally([
      'admin',
      'user',
      'create',
      '--name',
      'Ops One',
      '--role',
      'operator',
      '--json',
      ...admin,
    ])
    const proposed = ProposalAnswer.parse(JSON.parse(operator.stdout))
    const confirmed = await tally([
      'admin',
      'confirm-role',
      given(proposed.proposal_id, 'proposal_id'),
      '--json',
      '--collector',
      collector.url,
      '--token',
      secondAdmin,
    ])
    expect(confirmed.code, confirmed.stderr).toBe(0)
    const operatorToken = `${proposed.token_part}${ProposalDecided.parse(JSON.parse(confirmed.stdout)).token_part}`
    const fleet = await tally(['fleet', '--collector', collector.url, '--token', operatorToken])
    expect(fleet).toMatchObject({ code: 0, stdout: 'no agents enrolled\n' })

    // An operator is not an admin.
    const refused = await tally([
      'admin',
      'enroll-token',
      '--site',
      'x',
      '--collector',
      collector.url,
      '--token',
      operatorToken,
    ])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('failed (403)')

    const badRole = await tally([
      'admin',
      'user',
      'create',
      '--name',
      'x',
      '--role',
      'wizard',
      ...admin,
    ])
    expect(badRole.code).toBe(1)
    expect(badRole.stderr).toContain('roles.0')
  })
})
