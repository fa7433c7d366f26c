/**
 * The OpenAPI 3.1 document of the collector's public API, served on GET /v1/openapi.json,
 * generated from the contract table (protocol/api/): every route with its parameters, request
 * and answer schemas and refusals. Schemas become JSON Schema 2020-12 through zod
 * (`z.toJSONSchema`): requests as the input a client may send (defaults make fields optional),
 * answers as the output the collector writes. Each operation that may carry a body states its
 * cap from body-caps.ts, the table the app enforces.
 *
 * The answers' schemas live in protocol/ so that clients parse with them; the checks below keep
 * them exactly the types the collector's code returns.
 */
import { z } from 'zod'
import type { Answer, RouteContract, Security } from '../protocol/api/contract.ts'
import type * as api from '../protocol/api/index.ts'
import { REQUEST_COMPONENTS, RESPONSE_COMPONENTS, ROUTES } from '../protocol/api/index.ts'
import { ROLES } from '../protocol/api/names.ts'
import { PROTOCOL_VERSION } from '../protocol/v1.ts'
import type { Proposal, ProposalAnswer } from './auth/administration.ts'
import type { IssuedEnrollToken } from './auth/enrollment.ts'
import type { User, UserRecord } from './auth/users.ts'
import { capFor, type RouteKey } from './body-caps.ts'
import type { Case } from './cases/model.ts'
import type {
  EntriesPage,
  RegisterEntry,
  SignedCheckpoint,
  VerifyReport,
} from './register/register.ts'
import type { Manifest } from './restricted/export.ts'
import type { BatchCounts } from './restricted/ingest.ts'
import type { FleetAgent } from './store/fleet.ts'

/** True when A and B are the same type; a drifted route type makes a check below fail. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
type Out<S extends z.ZodType> = z.output<S>
const answersMatchTheirTypes: [
  Same<Out<typeof api.usage.FleetAgent>, FleetAgent>,
  Same<Out<typeof api.admin.IssuedEnrollToken>, IssuedEnrollToken>,
  Same<Out<typeof api.admin.User>, User>,
  Same<Out<typeof api.admin.UserRecord>, UserRecord>,
  Same<Out<typeof api.admin.ProposalAnswer>, ProposalAnswer>,
  Same<Out<typeof api.admin.Proposal>, Proposal>,
  Same<Out<typeof api.cases.Case>, Case>,
  Same<Omit<Out<typeof api.register.RegisterEntry>, 'details'>, Omit<RegisterEntry, 'details'>>,
  Same<Out<typeof api.register.RegisterEntries>['next_from'], EntriesPage['next_from']>,
  Same<Out<typeof api.register.Checkpoint>, SignedCheckpoint>,
  Same<Out<typeof api.register.VerifyReport>, VerifyReport>,
  Same<Out<typeof api.restricted.ExportManifest>, Manifest>,
  Same<Out<typeof api.restricted.Counts>, BatchCounts>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true]
void answersMatchTheirTypes

type JsonSchema = Record<string, unknown>

/** Component schemas, nested ones as `$ref`s to each other. */
function components(schemas: Record<string, z.ZodType>, io: 'input' | 'output') {
  const registry = z.registry<{ id: string }>()
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id })
  const { schemas: out } = z.toJSONSchema(registry, {
    io,
    uri: (id) => `#/components/schemas/${id}`,
  })
  const result: Record<string, JsonSchema> = {}
  for (const [id, schema] of Object.entries(out)) {
    // The document names the dialect once (jsonSchemaDialect); a `$id` with a fragment is not
    // valid JSON Schema 2020-12, and components are found by their key.
    const { $schema: _dialect, $id: _id, ...rest } = schema as JsonSchema
    result[id] = rest
  }
  return result
}

/** The component name of every schema the contract refers to, by identity. */
const NAMES = new Map<z.ZodType, string>(
  [...Object.entries(REQUEST_COMPONENTS), ...Object.entries(RESPONSE_COMPONENTS)].map(
    ([name, schema]) => [schema as z.ZodType, name],
  ),
)

