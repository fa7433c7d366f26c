/**
 * The OpenAPI 3.1 document of the collector's public API, served on GET /v1/openapi.json.
 *
 * Request and wire schemas are the ones the routes validate with (protocol/v1.ts and the routes'
 * own), turned into JSON Schema 2020-12 by zod (`z.toJSONSchema`): requests as the input a client
 * may send (defaults make fields optional), answers as the output the collector writes. The
 * answers that have no zod schema elsewhere are described here, and checked at compile time to
 * be exactly the types the routes return.
 */
import { z } from 'zod'
import {
  EnrollRequest,
  EnrollResponse,
  ErrorBody,
  HostBatch,
  HostInventory,
  HostSample,
  IngestAck,
  PROTOCOL_VERSION,
  SampleAttributes,
} from '../protocol/v1.ts'
import type { IssuedEnrollToken } from './auth/enrollment.ts'
import { ROLES } from './auth/roles.ts'
import type { User, UserRecord } from './auth/users.ts'
import { EnrollTokenRequest, UserRequest } from './routes/admin.ts'
import { FleetQuery } from './routes/agents.ts'
import { UsageParams } from './routes/usage.ts'
import type { FleetAgent } from './store/fleet.ts'
import { USAGE_DIMENSIONS } from './store/usage.ts'

const FleetAgentSchema = z.strictObject({
  agent_id: z.string(),
  host: z.string(),
  site: z.string(),
  version: z.string().nullable(),
  enrolled_at: z.string(),
  revoked: z.boolean(),
  last_seen: z.string().nullable(),
  last_seq: z.number().int().nullable(),
  batches: z.number().int(),
  spool_depth: z.number().nullable(),
})
const FleetResponse = z.strictObject({ agents: z.array(FleetAgentSchema) })
const IssuedEnrollTokenSchema = z.strictObject({
  token_id: z.string(),
  token: z.string().describe('the enrollment token; shown once'),
  site: z.string(),
  expires_at: z.string(),
  max_uses: z.number().int(),
})
const UserSchema = z.strictObject({
  user_id: z.string(),
  name: z.string(),
  roles: z.array(z.enum(ROLES)),
})
const CreatedUser = UserSchema.extend({
  token: z.string().describe('the user token; shown once'),
})
const UserRecordSchema = UserSchema.extend({
  created_by: z.string(),
  created_at: z.string(),
  revoked: z.boolean(),
})
const UserList = z.strictObject({ users: z.array(UserRecordSchema) })
const UserRevoked = z.strictObject({ user_id: z.string(), revoked: z.literal(true) })
const AgentRevoked = z.strictObject({ agent_id: z.string(), revoked: z.literal(true) })
const UsageResponse = z.strictObject({
  site: z.string().nullable().describe('the site asked for, null for every site'),
  from: z.string(),
  to: z.string(),
  by: z.enum(USAGE_DIMENSIONS),
  step: z.number().int().describe('seconds per bucket'),
  k: z.number().int().describe('values seen on fewer hosts than this are summed as `other`'),
  buckets: z.array(
    z
      .object({
        ts: z.string(),
        site: z.string(),
        bytes: z.number(),
        packets: z.number(),
        flows: z.number(),
        hosts: z.number(),
      })
      .catchall(z.string())
      .describe('plus one property named after `by`, holding the value of that dimension'),
  ),
})
const Health = z.strictObject({ status: z.literal('ok') })
const Ready = z.strictObject({ status: z.literal('ready') })

/** True when A and B are the same type; a drifted route type makes a check below fail. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const answersMatchTheirTypes: [
  Same<z.output<typeof FleetAgentSchema>, FleetAgent>,
  Same<z.output<typeof IssuedEnrollTokenSchema>, IssuedEnrollToken>,
  Same<z.output<typeof UserSchema>, User>,
  Same<z.output<typeof UserRecordSchema>, UserRecord>,
] = [true, true, true, true]
void answersMatchTheirTypes

/** Schemas of what clients send, by component name. */
const REQUESTS: Record<string, z.ZodType> = {
  HostBatch,
  HostSample,
  SampleAttributes,
  HostInventory,
  EnrollRequest,
  EnrollTokenRequest,
  UserRequest,
}

