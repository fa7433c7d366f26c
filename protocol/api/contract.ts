/**
 * The shape of one route of the collector's public API, written once: what it takes (path and
 * header parameters, query, body) and what it answers, with the zod schemas of both. The
 * collector generates its OpenAPI document from these (collector/openapi.ts) and serves each
 * route's handler with its contract (collector/contract.ts); the command line calls the API through them (protocol/client.ts) and gets answers
 * parsed by the same schemas, so neither side casts.
 */
import type { z } from 'zod'
import type { Role } from './names.ts'

/** How the caller authenticates: the bearer token kinds of the API, or none. */
export type Security = 'user' | 'agent' | 'enrollment' | 'none'

/** An OpenAPI path or header parameter, as the document states it. */
export interface Parameter {
  readonly name: string
  readonly in: 'path' | 'header' | 'query'
  readonly required: boolean
  readonly description?: string
  readonly schema: Readonly<Record<string, unknown>>
}

/** A documented answer: a schema of the API (by identity, named in its components) or raw content. */
export interface Answer {
  readonly description: string
  readonly schema?: z.ZodType
  /** Content that is not one JSON schema of the API (files, Prometheus text, the document). */
  readonly content?: Readonly<Record<string, unknown>>
  readonly headers?: Readonly<Record<string, unknown>>
}

export interface RouteContract {
  readonly method: 'GET' | 'POST'
  /** OpenAPI path, parameters in braces. */
  readonly path: string
  readonly operationId: string
  readonly summary: string
  readonly description?: string
  readonly security: Security
  /**
   * The roles the route's guard lets through: a user holding one of them ('any': every
   * authenticated user, one holding no role included); absent for routes no user calls.
   */
  readonly roles?: readonly Role[] | 'any'
  /** The one route a provisional token (one that passed through another person) may call. */
  readonly provisionalToken?: true
  /** Path and header parameters, in the document's order (query ones follow). */
  readonly parameters?: readonly Parameter[]
  /**
   * The query, a strict object schema: each property is a query parameter. The collector parses
   * it before the route acts on it; an unknown or invalid parameter is a 400.
   */
  readonly query?: z.ZodType
  /**
   * A query checked by the service instead, after the caller's access (drill-down: every value
   * against the access grant, a widening refused and registered): the schema documents it.
   */
  readonly serviceQuery?: z.ZodType
  readonly body?: z.ZodType
  /** The success answer. */
  readonly status: 200 | 201
  readonly answer: Answer
  /**
   * The refusals by status: a description (the body is an ErrorBody) or a full answer. With
   * errors, the document adds the 500 every route can give; without, the route has none.
   */
  readonly errors?: Readonly<Record<string, string | Answer>>
}

/** Keeps a route's literal types (path, schemas) for the typed client. */
export const route = <const R extends RouteContract>(contract: R): R => contract

/** The names in braces of an OpenAPI path, as an object of strings. */
export type PathParams<P extends string> = P extends `${string}{${infer Name}}${infer Rest}`
  ? { [K in Name]: string } & PathParams<Rest>
  : unknown

type SchemaOf<T> = T extends z.ZodType ? T : never

/** What the route's success answer parses to. */
export type AnswerOf<R extends RouteContract> = R['answer']['schema'] extends z.ZodType
  ? z.output<SchemaOf<R['answer']['schema']>>
  : unknown

/** What a caller gives: path parameters, the query as the schema takes it, the body. */
export type CallOf<R extends RouteContract> = (R['path'] extends `${string}{${string}`
  ? { params: PathParams<R['path']> }
  : { params?: undefined }) &
  (R['body'] extends z.ZodType ? { body: z.input<SchemaOf<R['body']>> } : { body?: undefined }) & {
    query?: R['query'] extends z.ZodType
      ? Partial<Record<keyof z.input<SchemaOf<R['query']>>, string | number | undefined>>
      : Record<string, string | number | undefined>
    headers?: Record<string, string>
  }

/** The path of a route with its parameters filled in, each encoded. */
export function pathOf(contract: RouteContract, params: Record<string, string> = {}): string {
  return contract.path.replace(/\{([A-Za-z0-9_]+)\}/g, (_, name: string) => {
    const value = params[name]
    if (value === undefined) throw new Error(`${contract.operationId}: no value for {${name}}`)
    return encodeURIComponent(value)
  })
}

export const AUTH_ERRORS = {
  '401': 'no token, or an unknown, wrong or revoked one (`unauthenticated`)',
  '403': 'the token lacks the role (`forbidden`)',
} as const

export const RETRY_AFTER = (description: string) => ({
  'Retry-After': { description, schema: { type: 'integer', minimum: 0 } },
})

export const idParameter = (what: string): Parameter => ({
  name: 'id',
  in: 'path',
  required: true,
  description: `the ${what}'s id`,
  schema: { type: 'string' },
})
