/** `tally collector ...`, `tally admin ...` and `tally fleet`. */
import { Command, Option } from 'commander'
import { ROLE_DESCRIPTIONS, ROLES } from './auth/roles.ts'
import { type ApiOptions, api, apiOptions, print } from './cli-api.ts'
import { migrateCommand } from './migrate-cli.ts'
import type { FleetAgent } from './store/fleet.ts'

export function collectorCommand(): Command {
  const collector = new Command('collector').description(
    'Run the collector: the HTTP API agents send to, on ClickHouse (embedded by default)',
  )
  collector
    .command('run', { isDefault: true })
    .description(
      'Start the collector and serve until SIGINT or SIGTERM. On first start it creates the ' +
        'database schema, an admin token file (<data_dir>/admin.token) and a grant-signing key.',
    )
    .option(
      '-c, --config <file>',
      'YAML config file (every setting also has a TALLY_* environment override)',
    )
    .action(async (options: { config?: string }) => {
      // The server stack (engine, OpenTelemetry) loads only when a collector runs.
      const { loadCollectorConfig } = await import('./config.ts')
      const { createLogger } = await import('../common/log.ts')
      const { untilSignal } = await import('../common/signals.ts')
      const { startCollector } = await import('./server.ts')
      const { explainStartFailure, refuseSharedDataDir } = await import('./cli-preflight.ts')
      const config = loadCollectorConfig(options.config)
      if (config.clickhouse.url === undefined) refuseSharedDataDir(config.data_dir)
      const logger = createLogger(config.log_level, 'collector')
      const running = await startCollector(config, logger).catch((err: unknown) => {
        throw explainStartFailure(err, config.clickhouse.url)
      })
      process.stderr.write(
        `collector listening on ${running.url} (${running.engine} engine, data in ${running.dataDir})\n` +
          `admin token: ${running.adminTokenFile}\n`,
      )
      await untilSignal()
      await running.close()
    })
  collector
    .command('check')
    .description(
      'Validate a collector config file and print the settings in effect, or exactly what is wrong',
    )
    .requiredOption('-c, --config <file>', 'YAML config file to check')
    .action(async (options: { config: string }) => {
      const { loadCollectorConfig } = await import('./config.ts')
      const { maskSecrets } = await import('../common/config.ts')
      const config = loadCollectorConfig(options.config)
      process.stdout.write(
        `${options.config}: valid\n${JSON.stringify(maskSecrets(config), null, 2)}\n`,
      )
    })
  collector.addCommand(migrateCommand())
  return collector
}

export function adminCommand(): Command {
  const admin = new Command('admin').description(
    'Administer a running collector: enrollment tokens, users, agents (needs an admin token)',
  )
  apiOptions(
    admin
      .command('enroll-token')
      .description(
        'Make a site-scoped enrollment token. An agent uses it once, at its first start, to get its ' +
          'own credential; the site of everything it sends comes from this token.',
      )
      .requiredOption(
        '--site <name>',
        'site the enrolled agents belong to (lower case, e.g. geneva-pm)',
      )
      .option(
        '--ttl-hours <hours>',
        'hours until the token expires (collector default: 24)',
        Number,
      )
      .option(
        '--max-uses <n>',
        'how many agents may enroll with it (collector default: 1)',
        Number,
      ),
  ).action(async (options: ApiOptions & { site: string; ttlHours?: number; maxUses?: number }) => {
    const answer = await api<{ token: string; expires_at: string; max_uses: number }>(
      options,
      'POST',
      '/v1/admin/enroll-tokens',
      { site: options.site, ttl_hours: options.ttlHours, max_uses: options.maxUses },
    )
    print(
      options,
      answer,
      () =>
        `${answer.token}\n# site ${options.site}, ${answer.max_uses} use(s), expires ${answer.expires_at}`,
    )
  })

  const user = admin.command('user').description('Create, list and revoke user tokens')
  apiOptions(
    user
      .command('create')
      .description('Create a user with roles and print their token (shown once)')
      .addHelpText(
        'after',
        `\nRoles:\n${ROLES.map((r) => `  ${r.padEnd(20)} ${ROLE_DESCRIPTIONS[r]}`).join('\n')}`,
      )
      .requiredOption('--name <name>', "the person's name, as it will appear in records")
      .requiredOption('--role <role...>', 'one or more roles'),
  ).action(async (options: ApiOptions & { name: string; role: string[] }) => {
    const answer = await api<{ user_id: string; token: string; roles: string[] }>(
      options,
      'POST',
      '/v1/admin/users',
      { name: options.name, roles: options.role },
    )
    print(
      options,
      answer,
      () => `${answer.token}\n# user ${answer.user_id} (${answer.roles.join(', ')})`,
    )
  })
  apiOptions(user.command('list').description('List users and their roles')).action(
    async (options: ApiOptions) => {
      const answer = await api<{
        users: { user_id: string; name: string; roles: string[]; revoked: boolean }[]
      }>(options, 'GET', '/v1/admin/users')
      print(options, answer, () =>
        answer.users
          .map(
            (u) => `${u.user_id}  ${u.name}  ${u.roles.join(',')}${u.revoked ? '  (revoked)' : ''}`,
          )
          .join('\n'),
      )
    },
  )
  apiOptions(
    user
      .command('revoke')
      .description('Revoke a user token at once')
      .argument('<user-id>', 'the user id (u-...), as `tally admin user list` shows it'),
  ).action(async (userId: string, options: ApiOptions) => {
    const answer = await api(
      options,
      'POST',
      `/v1/admin/users/${encodeURIComponent(userId)}/revoke`,
    )
    print(options, answer, () => `revoked user ${userId}`)
  })
  const agent = admin.command('agent').description('Manage enrolled agents')
  apiOptions(
    agent
      .command('revoke')
      .description("Revoke an agent's credential: its next batch is refused with 401")
      .argument('<agent-id>', 'the agent id (a-...), as `tally fleet` shows it'),
  ).action(async (agentId: string, options: ApiOptions) => {
    const answer = await api(
      options,
      'POST',
      `/v1/admin/agents/${encodeURIComponent(agentId)}/revoke`,
    )
    print(options, answer, () => `revoked agent ${agentId}`)
  })
  return admin
}

