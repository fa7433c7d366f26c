/**
 * The console's sessions: a user's token, posted once on the sign-in form, is exchanged for a
 * random session id in an HttpOnly, SameSite=Strict cookie, so that the token never sits in the
 * browser (no URL, no localStorage, no script can read the cookie).
 *
 * Sessions live in this process's memory, keyed by the id: a restart signs everyone out, and a
 * second collector behind the same name does not know the first one's sessions. The session keeps
 * the token (never written anywhere) so that every request made with the cookie authenticates
 * exactly as the bearer token would: same user, same roles, and a revoked or replaced token ends
 * the session at once.
 *
 * A request made with the cookie that changes anything (any method but GET, HEAD, OPTIONS) must
 * carry the session's CSRF token in `X-CSRF-Token` and, when the browser sends one, an Origin
 * equal to the collector's own: another site can make the browser send the cookie (not with
 * SameSite=Strict, but belt and braces), never read the token out of a same-origin answer.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { Context } from 'hono'
import { getCookie } from 'hono/cookie'
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'

/**
 * How long a session lasts. Idle: since the last request made with it (15 min, so a screen left
 * open does not stay signed in); max: since sign-in, whatever the use (8 h, a working day).
 */
export interface ConsoleSessionSettings {
  idleMs: number
  maxMs: number
  /** Sessions kept at most; the oldest is dropped first (memory stays bounded). */
  maxSessions: number
}

export const CONSOLE_SESSION_DEFAULTS: ConsoleSessionSettings = {
  idleMs: 15 * 60_000,
  maxMs: 8 * 3600_000,
  maxSessions: 10_000,
}

/** The cookie's name: `__Host-` (Secure, Path=/, no Domain enforced by browsers) over TLS. */
export const SESSION_COOKIE = 'tally_console'
export const SECURE_SESSION_COOKIE = '__Host-tally_console'
export const CSRF_HEADER = 'x-csrf-token'

export interface ConsoleSession {
  readonly id: string
  /** The user's token, kept in memory only, to authenticate each request as the bearer does. */
  readonly token: string
  readonly userId: string
  /** The per-session token every state-changing request must echo in X-CSRF-Token. */
  readonly csrf: string
  readonly openedAt: number
  lastUsedAt: number
}

export class ConsoleSessions {
  readonly settings: ConsoleSessionSettings
  readonly #sessions = new Map<string, ConsoleSession>()
  /** The clock; a test moves it to expire sessions without waiting. */
  now: () => number

  constructor(settings: Partial<ConsoleSessionSettings> = {}, now: () => number = Date.now) {
    this.settings = { ...CONSOLE_SESSION_DEFAULTS, ...settings }
    this.now = now
  }

  open(token: string, userId: string): ConsoleSession {
    this.#sweep()
    while (this.#sessions.size >= this.settings.maxSessions) {
      const oldest = this.#sessions.keys().next().value
      if (oldest === undefined) break
      this.#sessions.delete(oldest)
    }
    const now = this.now()
    const session: ConsoleSession = {
      id: randomBytes(32).toString('base64url'),
      token,
      userId,
      csrf: randomBytes(32).toString('base64url'),
      openedAt: now,
      lastUsedAt: now,
    }
    this.#sessions.set(session.id, session)
    return session
  }

  /** The live session with this id, its idle clock restarted; undefined when unknown or expired. */
  use(id: string): ConsoleSession | undefined {
    const session = this.#sessions.get(id)
    if (session === undefined) return undefined
    const now = this.now()
    if (this.#expired(session, now)) {
      this.#sessions.delete(id)
      return undefined
    }
    session.lastUsedAt = now
    return session
  }

  close(id: string): void {
    this.#sessions.delete(id)
  }

  /** Ends every session of a user (their token was found revoked or replaced). */
  closeUser(userId: string): void {
    for (const [id, s] of this.#sessions) if (s.userId === userId) this.#sessions.delete(id)
  }

  get size(): number {
    return this.#sessions.size
  }

  #expired(s: ConsoleSession, now: number): boolean {
    return now - s.lastUsedAt > this.settings.idleMs || now - s.openedAt > this.settings.maxMs
  }