/** Schemas of what the collector answers, by component name. */
const RESPONSES: Record<string, z.ZodType> = {
  IngestAck,
  ErrorBody,
  EnrollResponse,
  FleetAgent: FleetAgentSchema,
  FleetResponse,
  UsageResponse,
  IssuedEnrollToken: IssuedEnrollTokenSchema,
  CreatedUser,
  UserRecord: UserRecordSchema,
  UserList,
  UserRevoked,
  AgentRevoked,
  Health,
  Ready,
}

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

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const json = (name: string) => ({ 'application/json': { schema: ref(name) } })
const error = (description: string) => ({ description, content: json('ErrorBody') })

/** The errors every route can answer with, plus the ones of its own. */
const errors = (own: Record<string, string>) => ({
  ...Object.fromEntries(Object.entries(own).map(([status, text]) => [status, error(text)])),
  '500': error('the collector failed to handle the request (`internal_error`); see its log'),
})

const AUTH_ERRORS = {
  '401': 'no token, or an unknown, wrong or revoked one (`unauthenticated`)',
  '403': 'the token lacks the role (`forbidden`)',
}

const body = (name: string) => ({ required: true, content: json(name) })

const idParameter = (what: string) => ({
  name: 'id',
  in: 'path',
  required: true,
  description: `the ${what}'s id`,
  schema: { type: 'string' },
})

