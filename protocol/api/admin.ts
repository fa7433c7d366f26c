/**
 * Administration: enrollment tokens, users and their roles (proposed by one administrator,
 * confirmed by another), agents revoked.
 */
import { z } from 'zod'
import { AUTH_ERRORS, idParameter, route } from './contract.ts'
import { ROLES, SITE_NAME } from './names.ts'

export const EnrollTokenRequest = z.strictObject({
  site: z.string().regex(SITE_NAME, 'must be lower case letters, digits, dot, dash or underscore'),
  ttl_hours: z
    .number()
    .positive()
    .max(24 * 365)
    .optional(),
  max_uses: z.number().int().positive().max(100_000).optional(),
})

/** A new user with roles: a proposal, until another administrator confirms it. */
export const UserRequest = z.strictObject({
  name: z.string().min(1).max(128),
  roles: z.array(z.enum(ROLES)).min(1),
})

/** More roles for an existing user: a proposal, until another administrator confirms it. */
export const RoleProposalRequest = z.strictObject({
  roles: z.array(z.enum(ROLES)).min(1),
})

export const ProposalState = z.strictObject({
  state: z.enum(['proposed', 'confirmed', 'rejected']).optional(),
})

export const IssuedEnrollToken = z.strictObject({
  token_id: z.string(),
  token: z.string().describe('the enrollment token; shown once'),
  site: z.string(),
  expires_at: z.string(),
  max_uses: z.number().int(),
})
export const User = z.strictObject({
  user_id: z.string(),
  name: z.string(),
  roles: z.array(z.enum(ROLES)),
})
export const ProposalAnswer = z.strictObject({
  proposal_id: z.string().nullable().describe('null when the user exists at once (no proposal)'),
  user_id: z.string(),
  name: z.string(),
  roles: z.array(z.enum(ROLES)),
  state: z.enum(['proposed', 'active']),
  token_part: z
    .string()
    .optional()
    .describe("a new user's first token part, for the proposer to hand over; shown once"),
  token: z
    .string()
    .optional()
    .describe("the founder's one extra administrator: a provisional token, shown once"),
  provisional: z.boolean().optional(),
})
export const Proposal = z.strictObject({
  proposal_id: z.string(),
  side: z.enum(['itsd', 'oios']),
  user_id: z.string(),
  roles: z.array(z.enum(ROLES)),
  new_user: z.boolean(),
  proposed_by: z.string(),
  proposed_at: z.string(),
  state: z.enum(['proposed', 'confirmed', 'rejected']),
  decided_by: z.string(),
})
export const ProposalDecided = Proposal.extend({
  token_part: z
    .string()
    .optional()
    .describe("a new user's second token part, for the confirmer to hand over; shown once"),
})
export const ProposalList = z.strictObject({ proposals: z.array(Proposal) })
export const UserRoles = z.strictObject({ user_id: z.string(), roles: z.array(z.enum(ROLES)) })
export const ReplacedToken = z.strictObject({
  user_id: z.string(),
  token: z.string().describe('the new token, shown once; the previous one stops working'),
})
export const UserRecord = User.extend({
  side: z.enum(['itsd', 'oios']),
  created_by: z.string(),
  created_at: z.string(),
  revoked: z.boolean(),
  pending: z.boolean().describe('proposed, not yet confirmed: no token works'),
  provisional: z.boolean().describe('its token must be replaced before it does anything'),
})
export const UserList = z.strictObject({ users: z.array(UserRecord) })
export const UserRevoked = z.strictObject({ user_id: z.string(), revoked: z.literal(true) })
export const AgentRevoked = z.strictObject({ agent_id: z.string(), revoked: z.literal(true) })

/** The refusals of role administration (collector/auth/administration.ts), beside 500. */
const ADMIN_ERRORS = {
  ...AUTH_ERRORS,
  '403':
    "not an administrator of the role's side (`forbidden`), a provisional token " +
    '(`token_provisional`), or a proposal confirmed by its own proposer (`second_person_required`)',
  '404': 'no such user, role or proposal on this side (`not_found`)',
  '409': 'already held, revoked or decided (`conflict`)',
  '422': 'one person would hold conflicting roles (`conflicting_roles`)',
  '503': 'the register could not be written, so nothing was done',
}

const ADMINISTRATORS = ['admin', 'oios_chief'] as const

export const createEnrollToken = route({
  method: 'POST',
  path: '/v1/admin/enroll-tokens',
  operationId: 'createEnrollToken',
  summary: 'Make a site-scoped enrollment token (admin)',
  security: 'user',
  roles: ['admin'],
  body: EnrollTokenRequest,
  status: 201,
  answer: { description: 'the token, shown once', schema: IssuedEnrollToken },
  errors: { '400': 'the body does not match the schema', ...AUTH_ERRORS },
})

export const listUsers = route({
  method: 'GET',
  path: '/v1/admin/users',
  operationId: 'listUsers',
  summary: "The users of the caller's side (admin: ITSD; oios_chief: OIOS)",
  security: 'user',
  roles: ADMINISTRATORS,
  status: 200,
  answer: { description: 'the users', schema: UserList },
  errors: AUTH_ERRORS,
})

