/** `tally collector ...`, `tally admin ...` and `tally fleet`. */
import { Command, Option } from 'commander'
import { ROLE_DESCRIPTIONS, ROLES } from '../collector/auth/roles.ts'
import type { FleetAgent } from '../collector/store/fleet.ts'
import type { Role } from '../protocol/api/names.ts'
import { type ApiOptions, api, apiOptions, contracts, print } from './api-options.ts'
import { migrateCommand } from './migrate.ts'

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
      const { loadCollectorConfig } = await import('../collector/config.ts')
      const { createLogger } = await import('../common/log.ts')
      const { untilSignal } = await import('../common/signals.ts')
      const { startCollector } = await import('../collector/server.ts')
      const { explainStartFailure, refuseSharedDataDir } = await import('./preflight.ts')
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
      if (running.oiosBootstrapToken !== undefined) {
        // Shown this once and stored nowhere (only its hash is): it is OIOS's, not the starter's.
        process.stderr.write(
          `\nOIOS bootstrap token (shown once; hand it to OIOS, who replaces it at once with\n` +
            `\`tally admin replace-token\`; set oios.bootstrap_token_file to have it written\n` +
            `outside the data directory instead):\n${running.oiosBootstrapToken}\n\n`,
        )
      }
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
      const { loadCollectorConfig } = await import('../collector/config.ts')
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
    'Administer a running collector: enrollment tokens and agents (admin), users and roles ' +
      '(admin for ITSD, oios_chief for OIOS; every grant confirmed by a second administrator)',
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
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.createEnrollToken, {
      body: { site: options.site, ttl_hours: options.ttlHours, max_uses: options.maxUses },
    })
    print(
      options,
      answer,
      () =>
        `${answer.token}\n# site ${options.site}, ${answer.max_uses} use(s), expires ${answer.expires_at}`,
    )
  })

  const user = admin
    .command('user')
    .description(
      "Propose, list and revoke users (admins for ITSD roles, OIOS chiefs for OIOS's; a second administrator confirms)",
    )
  apiOptions(
    user
      .command('create')
      .description(
        'Propose a user with roles. Another administrator confirms it (`tally admin confirm-role`); ' +
          'you get the first part of their token, the confirmer the second, and the person joins ' +
          'the two (first part, then second, no space). Shown once.',
      )
      .addHelpText(
        'after',
        `\nRoles:\n${ROLES.map((r) => `  ${r.padEnd(20)} ${ROLE_DESCRIPTIONS[r]}`).join('\n')}`,
      )
      .requiredOption('--name <name>', "the person's name, as it will appear in records")
      .requiredOption('--role <role...>', 'one or more roles'),
  ).action(async (options: ApiOptions & { name: string; role: string[] }) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.proposeUser, {
      body: { name: options.name, roles: options.role as Role[] },
    })
    print(options, answer, () => describeProposal(answer))
  })
  apiOptions(
    user.command('list').description('List the users of your side and their roles'),
  ).action(async (options: ApiOptions) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.listUsers)
    print(options, answer, () =>
      answer.users
        .map(
          (u) =>
            `${u.user_id}  ${u.name}  ${u.roles.join(',')}${u.revoked ? '  (revoked)' : ''}` +
            `${u.pending ? '  (proposed, not confirmed)' : ''}${u.provisional ? '  (token to be replaced)' : ''}`,
        )
        .join('\n'),
    )
  })
  apiOptions(
    user
      .command('revoke')
      .description('Revoke a user token at once (one administrator suffices to take power away)')
      .argument('<user-id>', 'the user id (u-...), as `tally admin user list` shows it'),
  ).action(async (userId: string, options: ApiOptions) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.revokeUser, { params: { id: userId } })
    print(options, answer, () => `revoked user ${userId}`)
  })
  apiOptions(
    admin
      .command('grant-role')
      .description(
        'Propose more roles for an existing user; they take effect when another administrator ' +
          'of the same side confirms (`tally admin confirm-role`)',
      )
      .argument('<user-id>', 'the user id (u-...), as `tally admin user list` shows it')
      .requiredOption('--role <role...>', 'one or more roles of your side'),
  ).action(async (userId: string, options: ApiOptions & { role: string[] }) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.proposeRoles, {
      params: { id: userId },
      body: { roles: options.role as Role[] },
    })
    print(options, answer, () => describeProposal(answer))
  })
  apiOptions(
    admin
      .command('confirm-role')
      .description(
        "Confirm another administrator's proposal (a user with roles, or roles for a user); for a " +
          'new user, prints the second part of their token (shown once)',
      )
      .argument('<proposal-id>', 'the proposal id (p-...), as `tally admin proposals` shows it'),
  ).action(async (proposalId: string, options: ApiOptions) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.confirmProposal, { params: { id: proposalId } })
    print(options, answer, () =>
      [
        ...(answer.token_part === undefined ? [] : [answer.token_part]),
        `# confirmed: user ${answer.user_id} holds ${answer.roles.join(', ')}` +
          (answer.token_part === undefined
            ? ''
            : '; hand this second token part to the person, in person'),
      ].join('\n'),
    )
  })
  apiOptions(
    admin
      .command('reject-role')
      .description('Reject a proposal: a proposed new user never comes to exist')
      .argument('<proposal-id>', 'the proposal id (p-...)'),
  ).action(async (proposalId: string, options: ApiOptions) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.rejectProposal, { params: { id: proposalId } })
    print(options, answer, () => `rejected proposal ${proposalId}`)
  })
  apiOptions(
    admin
      .command('revoke-role')
      .description('Take one role away from a user at once')
      .argument('<user-id>', 'the user id (u-...)')
      .argument('<role>', 'the role to take away'),
  ).action(async (userId: string, role: string, options: ApiOptions) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.revokeRole, { params: { id: userId, role } })
    print(
      options,
      answer,
      () => `user ${userId} now holds: ${answer.roles.join(', ') || 'no role'}`,
    )
  })
  apiOptions(
    admin
      .command('proposals')
      .description("List the proposals of your side, to confirm or reject another administrator's")
      .addOption(
        new Option('--state <state>', 'only proposals in this state').choices([
          'proposed',
          'confirmed',
          'rejected',
        ]),
      ),
  ).action(async (options: ApiOptions & { state?: string }) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.listProposals, { query: { state: options.state } })
    print(options, answer, () =>
      answer.proposals
        .map(
          (p) =>
            `${p.proposal_id}  ${p.state}  ${p.new_user ? 'new user' : 'roles for'} ${p.user_id}: ` +
            `${p.roles.join(',')} (proposed by ${p.proposed_by})`,
        )
        .join('\n'),
    )
  })
  apiOptions(
    admin
      .command('replace-token')
      .description(
        'Replace your own token with a new one only you see (any user). A provisional token (the ' +
          "founder's extra administrator, OIOS's bootstrap chief) does nothing until replaced. " +
          'If yours was replaced already, someone else had it: tell the other side.',
      ),
  ).action(async (options: ApiOptions) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.replaceOwnToken)
    print(
      options,
      answer,
      () => `${answer.token}\n# user ${answer.user_id}: new token, the previous one stops working`,
    )
  })
  const agent = admin.command('agent').description('Manage enrolled agents')
  apiOptions(
    agent
      .command('revoke')
      .description("Revoke an agent's credential: its next batch is refused with 401")
      .argument('<agent-id>', 'the agent id (a-...), as `tally fleet` shows it'),
  ).action(async (agentId: string, options: ApiOptions) => {
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.revokeAgent, { params: { id: agentId } })
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
    const { admin: routes } = await contracts()
    const answer = await api(options, routes.fleet, { query: { site: options.site } })
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
      const { by, site, from, to, step } = options
      const { usage } = await contracts()
      const answer = await api(options, usage.usage, { query: { by, site, from, to, step } })
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

interface ProposalAnswer {
  proposal_id: string | null
  user_id: string
  roles: string[]
  state: string
  token_part?: string
  token?: string
}

function describeProposal(answer: ProposalAnswer): string {
  if (answer.token !== undefined) {
    return (
      `${answer.token}\n# user ${answer.user_id} (${answer.roles.join(', ')}) exists at once: ` +
      "the founder's one extra administrator. Its token is provisional: its holder replaces it " +
      '(`tally admin replace-token`) before it does anything.'
    )
  }
  return [
    ...(answer.token_part === undefined ? [] : [answer.token_part]),
    `# proposal ${answer.proposal_id}: user ${answer.user_id}, ${answer.roles.join(', ')}; ` +
      'another administrator confirms it (`tally admin confirm-role`)' +
      (answer.token_part === undefined ? '' : '; hand this first token part to the person'),
  ].join('\n')
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
