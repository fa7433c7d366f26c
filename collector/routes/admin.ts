/**
 * Administration: enrollment tokens and agents (ITSD admins), users and roles (ITSD admins for
 * ITSD roles, OIOS chiefs for OIOS roles: auth/administration.ts), and every user's own token.
 * The same routes serve both sides, so nothing in a route or a counter tells OIOS work apart.
 */
import { Hono } from 'hono'
import { z } from 'zod'
import {
  EnrollTokenRequest,
  ProposalState,
  RoleProposalRequest,
  UserRequest,
} from '../../protocol/api/admin.ts'
import type { RoleAdministration } from '../auth/administration.ts'
import { revokeAgent } from '../auth/agents.ts'
import { createEnrollToken } from '../auth/enrollment.ts'
import { requireUser } from '../auth/middleware.ts'
import { ROLES } from '../auth/roles.ts'
import type { AuthenticatedUser } from '../auth/users.ts'
import type { CollectorConfig } from '../config.ts'
import { DomainError } from '../errors.ts'
import { type CollectorEnv, jsonBody } from '../http.ts'
import type { Register } from '../register/register.ts'
import type { Store } from '../store/client.ts'

const ID = /^[a-z]-[0-9a-f]{16}$/
const RoleParam = z.enum(ROLES)

export function adminRoutes(
  store: Store,
  config: CollectorConfig,
  register: Register,
  administration: RoleAdministration,
) {
  const administrators = requireUser(store, ['admin', 'oios_chief'])
  const itsdAdmins = requireUser(store, ['admin'])
  const actor = (c: { get(key: 'user'): unknown }) => c.get('user') as AuthenticatedUser
  /** An id that cannot be one is a 404 like an unknown one, before anything is read. */
  const knownId = (what: string, id: string): string => {
    if (!ID.test(id)) throw new DomainError('not_found', 'not_found', `no ${what} ${id}`)
    return id
  }

  return (
    new Hono<CollectorEnv>()
      .post('/v1/admin/enroll-tokens', itsdAdmins, async (c) => {
        const request = await jsonBody(c, EnrollTokenRequest)
        const user = actor(c)
        const ttlHours = request.ttl_hours ?? config.enrollment.token_ttl_hours
        const maxUses = request.max_uses ?? config.enrollment.token_max_uses
        const issued = await createEnrollToken(
          store,
          { site: request.site, ttlHours, maxUses, createdBy: user.user_id },
          Date.now(),
          (tokenId, expiresAt) =>
            register.append({
              register: 'itsd',
              kind: 'enrollment token created',
              actor: user.user_id,
              details: {
                token_id: tokenId,
                site: request.site,
                expires_at: expiresAt,
                max_uses: maxUses,
              },
            }),
        )
        c.get('log').info(
          { token_id: issued.token_id, site: issued.site },
          'enrollment token created',
        )
        return c.json(issued, 201)
      })
      .post('/v1/admin/agents/:id/revoke', itsdAdmins, async (c) => {
        const id = c.req.param('id')
        const user = actor(c)
        await revokeAgent(store, id, Date.now(), () =>
          register.append({
            register: 'itsd',
            kind: 'agent revoked',
            actor: user.user_id,
            details: { agent_id: id },
          }),
        )
        c.get('log').info({ agent_id: id }, 'agent revoked')
        return c.json({ agent_id: id, revoked: true })
      })
      // Users and roles: proposals, confirmations, revocations.
      .post('/v1/admin/users', administrators, async (c) => {
        const request = await jsonBody(c, UserRequest)
        const answer = await administration.propose(actor(c), request)
        c.get('log').info(
          { user_id: answer.user_id, proposal_id: answer.proposal_id, state: answer.state },
          'user proposed',
        )
        return c.json(answer, 201)
      })
      .get('/v1/admin/users', administrators, async (c) =>
        c.json({ users: await administration.users(actor(c)) }),
      )
      .post('/v1/admin/users/:id/roles', administrators, async (c) => {
        const request = await jsonBody(c, RoleProposalRequest)
        const id = knownId('user', c.req.param('id'))
        const answer = await administration.propose(actor(c), { user_id: id, ...request })
        return c.json(answer, 201)
      })
      .post('/v1/admin/users/:id/roles/:role/revoke', administrators, async (c) => {
        const role = RoleParam.safeParse(c.req.param('role'))
        if (!role.success) {
          throw new DomainError('not_found', 'not_found', `no role ${c.req.param('role')}`)
        }
        const id = knownId('user', c.req.param('id'))
        const roles = await administration.revokeRole(actor(c), id, role.data)
        return c.json({ user_id: id, roles })
      })
      .post('/v1/admin/users/:id/revoke', administrators, async (c) => {
        const id = knownId('user', c.req.param('id'))
        await administration.revokeUser(actor(c), id)
        c.get('log').info({ user_id: id }, 'user revoked')
        return c.json({ user_id: id, revoked: true })
      })
      .get('/v1/admin/proposals', administrators, async (c) => {
        const query = ProposalState.safeParse(c.req.query())
        if (!query.success) {
          throw new DomainError(
            'invalid',
            'invalid_query',
            `unknown or invalid query parameter: ${query.error.issues[0]?.message}`,
          )
        }
        return c.json({ proposals: await administration.proposals(actor(c), query.data.state) })
      })
      .post('/v1/admin/proposals/:id/confirm', administrators, async (c) => {
        const id = knownId('proposal', c.req.param('id'))
        const answer = await administration.confirm(actor(c), id)
        c.get('log').info({ proposal_id: id }, 'proposal confirmed')
        return c.json({
          ...answer.proposal,
          ...(answer.token_part ? { token_part: answer.token_part } : {}),
        })
      })
      .post('/v1/admin/proposals/:id/reject', administrators, async (c) => {
        const id = knownId('proposal', c.req.param('id'))
        return c.json(await administration.reject(actor(c), id))
      })
      // Anyone's own token, provisional ones included (that is how they stop being provisional).
      .post('/v1/users/me/token', requireUser(store, 'any', { provisional: true }), async (c) => {
        const token = await administration.replaceToken(actor(c))
        return c.json({ user_id: actor(c).user_id, token }, 201)
      })
  )
}
