/** Bearer authentication for agents and users, as Hono middleware. */
import { createMiddleware } from 'hono/factory'
import type { Role } from '../../protocol/api/names.ts'
import { consoleCredential } from '../console/session.ts'
import { DomainError } from '../errors.ts'
import type { CollectorEnv } from '../http.ts'
import type { Store } from '../store/client.ts'
import { type AgentIdentity, authenticateAgent } from './agents.ts'
import { bearer } from './tokens.ts'
import { authenticateUser } from './users.ts'

const unauthenticated = (message: string): DomainError =>
  new DomainError('unauthenticated', 'unauthenticated', message)

/** `authenticate` may gather the lookups of several requests (the ingest route's does). */
export const requireAgent = (
  store: Store,
  authenticate: (credential: string) => Promise<AgentIdentity | undefined> = (credential) =>
    authenticateAgent(store, credential),
) =>
  createMiddleware<CollectorEnv>(async (c, next) => {
    const credential = bearer(c.req.header('authorization'))
    if (credential === undefined) {
      throw unauthenticated('an agent credential is required (Authorization: Bearer ...)')
    }
    const agent = await authenticate(credential)
    if (agent === undefined) {
      throw unauthenticated('the agent credential is unknown, wrong or revoked')
    }
    c.set('agent', agent)
    await next()
  })

/**
 * Lets the request through when the user holds at least one of `roles`. A provisional token
 * (one that passed through someone else's hands) is let through only where `provisional` says
 * so: the route that replaces it.
 */
export const requireUser = (
  store: Store,
  roles: readonly Role[] | 'any',
  options: { provisional?: boolean } = {},
) =>
  createMiddleware<CollectorEnv>(async (c, next) => {
    // Without a bearer token, the web console's session cookie (CSRF-checked) stands for it.
    const token = bearer(c.req.header('authorization')) ?? consoleCredential(c, store)
    if (token === undefined) {
      throw unauthenticated('a user token is required (Authorization: Bearer ...)')
    }
    const user = await authenticateUser(store, token)
    if (user === undefined) {
      throw unauthenticated('the user token is unknown, wrong or revoked')
    }
    if (user.provisional && !options.provisional) {
      throw new DomainError(
        'forbidden',
        'token_provisional',
        'this token passed through another person: replace it first (POST /v1/users/me/token, `tally admin replace-token`)',
      )
    }
    if (roles !== 'any' && !user.roles.some((r) => roles.includes(r))) {
      throw new DomainError(
        'forbidden',
        'forbidden',
        `this needs one of the roles: ${roles.join(', ')}`,
      )
    }
    c.set('user', user)
    await next()
  })
