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
import type { Context } from 'hono'
import { MAX_PAGE, REGISTER_READERS } from '../../protocol/api/names.ts'
import * as api from '../../protocol/api/register.ts'
import { ContractRoutes, queryRefusal } from '../contract.ts'
import { DomainError } from '../errors.ts'
import type { CollectorEnv } from '../http.ts'
import { isRegisterName, type Register, type RegisterName } from '../register/register.ts'
import type { Store } from '../store/client.ts'

/** The 404 the app gives for any unknown path, so a hidden register looks like none at all. */
const notFound = (c: Context) =>
  new DomainError('not_found', 'not_found', `no route ${c.req.method} ${c.req.path}`)

/**
 * The register a request names, if this user may read it; otherwise throws the refusal (404 for
 * an unknown register and for `oios` to anyone outside OIOS, 403 for `itsd`). Asked before the
 * query or body is read, so that `oios` answers ITSD roles the same 404 whatever they send.
 */
function registerFor(c: Context<CollectorEnv>, name: string): RegisterName {
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

/**
 * Every user holding a role gets through the guard (the contracts' ROLES); which register they
 * may see is decided per request, so that `oios` answers 404 (not 403) to ITSD roles.
 */
export function registerRoutes(store: Store, register: Register) {
  return (
    new ContractRoutes(store)
      // The key is kept as a JWK of strings; the contract's schema checks the fields it names,
      // and the key is answered in its own order (the parse would put those fields first).
      .serve(api.registerPublicKey, () => {
        const jwk = register.publicKeyJwk()
        return { ...jwk, ...api.RegisterPublicKey.parse(jwk) }
      })
      .serve(
        api.registerEntries,
        async ({ c, params, query }) => {
          const name = registerFor(c, params.register)
          return register.entriesPage(name, query())
        },
        {
          refuseQuery: queryRefusal(
            'invalid_request',
            `query parameters: from (seq, >= 1), limit (1-${MAX_PAGE}), case_id`,
          ),
        },
      )
      .serve(api.registerCheckpoints, async ({ c, params }) => {
        const name = registerFor(c, params.register)
        return { checkpoints: await register.checkpoints(name) }
      })
      .serve(api.signCheckpoint, async ({ c, user, params }) => {
        const name = registerFor(c, params.register)
        const checkpoint = await register.checkpoint(name)
        c.get('log')?.info(
          { register: name, size: checkpoint.size, user_id: user.user_id },
          'register checkpoint signed',
        )
        return checkpoint
      })
      .serve(api.countersignCheckpoint, async ({ c, user, params, body }) => {
        const name = registerFor(c, params.register)
        const size = Number(params.size)
        if (!Number.isSafeInteger(size) || size < 0) {
          throw new DomainError(
            'invalid',
            'invalid_request',
            'size must be a checkpoint size (an integer)',
          )
        }
        const { by, public_key, signature } = await body()
        const checkpoint = await register.countersign(name, size, by, public_key, signature)
        c.get('log')?.info(
          { register: name, size, by, user_id: user.user_id },
          'register checkpoint countersigned',
        )
        return checkpoint
      })
      // RFC 6962 PROOF(from, to) over the stored entries, for a verifier who kept the head at
      // `from`; `to` defaults to the latest signed head. The verifier checks it against both
      // signed roots itself: this route is trusted for nothing.
      .serve(
        api.registerConsistency,
        async ({ c, params, query }) => {
          const name = registerFor(c, params.register)
          const { from, to } = query()
          if (to !== undefined && to < from) {
            throw new DomainError(
              'invalid',
              'invalid_request',
              `to (${to}) is below from (${from})`,
            )
          }
          return register.consistency(name, from, to)
        },
        {
          refuseQuery: queryRefusal(
            'invalid_request',
            'query parameters: from (a tree size, >= 0, required), to (a tree size >= from)',
          ),
        },
      )
      .serve(api.verifyRegister, async ({ c, params }) =>
        register.verify(registerFor(c, params.register)),
      ).app
  )
}
