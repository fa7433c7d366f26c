/**
 * The register over HTTP: entries, checkpoints, countersignatures, verification, public key.
 *
 * Who reads which register (bulletin 8.5d and 9.2d):
 * - `itsd`, ITSD's special register: auditor, admin, approver. Anyone else gets 403.
 * - `oios`, OIOS's own record: oios_investigator and oios_chief only. Everyone else, ITSD roles
 *   and admin included, gets the same 404 as for a register that does not exist: its existence
 *   is not disclosed.
 *
 * Reading the register (entries, checkpoints, consistency proofs, verify, public key) is itself NOT written to the
 * register: an entry per read would make every audit grow what it audits, without end. Signing
 * a checkpoint and countersigning one are not registered either: they add signatures over the
 * register, not accesses to anyone's data.
 */
import { type Context, Hono } from 'hono'
import { z } from 'zod'
import { REGISTER_READERS } from '../../protocol/api/names.ts'
import { CountersignRequest } from '../../protocol/api/register.ts'
import { requireUser } from '../auth/middleware.ts'
import { ROLES, type Role } from '../auth/roles.ts'
import { DomainError } from '../errors.ts'
import { type CollectorEnv, jsonBody, zodIssues } from '../http.ts'
import { isRegisterName, MAX_PAGE, type Register, type RegisterName } from '../register/register.ts'
import type { Store } from '../store/client.ts'

const ALL_READERS: readonly Role[] = [...REGISTER_READERS.itsd, ...REGISTER_READERS.oios]

const EntriesQuery = z.strictObject({
  from: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).optional(),
  case_id: z.string().min(1).max(200).optional(),
})

const ConsistencyQuery = z.strictObject({
  from: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  to: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
})

/** The 404 the app gives for any unknown path, so a hidden register looks like none at all. */
const notFound = (c: Context) =>
  new DomainError('not_found', 'not_found', `no route ${c.req.method} ${c.req.path}`)

/**
 * The register a request names, if this user may read it; otherwise throws the refusal (404 for
 * an unknown register and for `oios` to anyone outside OIOS, 403 for `itsd`).
 */
function registerFor(c: Context<CollectorEnv>): RegisterName {
  const name = c.req.param('register') ?? ''
  if (!isRegisterName(name)) throw notFound(c)
  const readers = REGISTER_READERS[name]
  if (c.get('user').roles.some((r) => readers.includes(r))) return name
  if (name === 'oios') throw notFound(c)
  throw new DomainError(
    'forbidden',
    'forbidden',
    `this needs one of the roles: ${readers.join(', ')}`,
  )
}

/** The request's query against `schema`, or the 400 that names the parameters. */
function queryOf<S extends z.ZodType>(c: Context, schema: S, expected: string): z.output<S> {
  const query = schema.safeParse(c.req.query())
  if (!query.success) {
    throw new DomainError('invalid', 'invalid_request', expected, {
      issues: zodIssues(query.error),
    })
  }
  return query.data
}

export function registerRoutes(store: Store, register: Register) {
  // Authenticate anyone; which register they may see is decided per request, so that `oios`
  // answers 404 (not 403) to ITSD roles.
  const anyone = requireUser(store, ROLES)
  return (
    new Hono<CollectorEnv>()
      .get('/v1/register/public-key', requireUser(store, ALL_READERS), (c) =>
        c.json(register.publicKeyJwk()),
      )
      .get('/v1/register/:register/entries', anyone, async (c) => {
        const name = registerFor(c)
        const query = queryOf(
          c,
          EntriesQuery,
          `query parameters: from (seq, >= 1), limit (1-${MAX_PAGE}), case_id`,
        )
        return c.json(await register.entriesPage(name, query))
      })
      .get('/v1/register/:register/checkpoints', anyone, async (c) => {
        const name = registerFor(c)
        return c.json({ checkpoints: await register.checkpoints(name) })
      })
      .post('/v1/register/:register/checkpoints', anyone, async (c) => {
        const name = registerFor(c)
        const checkpoint = await register.checkpoint(name)
        c.get('log')?.info(
          { register: name, size: checkpoint.size, user_id: c.get('user').user_id },
          'register checkpoint signed',
        )
        return c.json(checkpoint, 201)
      })
      .post('/v1/register/:register/checkpoints/:size/countersign', anyone, async (c) => {
        const name = registerFor(c)
        const size = Number(c.req.param('size'))
        if (!Number.isSafeInteger(size) || size < 0) {
          throw new DomainError(
            'invalid',
            'invalid_request',
            'size must be a checkpoint size (an integer)',
          )
        }
        const { by, public_key, signature } = await jsonBody(c, CountersignRequest)
        const checkpoint = await register.countersign(name, size, by, public_key, signature)
        c.get('log')?.info(
          { register: name, size, by, user_id: c.get('user').user_id },
          'register checkpoint countersigned',
        )
        return c.json(checkpoint)
      })
      // RFC 6962 PROOF(from, to) over the stored entries, for a verifier who kept the head at
      // `from`; `to` defaults to the latest signed head. The verifier checks it against both
      // signed roots itself: this route is trusted for nothing.
      .get('/v1/register/:register/consistency', anyone, async (c) => {
        const name = registerFor(c)
        const { from, to } = queryOf(
          c,
          ConsistencyQuery,
          'query parameters: from (a tree size, >= 0, required), to (a tree size >= from)',
        )
        if (to !== undefined && to < from) {
          throw new DomainError('invalid', 'invalid_request', `to (${to}) is below from (${from})`)
        }
        return c.json(await register.consistency(name, from, to))
      })
      .get('/v1/register/:register/verify', anyone, async (c) => {
        const name = registerFor(c)
        return c.json(await register.verify(name))
      })
  )
}