  #sweep(): void {
    const now = this.now()
    for (const [id, s] of this.#sessions) if (this.#expired(s, now)) this.#sessions.delete(id)
  }
}

/**
 * One session table per store, so that the console's routes and the API's authentication (two
 * modules that both get the store) share it, and two collectors in one test process do not.
 */
const tables = new WeakMap<Store, ConsoleSessions>()

export function consoleSessionsOf(store: Store): ConsoleSessions {
  let sessions = tables.get(store)
  if (sessions === undefined) {
    sessions = new ConsoleSessions()
    tables.set(store, sessions)
  }
  return sessions
}

/** Whether the request reached us over TLS (directly, or through a proxy that says so). */
export function overTls(c: Context): boolean {
  return new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https'
}

export function sessionCookieName(c: Context): string {
  return overTls(c) ? SECURE_SESSION_COOKIE : SESSION_COOKIE
}

/**
 * The session id the request's cookie carries, if any: over TLS the `__Host-` cookie only. Any
 * subdomain of the site can set a plain-named cookie for the collector's host (and so sign a
 * victim in as itself); only the prefixed one is the collector's own.
 */
export function sessionIdOf(c: Context): string | undefined {
  return getCookie(c, sessionCookieName(c))
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Whether the browser says the request comes from a page of this collector. Browsers send
 * Sec-Fetch-Site and Origin on every POST; a client that sends neither is no browser, and a
 * cookie it holds was not lent to it by a victim's browser.
 */
export function sameOrigin(c: Context): boolean {
  const site = c.req.header('sec-fetch-site')
  if (site !== undefined && site !== 'same-origin') return false
  const origin = c.req.header('origin')
  // Behind a proxy the collector may see another scheme or host than the browser did; the
  // browser's own verdict (same-origin) then stands.
  return origin === undefined || origin === new URL(c.req.url).origin || site === 'same-origin'
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** The CSRF check of a request made with the session's cookie: throws the 403 naming what is missing. */
export function checkCsrf(c: Context, session: ConsoleSession): void {
  if (SAFE_METHODS.has(c.req.method)) return
  if (!sameOrigin(c)) {
    throw new DomainError(
      'forbidden',
      'csrf_refused',
      'a console request must come from the console itself',
    )
  }
  const echoed = c.req.header(CSRF_HEADER)
  if (echoed === undefined || !sameSecret(echoed, session.csrf)) {
    throw new DomainError(
      'forbidden',
      'csrf_refused',
      'a console request that changes something needs the session’s X-CSRF-Token header',
    )
  }
}

/**
 * The hook for the API's user authentication, asked when a request has no bearer token: the
 * console session's user token, or undefined when the request has no session cookie at all.
 * Throws the refusal for an ended session (401) and for a state-changing request without the
 * session's CSRF token or from another origin (403).
 */
export function consoleCredential(c: Context, store: Store): string | undefined {
  const id = sessionIdOf(c)
  if (id === undefined) return undefined
  const session = consoleSessionsOf(store).use(id)
  if (session === undefined) {
    throw new DomainError(
      'unauthenticated',
      'session_expired',
      'the console session has ended (idle, too old, signed out or the collector restarted); sign in again',
    )
  }
  if (!fromConsoleOrAddressBar(c)) {
    throw new DomainError(
      'forbidden',
      'csrf_refused',
      'a request with the console’s session must come from the console itself',
    )
  }
  checkCsrf(c, session)
  return session.token
}

/**
 * Whether the browser says a request made with the cookie, of any method, comes from the
 * console's own pages or from the user (an address typed, a bookmark). SameSite=Strict keeps
 * the cookie off other sites' requests but not off another origin of the same site (another
 * port of the collector's host, a sibling subdomain: a dashboard beside the collector), and
 * some GETs register an access in the user's name (the export listing, a download). A client
 * that sends no Sec-Fetch-Site is no browser lending a victim's cookie.
 */
function fromConsoleOrAddressBar(c: Context): boolean {
  const site = c.req.header('sec-fetch-site')
  return site === undefined || site === 'same-origin' || site === 'none'
}
