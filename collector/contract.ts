/**
 * Route handlers declared with their contract (protocol/api/): `serve` registers the contract's
 * method and path, puts the contract's guard in front of the handler, and gives the handler the
 * request as the contract types it (path parameters, the caller, the query and the body parsed
 * by the contract's schemas). The handler returns the answer the contract names, which is
 * answered with the contract's status; or a Response, for an answer that is not that JSON
 * (files, a body registered by its digest).
 *
 * The query and the body are read when the handler asks for them, not before: some routes decide
 * who may see a resource before reading what the request says about it (an `oios` register is a
 * 404 to ITSD whatever its query; a receipt's body tells nobody but the receiving official what
 * is wrong with it). A handler that returns without reading a query or body its contract takes
 * is a bug, answered 500, so no route can skip the check of its input by forgetting it.
 */
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import type { z } from 'zod'
import type { PathParams, RouteContract } from '../protocol/api/contract.ts'
import type { AgentIdentity } from './auth/agents.ts'
import { requireAgent, requireUser } from './auth/middleware.ts'
import { bearer } from './auth/tokens.ts'
import type { AuthenticatedUser } from './auth/users.ts'
import { DomainError } from './errors.ts'
import { type CollectorEnv, jsonBody, zodIssues } from './http.ts'
import type { Store } from './store/client.ts'

/**
 * Path prefixes the collector serves that are not part of its v1 JSON API: the web console's
 * pages and session routes (collector/console/) answer HTML and set cookies for a browser, and
 * have no contract, so the OpenAPI document (made from the contracts) does not name them. The
 * checks that the app serves exactly the contracts leave them out by this list, and nowhere
 * else (test/collector/contract.test.ts, test/collector/openapi.test.ts).
 */
export const OUTSIDE_THE_API = ['/console'] as const

/** True for a path of the API (a path no prefix of OUTSIDE_THE_API covers). */
export const isApiPath = (path: string): boolean =>
  !OUTSIDE_THE_API.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))

/** The contract's OpenAPI path (`{id}`) as Hono routes it (`:id`). */
export const honoPath = (path: string): string => path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1')

type SchemaOf<T> = T extends z.ZodType ? T : never

/** Who the guard let through, as the contract's security names them. */
type Caller<R extends RouteContract> = R['security'] extends 'user'
  ? { user: AuthenticatedUser }
  : R['security'] extends 'agent'
    ? { agent: AgentIdentity }
    : R['security'] extends 'enrollment'
      ? { token: string }
      : unknown

/** The request as the contract types it. */
export type ContractRequest<R extends RouteContract> = {
  c: Context<CollectorEnv>
  params: PathParams<R['path']>
  /** The query parsed by the contract's schema; throws the route's 400 when it does not parse. */
  query: R['query'] extends z.ZodType ? () => z.output<SchemaOf<R['query']>> : undefined
  /** The JSON body parsed by the contract's schema; throws jsonBody's 400s. */
  body: R['body'] extends z.ZodType ? () => Promise<z.output<SchemaOf<R['body']>>> : undefined
  /**
   * The body's JSON as the client sent it, before the schema's defaults (what a digest of the
   * request is computed on); after `body()`, on a route with a `bodyReader`.
   */
  bodyAsSent: R['body'] extends z.ZodType ? () => unknown : undefined
} & Caller<R>

/** What the route answers: the contract's answer, or a Response for one that is not that JSON. */
export type ContractAnswer<R extends RouteContract> = R['answer']['schema'] extends z.ZodType
  ? z.output<SchemaOf<R['answer']['schema']>> | Response
  : Response

export type ContractHandler<R extends RouteContract> = (
  request: ContractRequest<R>,
) => Promise<ContractAnswer<R>> | ContractAnswer<R>

/** The 400 of a query the contract's schema does not take. */
export type QueryRefusal = (error: z.ZodError) => DomainError

/** `invalid_query` naming the first problem: the refusal of most query routes. */
export const firstQueryProblem: QueryRefusal = (error) =>
  new DomainError(
    'invalid',
    'invalid_query',
    `unknown or invalid query parameter: ${error.issues[0]?.message}`,
  )

/** A fixed code and message, with the schema's issues unless `issues` is false. */
export const queryRefusal =
  (code: string, message: string, options: { issues?: boolean } = {}): QueryRefusal =>
  (error) =>
    new DomainError(
      'invalid',
      code,
      message,
      options.issues === false ? {} : { issues: zodIssues(error) },
    )

export interface ServeOptions {
  /** How the route refuses a query its schema does not take (default: firstQueryProblem). */
  refuseQuery?: QueryRefusal
  /** Middleware before the guard (a body cap that must act before the credential is read). */
  before?: readonly MiddlewareHandler<CollectorEnv>[]
  /** How an agent's credential is checked (default: one lookup per request). */
  authenticateAgent?: (credential: string) => Promise<AgentIdentity | undefined>
  /**
   * How the body is read and refused, for a body that is not the request's text as JSON (an
   * agent's batch: gzip, capped while inflating); default jsonBody's reading and 400s.
   */
  bodyReader?: BodyReader
}

