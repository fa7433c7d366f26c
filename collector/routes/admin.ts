/**
 * Administration: enrollment tokens and agents (ITSD admins), users and roles (ITSD admins for
 * ITSD roles, OIOS chiefs for OIOS roles: auth/administration.ts), and every user's own token.
 * The same routes serve both sides, so nothing in a route or a counter tells OIOS work apart.
 */
import { z } from 'zod'
import * as api from '../../protocol/api/admin.ts'
import { ROLES } from '../../protocol/api/names.ts'
import type { RoleAdministration } from '../auth/administration.ts'
import { revokeAgent } from '../auth/agents.ts'
import { createEnrollToken } from '../auth/enrollment.ts'
import type { CollectorConfig } from '../config.ts'
import { ContractRoutes } from '../contract.ts'
import { DomainError } from '../errors.ts'
import type { Register } from '../register/register.ts'
import type { Store } from '../store/client.ts'

const ID = /^[a-z]-[0-9a-f]{16}$/
const RoleParam = z.enum(ROLES)

/** An id that cannot be one is a 404 like an unknown one, before anything is read. */
const knownId = (what: string, id: string): string => {
  if (!ID.test(id)) throw new DomainError('not_found', 'not_found', `no ${what} ${id}`)
  return id
}

export function adminRoutes(
  store: Store,
  config: CollectorConfig,
  register: Register,
  administration: RoleAdministration,
) {
  return (
    new ContractRoutes(store)
      .serve(api.createEnrollToken, async ({ c, user, body }) => {
        const request = await body()
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
        return issued
      })
      .serve(api.revokeAgent, async ({ c, user, params }) => {
        const id = params.id
        await revokeAgent(store, id, Date.now(), () =>
          register.append({
            register: 'itsd',
            kind: 'agent revoked',
            actor: user.user_id,
            details: { agent_id: id },
          }),
        )
        c.get('log').info({ agent_id: id }, 'agent revoked')
        return { agent_id: id, revoked: true as const }
      })
      // Users and roles: proposals, confirmations, revocations.
      .serve(api.proposeUser, async ({ c, user, body }) => {
        const answer = await administration.propose(user, await body())
        c.get('log').info(
          { user_id: answer.user_id, proposal_id: answer.proposal_id, state: answer.state },
          'user proposed',
        )
        return answer
      })
      .serve(api.listUsers, async ({ user }) => ({ users: await administration.users(user) }))
      .serve(api.proposeRoles, async ({ user, params, body }) => {
        const request = await body()
        const id = knownId('user', params.id)
        return administration.propose(user, { user_id: id, ...request })
      })
      .serve(api.revokeRole, async ({ user, params }) => {
        const role = RoleParam.safeParse(params.role)
        if (!role.success) {
          throw new DomainError('not_found', 'not_found', `no role ${params.role}`)
        }
        const id = knownId('user', params.id)
        const roles = await administration.revokeRole(user, id, role.data)
        return { user_id: id, roles }
      })
      .serve(api.revokeUser, async ({ c, user, params }) => {
        const id = knownId('user', params.id)
        await administration.revokeUser(user, id)
        c.get('log').info({ user_id: id }, 'user revoked')
        return { user_id: id, revoked: true as const }
      })
      .serve(api.listProposals, async ({ user, query }) => ({
        proposals: await administration.proposals(user, query().state),
      }))
      .serve(api.confirmProposal, async ({ c, user, params }) => {
        const id = knownId('proposal', params.id)
        const answer = await administration.confirm(user, id)
        c.get('log').info({ proposal_id: id }, 'proposal confirmed')
        return {
          ...answer.proposal,
          ...(answer.token_part ? { token_part: answer.token_part } : {}),
        }
      })
      .serve(api.rejectProposal, async ({ user, params }) =>
        administration.reject(user, knownId('proposal', params.id)),
      )
      // Anyone's own token, provisional ones included (that is how they stop being provisional).
      .serve(api.replaceOwnToken, async ({ user }) => ({
        user_id: user.user_id,
        token: await administration.replaceToken(user),
      })).app
  )
}
