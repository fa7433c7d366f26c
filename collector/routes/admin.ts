/** Administration: enrollment tokens, users, revoking agents. Admin role only. */
import { Hono } from 'hono'
import { z } from 'zod'
import { revokeAgent } from '../auth/agents.ts'
import { createEnrollToken, SITE_NAME } from '../auth/enrollment.ts'
import { requireUser } from '../auth/middleware.ts'
import { ROLES } from '../auth/roles.ts'
import { createUser, listUsers, revokeUser } from '../auth/users.ts'
import type { CollectorConfig } from '../config.ts'
import { type CollectorEnv, problem, readJson } from '../http.ts'
import type { Store } from '../store/client.ts'

export const EnrollTokenRequest = z.strictObject({
  site: z.string().regex(SITE_NAME, 'must be lower case letters, digits, dot, dash or underscore'),
  ttl_hours: z
    .number()
    .positive()
    .max(24 * 365)
    .optional(),
  max_uses: z.number().int().positive().max(100_000).optional(),
})

export const UserRequest = z.strictObject({
  name: z.string().min(1).max(128),
  roles: z.array(z.enum(ROLES)).min(1),
})

export function adminRoutes(store: Store, config: CollectorConfig) {
  return new Hono<CollectorEnv>()
    .use('/v1/admin/*', requireUser(store, ['admin']))
    .post('/v1/admin/enroll-tokens', async (c) => {
      const request = await readJson(c, EnrollTokenRequest)
      if (!request.ok) return request.response
      const issued = await createEnrollToken(store, {
        site: request.value.site,
        ttlHours: request.value.ttl_hours ?? config.enrollment.token_ttl_hours,
        maxUses: request.value.max_uses ?? config.enrollment.token_max_uses,
        createdBy: c.get('user').user_id,
      })
      c.get('log').info(
        { token_id: issued.token_id, site: issued.site },
        'enrollment token created',
      )
      return c.json(issued, 201)
    })
    .post('/v1/admin/users', async (c) => {
      const request = await readJson(c, UserRequest)
      if (!request.ok) return request.response
      const created = await createUser(
        store,
        request.value.name,
        request.value.roles,
        c.get('user').user_id,
      )
      c.get('log').info(
        { user_id: created.user.user_id, roles: created.user.roles },
        'user created',
      )
      return c.json({ ...created.user, token: created.token }, 201)
    })
    .get('/v1/admin/users', async (c) => c.json({ users: await listUsers(store) }))
    .post('/v1/admin/users/:id/revoke', async (c) => {
      const id = c.req.param('id')
      if (!(await revokeUser(store, id))) return problem(c, 404, 'not_found', `no user ${id}`)
      c.get('log').info({ user_id: id }, 'user revoked')
      return c.json({ user_id: id, revoked: true })
    })
    .post('/v1/admin/agents/:id/revoke', async (c) => {
      const id = c.req.param('id')
      if (!(await revokeAgent(store, id))) return problem(c, 404, 'not_found', `no agent ${id}`)
      c.get('log').info({ agent_id: id }, 'agent revoked')
      return c.json({ agent_id: id, revoked: true })
    })
}