export interface BodyReader {
  /** The body as JSON, or the refusal that says why it is not. */
  read: (c: Context<CollectorEnv>) => Promise<unknown>
  /** The 400 of a body the contract's schema does not take. */
  refuse: (error: z.ZodError) => DomainError
}

/** The routes of one family, each registered by `serve` with its contract. */
export class ContractRoutes {
  readonly app = new Hono<CollectorEnv>()
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  serve<const R extends RouteContract>(
    contract: R,
    handler: ContractHandler<R>,
    options: ServeOptions = {},
  ): this {
    const answer: MiddlewareHandler<CollectorEnv> = async (c) => {
      const input = new RequestInput(c, contract, options)
      const answered = await handler(input.request() as ContractRequest<R>)
      input.checkRead()
      if (answered instanceof Response) return answered
      return c.json(answered as object, contract.status)
    }
    const [first = answer, ...rest] = [
      ...(options.before ?? []),
      ...this.#guard(contract, options),
      answer,
    ]
    this.app.on(contract.method, honoPath(contract.path), first, ...rest)
    return this
  }

  #guard(contract: RouteContract, options: ServeOptions): MiddlewareHandler<CollectorEnv>[] {
    const store = this.#store
    switch (contract.security) {
      case 'user': {
        if (contract.roles === undefined) {
          throw new Error(`${contract.operationId}: a user route without roles`)
        }
        return [
          requireUser(store, contract.roles, {
            provisional: contract.provisionalToken === true,
          }),
        ]
      }
      case 'agent':
        return [requireAgent(store, options.authenticateAgent)]
      // The enrollment token is checked by enrollment itself (it is spent there); its presence
      // is checked before the handler runs (enrollmentToken).
      case 'enrollment':
      case 'none':
        return []
    }
  }
}

/** One request's input, each part read only when the handler asks for it. */
class RequestInput {
  readonly #c: Context<CollectorEnv>
  readonly #contract: RouteContract
  readonly #options: ServeOptions
  #queryRead = false
  #bodyRead = false
  #sent: { json: unknown } | undefined

  constructor(c: Context<CollectorEnv>, contract: RouteContract, options: ServeOptions) {
    this.#c = c
    this.#contract = contract
    this.#options = options
  }

  request(): Record<string, unknown> {
    const c = this.#c
    const { query, body, security } = this.#contract
    return {
      c,
      params: c.req.param(),
      ...(security === 'user'
        ? // requireUser sets what authenticateUser returned: the user with side and provisional.
          { user: c.get('user') as AuthenticatedUser }
        : {}),
      ...(security === 'agent' ? { agent: c.get('agent') } : {}),
      ...(security === 'enrollment' ? { token: enrollmentToken(c) } : {}),
      query: query === undefined ? undefined : () => this.#query(query),
      body: body === undefined ? undefined : () => this.#body(body),
      bodyAsSent: body === undefined ? undefined : () => this.#bodyAsSent(),
    }
  }

  #query(schema: z.ZodType): unknown {
    this.#queryRead = true
    const parsed = schema.safeParse(this.#c.req.query())
    if (!parsed.success) throw (this.#options.refuseQuery ?? firstQueryProblem)(parsed.error)
    return parsed.data
  }

  async #body(schema: z.ZodType): Promise<unknown> {
    this.#bodyRead = true
    const reader = this.#options.bodyReader
    if (reader === undefined) return jsonBody(this.#c, schema)
    const json = await reader.read(this.#c)
    this.#sent = { json }
    const parsed = schema.safeParse(json)
    if (!parsed.success) throw reader.refuse(parsed.error)
    return parsed.data
  }

  #bodyAsSent(): unknown {
    if (this.#sent === undefined) {
      throw new Error(`${this.#contract.operationId}: the body as sent is kept by a body reader`)
    }
    return this.#sent.json
  }

  /** A handler that answered without reading the input its contract takes is a bug. */
  checkRead(): void {
    const { operationId, query, body } = this.#contract
    if (query !== undefined && !this.#queryRead) {
      throw new Error(`${operationId}: answered without reading its query`)
    }
    if (body !== undefined && !this.#bodyRead) {
      throw new Error(`${operationId}: answered without reading its body`)
    }
  }
}

function enrollmentToken(c: Context): string {
  const token = bearer(c.req.header('authorization'))
  if (token === undefined) {
    throw new DomainError(
      'unauthenticated',
      'unauthenticated',
      'an enrollment token is required (Authorization: Bearer ...)',
    )
  }
  return token
}
