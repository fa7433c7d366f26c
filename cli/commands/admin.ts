/**
 * `tally admin ...`: administration of a running collector: enrollment tokens and agents (admin),
 * users and roles (admin for ITSD, oios_chief for OIOS; every grant confirmed by a second
 * administrator).
 */

import type { z } from 'zod'
import { ROLE_DESCRIPTIONS } from '../../collector/auth/roles.ts'
import type { ProposalAnswer } from '../../protocol/api/admin.ts'
import { ROLES, type Role } from '../../protocol/api/names.ts'
import { API_OPTIONS, type ApiOptions, api, contracts, print } from '../api-options.ts'
import type { ArgumentSpec, CommandSpec } from '../command-table.ts'

const USER_ID: ArgumentSpec = {
  name: '<user-id>',
  description: 'the user id (u-...), as `tally admin user list` shows it',
}

type Proposal = z.output<typeof ProposalAnswer>

function describeProposal(answer: Proposal): string {
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

const ENROLL_TOKEN: CommandSpec<
  ApiOptions & { site: string; ttlHours?: number; maxUses?: number }
> = {
  name: 'enroll-token',
  description:
    'Make a site-scoped enrollment token. An agent uses it once, at its first start, to get its ' +
    'own credential; the site of everything it sends comes from this token.',
  options: [
    {
      flags: '--site <name>',
      description: 'site the enrolled agents belong to (lower case, e.g. geneva-pm)',
      required: true,
    },
    {
      flags: '--ttl-hours <hours>',
      description: 'hours until the token expires (collector default: 24)',
      parse: Number,
    },
    {
      flags: '--max-uses <n>',
      description: 'how many agents may enroll with it (collector default: 1)',
      parse: Number,
    },
    ...API_OPTIONS,
  ],
  run: async (options) => {
    const { admin } = await contracts()
    const answer = await api(options, admin.createEnrollToken, {
      body: { site: options.site, ttl_hours: options.ttlHours, max_uses: options.maxUses },
    })
    print(
      options,
      answer,
      () =>
        `${answer.token}\n# site ${options.site}, ${answer.max_uses} use(s), expires ${answer.expires_at}`,
    )
  },
}

// Roles are checked by the collector, which names a wrong one in its 400.
type RoleOptions = ApiOptions & { role: Role[] }

const USER: CommandSpec = {
  name: 'user',
  description:
    "Propose, list and revoke users (admins for ITSD roles, OIOS chiefs for OIOS's; a second administrator confirms)",
  commands: [
    {
      name: 'create',
      description:
        'Propose a user with roles. Another administrator confirms it (`tally admin confirm-role`); ' +
        'you get the first part of their token, the confirmer the second, and the person joins ' +
        'the two (first part, then second, no space). Shown once.',
      helpAfter: `\nRoles:\n${ROLES.map((r) => `  ${r.padEnd(20)} ${ROLE_DESCRIPTIONS[r]}`).join('\n')}`,
      options: [
        {
          flags: '--name <name>',
          description: "the person's name, as it will appear in records",
          required: true,
        },
        { flags: '--role <role...>', description: 'one or more roles', required: true },
        ...API_OPTIONS,
      ],
      run: async (options: RoleOptions & { name: string }) => {
        const { admin } = await contracts()
        const answer = await api(options, admin.proposeUser, {
          body: { name: options.name, roles: options.role },
        })
        print(options, answer, () => describeProposal(answer))
      },
    },
    {
      name: 'list',
      description: 'List the users of your side and their roles',
      options: API_OPTIONS,
      run: async (options: ApiOptions) => {
        const { admin } = await contracts()
        const answer = await api(options, admin.listUsers)
        print(options, answer, () =>
          answer.users
            .map(
              (u) =>
                `${u.user_id}  ${u.name}  ${u.roles.join(',')}${u.revoked ? '  (revoked)' : ''}` +
                `${u.pending ? '  (proposed, not confirmed)' : ''}${u.provisional ? '  (token to be replaced)' : ''}`,
            )
            .join('\n'),
        )
      },
    },
    {
      name: 'revoke',
      description: 'Revoke a user token at once (one administrator suffices to take power away)',
      arguments: [USER_ID],
      options: API_OPTIONS,
      run: async (options: ApiOptions, [userId]: readonly [string]) => {
        const { admin } = await contracts()
        const answer = await api(options, admin.revokeUser, { params: { id: userId } })
        print(options, answer, () => `revoked user ${userId}`)
      },
    },
  ],
}

const PROPOSAL_ID = 'the proposal id (p-...)'

const ROLE_COMMANDS: readonly CommandSpec[] = [
  {
    name: 'grant-role',
    description:
      'Propose more roles for an existing user; they take effect when another administrator ' +
      'of the same side confirms (`tally admin confirm-role`)',
    arguments: [USER_ID],
    options: [
      { flags: '--role <role...>', description: 'one or more roles of your side', required: true },
      ...API_OPTIONS,
    ],
    run: async (options: RoleOptions, [userId]: readonly [string]) => {
      const { admin } = await contracts()
      const answer = await api(options, admin.proposeRoles, {
        params: { id: userId },
        body: { roles: options.role },
      })
      print(options, answer, () => describeProposal(answer))
    },
  },
  {
    name: 'confirm-role',
    description:
      "Confirm another administrator's proposal (a user with roles, or roles for a user); for a " +
      'new user, prints the second part of their token (shown once)',
    arguments: [
      {
        name: '<proposal-id>',
        description: `${PROPOSAL_ID}, as \`tally admin proposals\` shows it`,
      },
    ],
    options: API_OPTIONS,
    run: async (options: ApiOptions, [proposalId]: readonly [string]) => {
      const { admin } = await contracts()
      const answer = await api(options, admin.confirmProposal, { params: { id: proposalId } })
      print(options, answer, () =>
        [
          ...(answer.token_part === undefined ? [] : [answer.token_part]),
          `# confirmed: user ${answer.user_id} holds ${answer.roles.join(', ')}` +
            (answer.token_part === undefined
              ? ''
              : '; hand this second token part to the person, in person'),
        ].join('\n'),
      )
    },
  },
  {
    name: 'reject-role',
    description: 'Reject a proposal: a proposed new user never comes to exist',
    arguments: [{ name: '<proposal-id>', description: PROPOSAL_ID }],
    options: API_OPTIONS,
    run: async (options: ApiOptions, [proposalId]: readonly [string]) => {
      const { admin } = await contracts()
      const answer = await api(options, admin.rejectProposal, { params: { id: proposalId } })
      print(options, answer, () => `rejected proposal ${proposalId}`)
    },
  },
  {
    name: 'revoke-role',
    description: 'Take one role away from a user at once',
    arguments: [
      { name: '<user-id>', description: 'the user id (u-...)' },
      { name: '<role>', description: 'the role to take away' },
    ],
    options: API_OPTIONS,
    run: async (options: ApiOptions, [userId, role]: readonly [string, string]) => {
      const { admin } = await contracts()
      const answer = await api(options, admin.revokeRole, { params: { id: userId, role } })
      print(
        options,
        answer,
        () => `user ${userId} now holds: ${answer.roles.join(', ') || 'no role'}`,
      )
    },
  },
  {
    name: 'proposals',
    description: "List the proposals of your side, to confirm or reject another administrator's",
    options: [
      {
        flags: '--state <state>',
        description: 'only proposals in this state',
        choices: ['proposed', 'confirmed', 'rejected'],
      },
      ...API_OPTIONS,
    ],
    run: async (options: ApiOptions & { state?: string }) => {
      const { admin } = await contracts()
      const answer = await api(options, admin.listProposals, { query: { state: options.state } })
      print(options, answer, () =>
        answer.proposals
          .map(
            (p) =>
              `${p.proposal_id}  ${p.state}  ${p.new_user ? 'new user' : 'roles for'} ${p.user_id}: ` +
              `${p.roles.join(',')} (proposed by ${p.proposed_by})`,
          )
          .join('\n'),
      )
    },
  },
  {
    name: 'replace-token',
    description:
      'Replace your own token with a new one only you see (any user). A provisional token (the ' +
      "founder's extra administrator, OIOS's bootstrap chief) does nothing until replaced. " +
      'If yours was replaced already, someone else had it: tell the other side.',
    options: API_OPTIONS,
    run: async (options: ApiOptions) => {
      const { admin } = await contracts()
      const answer = await api(options, admin.replaceOwnToken)
      print(
        options,
        answer,
        () =>
          `${answer.token}\n# user ${answer.user_id}: new token, the previous one stops working`,
      )
    },
  },
]

const AGENT: CommandSpec = {
  name: 'agent',
  description: 'Manage enrolled agents',
  commands: [
    {
      name: 'revoke',
      description: "Revoke an agent's credential: its next batch is refused with 401",
      arguments: [
        { name: '<agent-id>', description: 'the agent id (a-...), as `tally fleet` shows it' },
      ],
      options: API_OPTIONS,
      run: async (options: ApiOptions, [agentId]: readonly [string]) => {
        const { admin } = await contracts()
        const answer = await api(options, admin.revokeAgent, { params: { id: agentId } })
        print(options, answer, () => `revoked agent ${agentId}`)
      },
    },
  ],
}

export const adminCommands: CommandSpec = {
  name: 'admin',
  description:
    'Administer a running collector: enrollment tokens and agents (admin), users and roles ' +
    '(admin for ITSD, oios_chief for OIOS; every grant confirmed by a second administrator)',
  commands: [ENROLL_TOKEN, USER, ...ROLE_COMMANDS, AGENT],
}