function nameOf(schema: z.ZodType, where: string): string {
  const name = NAMES.get(schema)
  if (name === undefined) throw new Error(`${where}: a schema that is not a component`)
  return name
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const json = (name: string) => ({ 'application/json': { schema: ref(name) } })

const SECURITY: Record<Security, Record<string, string[]>[]> = {
  user: [{ userToken: [] }],
  agent: [{ agentCredential: [] }],
  enrollment: [{ enrollmentToken: [] }],
  none: [],
}

/**
 * A strict query schema as OpenAPI query parameters (unknown parameters are a 400); a property's
 * description is the parameter's.
 */
function queryParameters(schema: z.ZodType) {
  const object = z.toJSONSchema(schema, { io: 'input' }) as {
    properties?: Record<string, JsonSchema>
    required?: string[]
  }
  return Object.entries(object.properties ?? {}).map(([name, { description, ...property }]) => ({
    name,
    in: 'query',
    ...(typeof description === 'string' ? { description } : {}),
    required: object.required?.includes(name) ?? false,
    schema: property,
  }))
}

function response(answer: Answer, where: string, fallback?: string) {
  const schema = answer.schema === undefined ? fallback : nameOf(answer.schema, where)
  return {
    description: answer.description,
    ...(answer.content !== undefined
      ? { content: answer.content }
      : schema !== undefined
        ? { content: json(schema) }
        : {}),
    ...(answer.headers === undefined ? {} : { headers: answer.headers }),
  }
}

/** The route's refusals, each an ErrorBody unless it says otherwise, and the 500 of every route. */
function refusals(contract: RouteContract) {
  if (contract.errors === undefined) return {}
  const own = Object.entries(contract.errors).map(([status, refusal]) => [
    status,
    response(
      typeof refusal === 'string' ? { description: refusal } : refusal,
      `${contract.operationId} ${status}`,
      'ErrorBody',
    ),
  ])
  return {
    ...Object.fromEntries(own),
    '500': {
      description: 'the collector failed to handle the request (`internal_error`); see its log',
      content: json('ErrorBody'),
    },
  }
}

function operation(contract: RouteContract) {
  const where = contract.operationId
  const parameters = [
    ...(contract.parameters ?? []),
    ...(contract.query === undefined ? [] : queryParameters(contract.query)),
    ...(contract.serviceQuery === undefined ? [] : queryParameters(contract.serviceQuery)),
  ]
  return {
    operationId: contract.operationId,
    summary: contract.summary,
    ...(contract.description === undefined ? {} : { description: contract.description }),
    security: SECURITY[contract.security],
    ...(parameters.length === 0 ? {} : { parameters }),
    ...(contract.body === undefined
      ? {}
      : { requestBody: { required: true, content: json(nameOf(contract.body, where)) } }),
    responses: {
      [String(contract.status)]: response(contract.answer, where),
      ...refusals(contract),
    },
  }
}

/** The path items of these routes, as the document states them. */
export function pathItems(routes: readonly RouteContract[]) {
  const items: Record<string, Record<string, ReturnType<typeof operation>>> = {}
  for (const contract of routes) {
    items[contract.path] = {
      ...items[contract.path],
      [contract.method.toLowerCase()]: operation(contract),
    }
  }
  return items
}

function build() {
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Tally collector',
      version: String(PROTOCOL_VERSION),
      description:
        'The public API of the Tally collector: agent enrollment and ingest (protocol v1), the ' +
        'fleet view, site usage, administration, investigations (cases, grants, tier I ' +
        'drill-down and exports, the register), ' +
        'health and metrics. Every request body is validated ' +
        'strictly: a field the schema does not name is a 400. Every error answer is an ErrorBody.',
    },
    components: {
      securitySchemes: {
        enrollmentToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'A site-scoped enrollment token (`tly_e_...`), made by an admin.',
        },
        agentCredential: {
          type: 'http',
          scheme: 'bearer',
          description: "An agent's credential (`tly_a_...`), issued at enrollment.",
        },
        userToken: {
          type: 'http',
          scheme: 'bearer',
          description: `A user token (\`tly_u_...\`) with roles: ${ROLES.join(', ')}.`,
        },
      },
      schemas: {
        ...components(REQUEST_COMPONENTS, 'input'),
        ...components(RESPONSE_COMPONENTS, 'output'),
      },
    },
    paths: pathItems(ROUTES),
  }
}

export type OpenApiDocument = ReturnType<typeof build>

let built: OpenApiDocument | undefined

/**
 * The document, built once; with `caps` (collector/body-caps.ts, the table the app enforces),
 * every operation that may carry a body states its cap as `x-max-body-bytes` and its 413.
 */
export const openApiDocument = (caps?: Record<RouteKey, number>): OpenApiDocument => {
  built ??= build()
  return caps === undefined ? built : withBodyCaps(built, caps)
}

const BODY_METHODS = ['post', 'put', 'patch', 'delete'] as const

function withBodyCaps(doc: OpenApiDocument, caps: Record<RouteKey, number>): OpenApiDocument {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    const capped: Record<string, unknown> = { ...item }
    for (const method of BODY_METHODS) {
      const operation = item[method] as { responses?: Record<string, unknown> } | undefined
      if (operation === undefined) continue
      const maxBytes = capFor(caps, method.toUpperCase(), path)
      const capText = `the body exceeds ${maxBytes} bytes (\`body_too_large\`), refused before it is read`
      const own = operation.responses?.['413'] as { description: string } | undefined
      capped[method] = {
        ...operation,
        'x-max-body-bytes': maxBytes,
        responses: {
          ...operation.responses,
          '413':
            own === undefined
              ? { description: capText, content: json('ErrorBody') }
              : { ...own, description: `${capText}; ${own.description}` },
        },
      }
    }
    paths[path] = capped
  }
  return { ...doc, paths: paths as OpenApiDocument['paths'] }
}
