/**
 * The web console, served by the collector itself under /console/: its static pages (plain ES
 * modules, no build step), sign-in and sign-out, and the two answers the pages need that the
 * JSON API does not give (who is signed in; whether a case step would be refused, and why).
 * Everything else the pages do goes through the JSON API, same origin, with the session cookie.
 */
import { type Context, Hono } from 'hono'
import { deleteCookie, setCookie } from 'hono/cookie'
import { z } from 'zod'
import { type AuthenticatedUser, authenticateUser, rolesOf } from '../auth/users.ts'
import type { Case } from '../cases/model.ts'
import { authorize, type Step } from '../cases/transitions.ts'
import type { CaseService } from '../cases/workflow.ts'
import { DomainError } from '../errors.ts'
import type { CollectorEnv } from '../http.ts'
import type { Store } from '../store/client.ts'
import { consoleAssets, securityHeaders } from './assets.ts'
import {
  type ConsoleSessions,
  checkCsrf,
  consoleCredential,
  consoleSessionsOf,
  overTls,
  SECURE_SESSION_COOKIE,
  SESSION_COOKIE,
  sameOrigin,
  sessionCookieName,
  sessionIdOf,
} from './session.ts'

export interface ConsoleDeps {
  store: Store
  cases: CaseService
  /** The session table; by default the one the API's authentication reads for this store. */
  sessions?: ConsoleSessions
}

const SignIn = z.object({ token: z.string().min(1).max(512) })

/** The steps the case page checks beforehand, and what the check needs beyond the case. */
export const PREFLIGHT_STEPS = [
  'consult',
  'confirm_emergency',
  'approve',
  'deny',
  'extend',
  'notice',
  'close',
] as const
const Preflight = z.object({
  step: z.enum(PREFLIGHT_STEPS),
  investigator: z
    .string()
    .regex(/^u-[a-z0-9]{16}$/)
    .optional(),
})