/** A strict query schema as OpenAPI query parameters (unknown parameters are a 400). */
function queryParameters(schema: z.ZodType) {
  const object = z.toJSONSchema(schema, { io: 'input' }) as {
    properties?: Record<string, JsonSchema>
    required?: string[]
  }
  return Object.entries(object.properties ?? {}).map(([name, property]) => ({
    name,
    in: 'query',
    required: object.required?.includes(name) ?? false,
    schema: property,
  }))
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
        'fleet view, administration, health and metrics. Every request body is validated ' +
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
      schemas: { ...components(REQUESTS, 'input'), ...components(RESPONSES, 'output') },
    },
    paths: {
      '/v1/agents/enroll': {
        post: {
          operationId: 'enrollAgent',
          summary: "Trade an enrollment token for an agent's credential",
          security: [{ enrollmentToken: [] }],
          requestBody: body('EnrollRequest'),
          responses: {
            '201': { description: 'enrolled', content: json('EnrollResponse') },
            ...errors({
              '400': 'the body is not JSON or does not match the schema',
              '401':
                'no token (`unauthenticated`), or a token unknown, expired, used up or revoked (`enrollment_refused`)',
            }),
          },
        },
      },
      '/v1/ingest': {
        post: {
          operationId: 'ingest',
          summary: 'One agent batch; acknowledged only once its rows are stored',
          description:
            'The body is a HostBatch, gzip-compressed (`Content-Encoding: gzip`) or plain. ' +
            'A retried batch, same `(agent_id, seq)`, is acknowledged as `duplicate` and not ' +
            'written again.',
          security: [{ agentCredential: [] }],
          parameters: [
            {
              name: 'Content-Encoding',
              in: 'header',
              required: false,
              schema: { type: 'string', enum: ['gzip', 'identity'] },
            },
          ],
          requestBody: body('HostBatch'),
          responses: {
            '200': {
              description: 'stored, or a duplicate of one stored',
              content: json('IngestAck'),
            },
            ...errors({
              '400':
                'malformed gzip or JSON, a host or site in the body, or a batch that does not match protocol v1',
              '401': AUTH_ERRORS['401'],
              '403': 'the batch names another agent (`wrong_agent`)',
              '413': 'the body exceeds the compressed or decompressed size cap (`body_too_large`)',
              '415': 'a Content-Encoding other than gzip (`unsupported_encoding`)',
            }),
            '503': {
              ...error('the store could not take the batch (`store_unavailable`); retry later'),
              headers: {
                'Retry-After': {
                  description: 'seconds to wait before sending again',
                  schema: { type: 'integer', minimum: 0 },
                },
              },
            },
          },
        },
      },
      '/v1/fleet': {
        get: {
          operationId: 'fleet',
          summary: 'Enrolled agents, versions, last seen, last sequence number (operator, admin)',
          security: [{ userToken: [] }],
          parameters: queryParameters(FleetQuery),
          responses: {
            '200': { description: 'the fleet', content: json('FleetResponse') },
            ...errors({ '400': 'an unknown or invalid query parameter', ...AUTH_ERRORS }),
          },
        },
      },
      '/v1/usage': {
        get: {
          operationId: 'usage',
          summary: 'Site usage (tier A) with the k threshold applied (operator, admin)',
          security: [{ userToken: [] }],
          parameters: queryParameters(UsageParams),
          responses: {
            '200': { description: 'usage buckets', content: json('UsageResponse') },
            ...errors({ '400': 'an unknown or invalid query parameter', ...AUTH_ERRORS }),
          },
        },
      },
      '/v1/admin/enroll-tokens': {
        post: {
          operationId: 'createEnrollToken',
          summary: 'Make a site-scoped enrollment token (admin)',
          security: [{ userToken: [] }],
          requestBody: body('EnrollTokenRequest'),
          responses: {
            '201': { description: 'the token, shown once', content: json('IssuedEnrollToken') },
            ...errors({ '400': 'the body does not match the schema', ...AUTH_ERRORS }),
          },
        },
      },
      '/v1/admin/users': {
        get: {
          operationId: 'listUsers',
          summary: 'Every user (admin)',
          security: [{ userToken: [] }],
          responses: {
            '200': { description: 'the users', content: json('UserList') },
            ...errors(AUTH_ERRORS),
          },
        },
        post: {
          operationId: 'createUser',
          summary: 'Make a user token with roles (admin)',
          security: [{ userToken: [] }],
          requestBody: body('UserRequest'),
          responses: {
            '201': {
              description: 'the user and its token, shown once',
              content: json('CreatedUser'),
            },
            ...errors({ '400': 'the body does not match the schema', ...AUTH_ERRORS }),
          },
        },
      },
      '/v1/admin/users/{id}/revoke': {
        post: {
          operationId: 'revokeUser',
          summary: 'Revoke a user token (admin)',
          security: [{ userToken: [] }],
          parameters: [idParameter('user')],
          responses: {
            '200': { description: 'revoked', content: json('UserRevoked') },
            ...errors({ ...AUTH_ERRORS, '404': 'no such user (`not_found`)' }),
          },
        },
      },
      '/v1/admin/agents/{id}/revoke': {
        post: {
          operationId: 'revokeAgent',
          summary: 'Revoke an agent: its next batch gets 401 (admin)',
          security: [{ userToken: [] }],
          parameters: [idParameter('agent')],
          responses: {
            '200': { description: 'revoked', content: json('AgentRevoked') },
            ...errors({ ...AUTH_ERRORS, '404': 'no such agent (`not_found`)' }),
          },
        },
      },
      '/healthz': {
        get: {
          operationId: 'healthz',
          summary: 'The process is up',
          security: [],
          responses: { '200': { description: 'up', content: json('Health') } },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readyz',
          summary: 'The store is reachable',
          security: [],
          responses: {
            '200': { description: 'ready', content: json('Ready') },
            ...errors({ '503': 'the store is not reachable (`store_unavailable`)' }),
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: "The collector's own metrics, Prometheus text format 0.0.4",
          security: [],
          responses: {
            '200': {
              description: 'tally_ingest_* and tally_http_requests_total',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/v1/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document',
          security: [],
          responses: {
            '200': {
              description: 'OpenAPI 3.1',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
          },
        },
      },
    },
  }
}

export type OpenApiDocument = ReturnType<typeof build>

let built: OpenApiDocument | undefined

/** The document, built once. */
export const openApiDocument = (): OpenApiDocument => {
  built ??= build()
  return built
}