export const proposeUser = route({
  method: 'POST',
  path: '/v1/admin/users',
  operationId: 'proposeUser',
  summary:
    "Propose a user with roles of the caller's side; another administrator confirms (admin, oios_chief)",
  security: 'user',
  roles: ADMINISTRATORS,
  body: UserRequest,
  status: 201,
  answer: {
    description: 'the proposal and the first token part, shown once',
    schema: ProposalAnswer,
  },
  errors: { ...ADMIN_ERRORS, '400': 'the body does not match the schema' },
})

export const proposeRoles = route({
  method: 'POST',
  path: '/v1/admin/users/{id}/roles',
  operationId: 'proposeRoles',
  summary: 'Propose more roles for a user; another administrator confirms (admin, oios_chief)',
  security: 'user',
  roles: ADMINISTRATORS,
  parameters: [idParameter('user')],
  body: RoleProposalRequest,
  status: 201,
  answer: { description: 'the proposal', schema: ProposalAnswer },
  errors: { ...ADMIN_ERRORS, '400': 'the body does not match the schema' },
})

export const revokeRole = route({
  method: 'POST',
  path: '/v1/admin/users/{id}/roles/{role}/revoke',
  operationId: 'revokeRole',
  summary: 'Take a role away at once (admin, oios_chief: their side only)',
  security: 'user',
  roles: ADMINISTRATORS,
  parameters: [
    idParameter('user'),
    {
      name: 'role',
      in: 'path',
      required: true,
      description: 'the role',
      schema: { type: 'string', enum: [...ROLES] },
    },
  ],
  status: 200,
  answer: { description: 'the roles left', schema: UserRoles },
  errors: ADMIN_ERRORS,
})

export const revokeUser = route({
  method: 'POST',
  path: '/v1/admin/users/{id}/revoke',
  operationId: 'revokeUser',
  summary: 'Revoke a user token (admin, oios_chief: their side only)',
  security: 'user',
  roles: ADMINISTRATORS,
  parameters: [idParameter('user')],
  status: 200,
  answer: { description: 'revoked', schema: UserRevoked },
  errors: { ...AUTH_ERRORS, '404': 'no such user (`not_found`)' },
})

export const listProposals = route({
  method: 'GET',
  path: '/v1/admin/proposals',
  operationId: 'listProposals',
  summary: "The proposals of the caller's side (admin, oios_chief)",
  security: 'user',
  roles: ADMINISTRATORS,
  query: ProposalState,
  status: 200,
  answer: { description: 'the proposals', schema: ProposalList },
  errors: { ...AUTH_ERRORS, '400': 'an unknown or invalid query parameter' },
})

export const confirmProposal = route({
  method: 'POST',
  path: '/v1/admin/proposals/{id}/confirm',
  operationId: 'confirmProposal',
  summary:
    'Confirm a proposal: another administrator of its side than the proposer (admin, oios_chief)',
  security: 'user',
  roles: ADMINISTRATORS,
  parameters: [idParameter('proposal')],
  status: 200,
  answer: {
    description: "confirmed; a new user's second token part, shown once",
    schema: ProposalDecided,
  },
  errors: ADMIN_ERRORS,
})

export const rejectProposal = route({
  method: 'POST',
  path: '/v1/admin/proposals/{id}/reject',
  operationId: 'rejectProposal',
  summary: 'Reject a proposal (admin, oios_chief)',
  security: 'user',
  roles: ADMINISTRATORS,
  parameters: [idParameter('proposal')],
  status: 200,
  answer: { description: 'rejected', schema: Proposal },
  errors: ADMIN_ERRORS,
})

export const replaceOwnToken = route({
  method: 'POST',
  path: '/v1/users/me/token',
  operationId: 'replaceOwnToken',
  summary: "Replace the caller's own token (any user; the only thing a provisional token may do)",
  security: 'user',
  roles: 'any',
  provisionalToken: true,
  status: 201,
  answer: { description: 'the new token, shown once', schema: ReplacedToken },
  errors: { '401': AUTH_ERRORS['401'] },
})

export const revokeAgent = route({
  method: 'POST',
  path: '/v1/admin/agents/{id}/revoke',
  operationId: 'revokeAgent',
  summary: 'Revoke an agent: its next batch gets 401 (admin)',
  security: 'user',
  roles: ['admin'],
  parameters: [idParameter('agent')],
  status: 200,
  answer: { description: 'revoked', schema: AgentRevoked },
  errors: { ...AUTH_ERRORS, '404': 'no such agent (`not_found`)' },
})

export const ADMIN_REQUESTS = { EnrollTokenRequest, UserRequest, RoleProposalRequest }
export const ADMIN_RESPONSES = {
  IssuedEnrollToken,
  ProposalAnswer,
  Proposal,
  ProposalDecided,
  ProposalList,
  UserRoles,
  ReplacedToken,
  UserRecord,
  UserList,
  UserRevoked,
  AgentRevoked,
}