export function fleetCommand(): Command {
  return apiOptions(
    new Command('fleet')
      .description(
        'List enrolled agents with their site, version and when they last sent (operator or admin)',
      )
      .option('--site <name>', 'only this site'),
  ).action(async (options: ApiOptions & { site?: string }) => {
    const query = options.site === undefined ? '' : `?site=${encodeURIComponent(options.site)}`
    const answer = await api<{ agents: FleetAgent[] }>(options, 'GET', `/v1/fleet${query}`)
    print(options, answer, () => formatFleet(answer.agents))
  })
}

/** The groupings of GET /v1/usage (store/usage.ts USAGE_DIMENSIONS; a test keeps them equal). */
export const USAGE_GROUPINGS = ['service', 'peer_class', 'transport', 'ip_version', 'direction']

/** What GET /v1/usage answers. */
export interface UsageAnswer {
  site: string | null
  from: string
  to: string
  by: string
  step: number
  k: number
  buckets: Array<{
    ts: string
    site: string
    bytes: number
    packets: number
    flows: number
    hosts: number
    [grouping: string]: string | number
  }>
}

export function usageCommand(): Command {
  return apiOptions(
    new Command('usage')
      .description(
        'Site usage (tier A) as GET /v1/usage answers it: bytes, packets and new flows per site, ' +
          'time step and grouping, only for buckets to which at least k hosts contributed ' +
          '(usage.k); smaller ones are folded into "other", itself shown only from k hosts ' +
          '(operator or admin)',
      )
      .addOption(
        new Option('--by <grouping>', 'what to group by')
          .choices(USAGE_GROUPINGS)
          .default('service'),
      )
      .option('--site <name>', 'only this site (default: every site)')
      .option(
        '--from <time>',
        'start, ISO 8601 or seconds since 1970 (default: an hour before --to)',
      )
      .option('--to <time>', 'end, ISO 8601 or seconds since 1970 (default: now)')
      .option(
        '--step <seconds>',
        'bucket length in seconds, at least 10 (default: the whole range)',
      ),
  ).action(
    async (
      options: ApiOptions & {
        by: string
        site?: string
        from?: string
        to?: string
        step?: string
      },
    ) => {
      const query = new URLSearchParams({ by: options.by })
      for (const key of ['site', 'from', 'to', 'step'] as const) {
        const value = options[key]
        if (value !== undefined) query.set(key, value)
      }
      const answer = await api<UsageAnswer>(options, 'GET', `/v1/usage?${query}`)
      print(options, answer, () => formatUsage(answer))
    },
  )
}

export function formatUsage(answer: UsageAnswer): string {
  const head =
    `site usage by ${answer.by}${answer.site === null ? '' : ` for ${answer.site}`}, ` +
    `${answer.from} to ${answer.to}, step ${answer.step} s; ` +
    `a bucket is shown only when at least k=${answer.k} hosts contributed`
  if (answer.buckets.length === 0)
    return `${head}\nno bucket reaches k=${answer.k} hosts in this range`
  const rows = [
    ['time', 'site', answer.by, 'bytes', 'packets', 'flows', 'hosts'],
    ...answer.buckets.map((b) => [
      b.ts,
      b.site,
      String(b[answer.by]),
      String(b.bytes),
      String(b.packets),
      String(b.flows),
      String(b.hosts),
    ]),
  ]
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  // Text columns left, numbers right, as a reader scans them.
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i < 3 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [head, ...rows.map(line)].join('\n')
}

export function formatFleet(agents: FleetAgent[]): string {
  if (agents.length === 0) return 'no agents enrolled'
  return agents
    .map(
      (a) =>
        `${a.site}/${a.host}  ${a.agent_id}  v${a.version ?? '?'}  last seen ${a.last_seen ?? 'never'}` +
        `  last seq ${a.last_seq ?? '-'}${a.revoked ? '  (revoked)' : ''}`,
    )
    .join('\n')
}