export function consoleRoutes(deps: ConsoleDeps) {
  const { store, cases } = deps
  const sessions = deps.sessions ?? consoleSessionsOf(store)
  const assets = consoleAssets()
  const app = new Hono<CollectorEnv>()
  app.use('/console', securityHeaders)
  app.use('/console/*', securityHeaders)
  app.get('/console', (c) => c.redirect('/console/', 308))

  /** The signed-in user, from the session cookie only (a bearer caller has the API itself). */
  const signedIn = async (c: Context): Promise<AuthenticatedUser> => {
    const token = consoleCredential(c, store)
    if (token === undefined)
      throw new DomainError('unauthenticated', 'unauthenticated', 'not signed in')
    const user = await authenticateUser(store, token)
    if (user === undefined) {
      // Revoked or replaced since sign-in: the session ends with the token.
      const id = sessionIdOf(c)
      if (id !== undefined) sessions.close(id)
      throw new DomainError(
        'unauthenticated',
        'session_expired',
        'the token of this session no longer works',
      )
    }
    return user
  }

  app.post('/console/session', async (c) => {
    const wantsJson = (c.req.header('accept') ?? '').includes('application/json')
    if (!sameOrigin(c)) {
      throw new DomainError('forbidden', 'csrf_refused', 'sign in from the console’s own page')
    }
    const form = SignIn.safeParse(await c.req.parseBody().catch(() => ({})))
    if (!form.success) {
      throw new DomainError('invalid', 'invalid_request', 'the sign-in form needs a token')
    }
    const user = await authenticateUser(store, form.data.token.trim())
    if (user === undefined) {
      if (!wantsJson) return c.redirect('/console/?signin=failed', 303)
      throw new DomainError(
        'unauthenticated',
        'unauthenticated',
        'this token is unknown, wrong or revoked',
      )
    }
    if (user.provisional) {
      throw new DomainError(
        'forbidden',
        'token_provisional',
        'this token passed through another person: replace it first (`tally admin replace-token`)',
      )
    }
    const previous = sessionIdOf(c)
    if (previous !== undefined) sessions.close(previous)
    const session = sessions.open(form.data.token.trim(), user.user_id)
    setCookie(c, sessionCookieName(c), session.id, {
      httpOnly: true,
      sameSite: 'Strict',
      secure: overTls(c),
      path: '/',
      // A browser session cookie: the server's clock decides the session's end.
    })
    if (!wantsJson) return c.redirect('/console/', 303)
    return c.json(whoAmI(user, session.csrf, sessions), 201)
  })

  app.get('/console/api/session', async (c) => {
    const user = await signedIn(c)
    const session = sessions.use(sessionIdOf(c) ?? '')
    if (session === undefined) {
      throw new DomainError('unauthenticated', 'session_expired', 'sign in again')
    }
    return c.json(whoAmI(user, session.csrf, sessions))
  })

  app.post('/console/session/logout', (c) => {
    const id = sessionIdOf(c)
    const session = id === undefined ? undefined : sessions.use(id)
    if (session !== undefined) {
      checkCsrf(c, session)
      sessions.close(session.id)
    }
    for (const name of [SESSION_COOKIE, SECURE_SESSION_COOKIE]) {
      deleteCookie(c, name, {
        path: '/',
        secure: name === SECURE_SESSION_COOKIE,
      })
    }
    return c.body(null, 204)
  })

  // Would this step be refused, and why? The case service's own rules (cases/transitions.ts),
  // applied without taking the step or writing anything, so the page can say so beforehand.
  app.get('/console/api/cases/:id/preflight', async (c) => {
    const user = await signedIn(c)
    const query = Preflight.safeParse(c.req.query())
    if (!query.success) {
      throw new DomainError(
        'invalid',
        'invalid_request',
        `query parameters: step (${PREFLIGHT_STEPS.join(', ')}), investigator (a user id)`,
      )
    }
    const doc = await cases.get(user, c.req.param('id'))
    const { step, investigator } = query.data
    try {
      await authorize({
        step: step as Step,
        before: doc,
        after: asAfter(doc, step, user.user_id, investigator),
        actor: user,
        now: Date.now(),
        rolesOf: (id) => rolesOf(store, id),
      })
      return c.json({ step, allowed: true })
    } catch (err) {
      const refusal = refusalOf(err)
      if (refusal === undefined) throw err
      return c.json({ step, allowed: false, ...refusal })
    }
  })

  app.get('/console/', (c) => assets.serve(c, 'index.html'))
  app.get('/console/:path{.+}', (c) => assets.serve(c, c.req.param('path')))
  return app
}

function whoAmI(user: AuthenticatedUser, csrf: string, sessions: ConsoleSessions) {
  return {
    user_id: user.user_id,
    name: user.name,
    roles: user.roles,
    side: user.side,
    csrf_token: csrf,
    idle_seconds: Math.round(sessions.settings.idleMs / 1000),
    max_seconds: Math.round(sessions.settings.maxMs / 1000),
  }
}

/** The case as the step would leave it, as far as separation of duties looks at it. */
function asAfter(doc: Case, step: string, userId: string, investigator?: string): Case {
  const at = new Date().toISOString()
  if (step === 'approve') {
    return {
      ...doc,
      ...(investigator === undefined ? {} : { investigator }),
      approvals: [...doc.approvals, { by: userId, at, until: doc.window.end, kind: 'approval' }],
    }
  }
  if (step === 'extend') {
    return {
      ...doc,
      approvals: [...doc.approvals, { by: userId, at, until: doc.window.end, kind: 'extension' }],
    }
  }
  return doc
}

/**
 * A refusal of the workflow's rules, or undefined. Only the domain's refusals: a store's error
 * also has a string code, and its message names the engine's internals; it, and a dependency
 * that is unavailable, go to app.onError as on every other route (500, or 503 and Retry-After).
 */
function refusalOf(err: unknown): { code: string; message: string } | undefined {
  if (!(err instanceof DomainError) || err.failure === 'unavailable') return undefined
  return { code: err.code, message: err.message }
}
