/**
 * The OpenAPI 3.1 document of the collector's public API, served on GET /v1/openapi.json.
 *
 * Request and wire schemas are the ones the routes validate with (protocol/v1.ts and the routes'
 * own), turned into JSON Schema 2020-12 by zod (`z.toJSONSchema`): requests as the input a client
 * may send (defaults make fields optional), answers as the output the collector writes. The
 * answers that have no zod schema elsewhere are described here, and checked at compile time to
 * be exactly the types the routes return.
 *
 * Investigations (bulletin sections 8 and 9): the case routes take the request schemas of
 * cases/model.ts; agents fetch their grants with the schema of protocol/grants.ts; the register
 * routes answer with the register's own types. The tier I routes (restricted ingest, drill-down,
 * exports, receipt) bring their part from restricted/openapi.ts.
 */
import { z } from 'zod'
import { AgentGrants, CATEGORIES } from '../protocol/grants.ts'
import {
  AgentGrantsPoll,
  EnrollRequest,
  EnrollResponse,
  ErrorBody,
  HostBatch,
  HostInventory,
  HostSample,
  IngestAck,
  PROTOCOL_VERSION,
  SampleAttributes,
  SeqConflict,
} from '../protocol/v1.ts'
import type { Proposal, ProposalAnswer } from './auth/administration.ts'
import type { IssuedEnrollToken } from './auth/enrollment.ts'
import { ROLES } from './auth/roles.ts'
import type { User, UserRecord } from './auth/users.ts'
import { capFor, type RouteKey } from './body-caps.ts'
import {
  Approval,
  CASE_KINDS,
  CASE_STATES,
  type Case,
  CaseRequest,
  Closing,
  Consultation,
  Denial,
  Designation,
  EmergencyConfirmation,
  EmergencyRequest,
  Extension,
  Notice,
  OiosOpening,
  TechnicalOpening,
} from './cases/model.ts'
import {
  type EntriesPage,
  MAX_PAGE,
  REGISTERS,
  type RegisterEntry,
  type SignedCheckpoint,
  type VerifyReport,
} from './register/register.ts'
import { RESTRICTED_REQUESTS, RESTRICTED_RESPONSES, restrictedPaths } from './restricted/openapi.ts'
import {
  EnrollTokenRequest,
  ProposalState as ProposalStateQuery,
  RoleProposalRequest,
  UserRequest,
} from './routes/admin.ts'
import { FleetQuery } from './routes/agents.ts'
import { CountersignRequest, REGISTER_READERS } from './routes/register.ts'
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
const ProposalAnswerSchema = z.strictObject({
  proposal_id: z.string().nullable().describe('null when the user exists at once (no proposal)'),
  user_id: z.string(),
  name: z.string(),
  roles: z.array(z.enum(ROLES)),
  state: z.enum(['proposed', 'active']),
  token_part: z
    .string()
    .optional()
    .describe("a new user's first token part, for the proposer to hand over; shown once"),
  token: z
    .string()
    .optional()
    .describe("the founder's one extra administrator: a provisional token, shown once"),
  provisional: z.boolean().optional(),
})
const ProposalSchema = z.strictObject({
  proposal_id: z.string(),
  side: z.enum(['itsd', 'oios']),
  user_id: z.string(),
  roles: z.array(z.enum(ROLES)),
  new_user: z.boolean(),
  proposed_by: z.string(),
  proposed_at: z.string(),
  state: z.enum(['proposed', 'confirmed', 'rejected']),
  decided_by: z.string(),
})
const ProposalDecided = ProposalSchema.extend({
  token_part: z
    .string()
    .optional()
    .describe("a new user's second token part, for the confirmer to hand over; shown once"),
})
const ProposalList = z.strictObject({ proposals: z.array(ProposalSchema) })
const UserRoles = z.strictObject({ user_id: z.string(), roles: z.array(z.enum(ROLES)) })
const ReplacedToken = z.strictObject({
  user_id: z.string(),
  token: z.string().describe('the new token, shown once; the previous one stops working'),
})
const UserRecordSchema = UserSchema.extend({
  side: z.enum(['itsd', 'oios']),
  created_by: z.string(),
  created_at: z.string(),
  revoked: z.boolean(),
  pending: z.boolean().describe('proposed, not yet confirmed: no token works'),
  provisional: z.boolean().describe('its token must be replaced before it does anything'),
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

// --- Investigations -----------------------------------------------------------------------------

const PersonSchema = z.strictObject({ name: z.string(), email: z.string().optional() })
const CaseSchema = z
  .strictObject({
    case_id: z.string(),
    kind: z.enum(CASE_KINDS),
    state: z.enum(CASE_STATES),
    created_at: z.string(),
    requester: z
      .string()
      .describe('who filed it (standard), opened it (technical, OIOS) or asked verbally'),
    recorded_by: z.string(),
    emergency: z.boolean(),
    written_request_due: z.string().optional(),
    written_request_at: z.string().optional(),
    description: z.string(),
    categories: z.array(z.enum(CATEGORIES)),
    staff_member: PersonSchema.optional(),
    supervisor: PersonSchema.optional(),
    receiving_official: z.string().optional(),
    requesting_office: z.string().optional(),
    justification: z.string().optional(),
    subjects: z.array(z.strictObject({ agent_id: z.string(), addresses: z.array(z.string()) })),
    window: z.strictObject({ start: z.string(), end: z.string() }),
    consultation: z
      .strictObject({ by: z.string(), at: z.string(), summary: z.string() })
      .optional(),
    emergency_confirmation: z
      .strictObject({ by: z.string(), at: z.string(), statement: z.string() })
      .optional(),
    approvals: z.array(
      z.strictObject({
        by: z.string(),
        at: z.string(),
        until: z.string(),
        comment: z.string().optional(),
        kind: z.enum(['approval', 'extension']),
      }),
    ),
    denial: z.strictObject({ by: z.string(), at: z.string(), reason: z.string() }).optional(),
    investigator: z.string().optional(),
    notice: z
      .strictObject({
        method: z.enum(['outbox', 'in_person']),
        by: z.string(),
        at: z.string(),
        to: z.array(z.string()),
        given_by: z.string().optional(),
        witness: z.string().optional(),
        message_ids: z.array(z.string()).optional(),
      })
      .optional(),
    closing: z.strictObject({ by: z.string(), at: z.string(), outcome: z.string() }).optional(),
    purged_at: z.string().optional(),
    notify: z.array(PersonSchema).optional(),
  })
  .describe('an investigation case as stored: every step it went through, and by whom')
const CaseList = z.strictObject({ cases: z.array(CaseSchema) })
const AccessGrant = z.strictObject({
  case_id: z.string(),
  token: z
    .string()
    .describe("the investigator's access grant (EdDSA JWS), presented with each drill-down"),
  window: z.strictObject({ start: z.string(), end: z.string() }),
  categories: z.array(z.enum(CATEGORIES)),
})
const Designations = z.strictObject({
  category: z.string(),
  designees: z.array(
    z.strictObject({ user_id: z.string(), position: z.enum(['designee', 'alternate']) }),
  ),
})

const RegisterEntrySchema = z.strictObject({
  register: z.enum(REGISTERS),
  seq: z.number().int(),
  ts: z.string(),
  kind: z.string(),
  actor: z.string(),
  case_id: z.string().optional(),
  details: z.record(z.string(), z.unknown()),
  prev_hash: z.string(),
  hash: z.string(),
  signature: z
    .string()
    .optional()
    .describe(
      "base64url Ed25519 signature by the register key over 'tally-register-entry:v1\\n' and the canonical entry without this field; absent on entries stored before migration 013",
    ),
})
const RegisterEntries = z.strictObject({
  entries: z.array(RegisterEntrySchema),
  next_from: z.number().int().nullable().describe('the `from` of the next page, null at the end'),
})
const CheckpointSchema = z.strictObject({
  register: z.enum(REGISTERS),
  size: z.number().int(),
  root: z.string().describe('RFC 6962 Merkle root, hex'),
  ts: z.string(),
  key_id: z.string().describe("RFC 7638 thumbprint of the register's public key"),
  signature: z
    .string()
    .describe('base64url Ed25519 signature over canonical {register, size, root, ts}'),
  countersignatures: z.array(
    z.strictObject({ by: z.string(), key: z.string(), signature: z.string(), ts: z.string() }),
  ),
})
const CheckpointList = z.strictObject({ checkpoints: z.array(CheckpointSchema) })
const VerifyReportSchema = z.strictObject({
  register: z.enum(REGISTERS),
  ok: z.boolean(),
  size: z.number().int(),
  root: z.string(),
  checked_checkpoints: z.number().int(),
  problems: z.array(
    z.strictObject({
      seq: z.number().int(),
      kind: z.enum([
        'changed',
        'removed',
        'inserted',
        'reordered',
        'checkpoint-mismatch',
        'bad-signature',
        'rolled-back',
        'inconsistent',
      ]),
      message: z.string(),
    }),
  ),
})
const ConsistencyProofSchema = z.strictObject({
  register: z.enum(REGISTERS),
  from: z.number().int(),
  to: z.number().int(),
  proof: z.array(z.string()).describe('RFC 6962 PROOF(from, to), hex SHA-256 hashes'),
})
const RegisterPublicKey = z
  .object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string(), kid: z.string() })
  .catchall(z.string())
  .describe("the register's Ed25519 public key as a JWK, for checking checkpoint signatures")

const Health = z.strictObject({ status: z.literal('ok') })
const Ready = z.strictObject({ status: z.literal('ready') })

/** True when A and B are the same type; a drifted route type makes a check below fail. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const answersMatchTheirTypes: [
  Same<z.output<typeof FleetAgentSchema>, FleetAgent>,
  Same<z.output<typeof IssuedEnrollTokenSchema>, IssuedEnrollToken>,
  Same<z.output<typeof UserSchema>, User>,
  Same<z.output<typeof UserRecordSchema>, UserRecord>,
  Same<z.output<typeof ProposalAnswerSchema>, ProposalAnswer>,
  Same<z.output<typeof ProposalSchema>, Proposal>,
  Same<z.output<typeof CaseSchema>, Case>,
  Same<Omit<z.output<typeof RegisterEntrySchema>, 'details'>, Omit<RegisterEntry, 'details'>>,
  Same<z.output<typeof RegisterEntries>['next_from'], EntriesPage['next_from']>,
  Same<z.output<typeof CheckpointSchema>, SignedCheckpoint>,
  Same<z.output<typeof VerifyReportSchema>, VerifyReport>,
] = [true, true, true, true, true, true, true, true, true, true, true]
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
  RoleProposalRequest,
  CaseRequest,
  EmergencyRequest,
  Consultation,
  EmergencyConfirmation,
  Approval,
  Denial,
  Notice,
  Extension,
  Closing,
  TechnicalOpening,
  OiosOpening,
  Designation,
  CountersignRequest,
  ...RESTRICTED_REQUESTS,
}

/** Schemas of what the collector answers, by component name. */
const RESPONSES: Record<string, z.ZodType> = {
  IngestAck,
  ErrorBody,
  SeqConflict,
  EnrollResponse,
  FleetAgent: FleetAgentSchema,
  FleetResponse,
  UsageResponse,
  IssuedEnrollToken: IssuedEnrollTokenSchema,
  ProposalAnswer: ProposalAnswerSchema,
  Proposal: ProposalSchema,
  ProposalDecided,
  ProposalList,
  UserRoles,
  ReplacedToken,
  UserRecord: UserRecordSchema,
  UserList,
  UserRevoked,
  AgentRevoked,
  Case: CaseSchema,
  CaseList,
  AccessGrant,
  Designations,
  AgentGrants,
  RegisterEntry: RegisterEntrySchema,
  RegisterEntries,
  Checkpoint: CheckpointSchema,
  CheckpointList,
  VerifyReport: VerifyReportSchema,
  ConsistencyProof: ConsistencyProofSchema,
  AgentGrantsPoll,
  RegisterPublicKey,
  ...RESTRICTED_RESPONSES,
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

/** The refusals of role administration (collector/auth/administration.ts), beside 500. */
const ADMIN_ERRORS = {
  ...AUTH_ERRORS,
  '403':
    "not an administrator of the role's side (`forbidden`), a provisional token " +
    '(`token_provisional`), or a proposal confirmed by its own proposer (`second_person_required`)',
  '404': 'no such user, role or proposal on this side (`not_found`)',
  '409': 'already held, revoked or decided (`conflict`)',
  '422': 'one person would hold conflicting roles (`conflicting_roles`)',
  '503': 'the register could not be written, so nothing was done',
}

/** The errors of a case step (collector/cases/workflow.ts), beside 500. */
const CASE_ERRORS = {
  '400':
    'the body is not JSON or does not match the schema (`malformed_json`, `invalid_request`), ' +
    'or a rule on its values refused it (`invalid_window`, `window_too_long`, `unknown_user`, ' +
    '`wrong_role`)',
  '401': AUTH_ERRORS['401'],
  '403':
    "the step is not this user's to take: their roles, or separation of duties (requester, " +
    'approver and investigator are three different people) (`forbidden`)',
  '404':
    'no such case, or one this user may not see (`not_found`); OIOS cases do not exist for ITSD roles',
  '409':
    'the case is not in a state that takes this step (`wrong_state`), or no outbox channel is ' +
    'configured for the notice (`no_outbox`)',
  '503': 'the register could not be written, so nothing was done (`register_unavailable`)',
}

/** POST /v1/cases/{id}/<step>: one step of a case's workflow, answered with the case after it. */
const caseStep = (operationId: string, summary: string, request: string, description: string) => ({
  post: {
    operationId,
    summary,
    description,
    security: [{ userToken: [] }],
    parameters: [idParameter('case')],
    requestBody: body(request),
    responses: {
      '200': { description: 'the case after the step', content: json('Case') },
      ...errors(CASE_ERRORS),
    },
  },
})

const { '404': _notFound, ...withoutNotFound } = CASE_ERRORS

/** POST /v1/cases/<kind>: opens a case, answered with it. */
const caseOpening = (
  operationId: string,
  summary: string,
  request: string,
  description: string,
) => ({
  post: {
    operationId,
    summary,
    description,
    security: [{ userToken: [] }],
    requestBody: body(request),
    responses: {
      '201': { description: 'the case', content: json('Case') },
      ...errors(withoutNotFound),
    },
  },
})

const registerParameter = {
  name: 'register',
  in: 'path',
  required: true,
  description:
    `\`itsd\`, ITSD's special register (8.5d), read by ${REGISTER_READERS.itsd.join(', ')}; ` +
    `\`oios\`, OIOS's own record (9.2d), read by ${REGISTER_READERS.oios.join(', ')} only`,
  schema: { type: 'string', enum: [...REGISTERS] },
}

/** The errors of a register route, beside 500. */
const REGISTER_ERRORS = {
  '401': AUTH_ERRORS['401'],
  '403': '`itsd` to a user who is not one of its readers (`forbidden`)',
  '404':
    'no such register, or `oios` to anyone outside OIOS, ITSD roles and admin included: its ' +
    'existence is not disclosed (`not_found`)',
}

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
            '201': {
              description:
                'enrolled; or, for a token already used with the same `instance` secret (and ' +
                'still known, unrevoked and unexpired), the same enrollment again with a new ' +
                'credential that replaces the previous one, spending no further use',
              content: json('EnrollResponse'),
            },
            ...errors({
              '400': 'the body is not JSON or does not match the schema',
              '401':
                'no token (`unauthenticated`), or a token unknown, expired, used up (without the `instance` it was used with) or revoked, or the agent it enrolled was revoked (`enrollment_refused`)',
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
            'A retried batch, same `(agent_id, seq)` and same content, is acknowledged as ' +
            '`duplicate` and not written again. A stored `(agent_id, seq)` with other content is ' +
            '409 `seq_conflict`. The interval must be plausible by the collector clock ' +
            '(`ingest.max_batch_age_hours`, `ingest.max_clock_skew_seconds`, ' +
            '`ingest.max_interval_seconds`), else 422 `implausible_time`.',
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
              '422':
                'the interval ends at or before its start, spans more than ' +
                '`ingest.max_interval_seconds`, starts more than `ingest.max_batch_age_hours` ' +
                'ago or ends more than `ingest.max_clock_skew_seconds` ahead of the collector ' +
                'clock (`implausible_time`); the message says which. Sending it again cannot succeed',
            }),
            '409': {
              description:
                'the seq is stored for this agent with other content: its numbering went ' +
                'backwards (`seq_conflict`). Nothing was written; `last_seq` is the highest seq ' +
                'stored for the agent: number unacknowledged batches from `last_seq + 1`',
              content: json('SeqConflict'),
            },
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
          summary: "The users of the caller's side (admin: ITSD; oios_chief: OIOS)",
          security: [{ userToken: [] }],
          responses: {
            '200': { description: 'the users', content: json('UserList') },
            ...errors(AUTH_ERRORS),
          },
        },
        post: {
          operationId: 'proposeUser',
          summary:
            "Propose a user with roles of the caller's side; another administrator confirms (admin, oios_chief)",
          security: [{ userToken: [] }],
          requestBody: body('UserRequest'),
          responses: {
            '201': {
              description: 'the proposal and the first token part, shown once',
              content: json('ProposalAnswer'),
            },
            ...errors({ ...ADMIN_ERRORS, '400': 'the body does not match the schema' }),
          },
        },
      },
      '/v1/admin/users/{id}/roles': {
        post: {
          operationId: 'proposeRoles',
          summary:
            'Propose more roles for a user; another administrator confirms (admin, oios_chief)',
          security: [{ userToken: [] }],
          parameters: [idParameter('user')],
          requestBody: body('RoleProposalRequest'),
          responses: {
            '201': { description: 'the proposal', content: json('ProposalAnswer') },
            ...errors({ ...ADMIN_ERRORS, '400': 'the body does not match the schema' }),
          },
        },
      },
      '/v1/admin/users/{id}/roles/{role}/revoke': {
        post: {
          operationId: 'revokeRole',
          summary: 'Take a role away at once (admin, oios_chief: their side only)',
          security: [{ userToken: [] }],
          parameters: [
            idParameter('user'),
            {
              name: 'role',
              in: 'path',
              required: true,
              description: 'the role',
              schema: { type: 'string', enum: [...ROLES] },
            },
          ],
          responses: {
            '200': { description: 'the roles left', content: json('UserRoles') },
            ...errors(ADMIN_ERRORS),
          },
        },
      },
      '/v1/admin/users/{id}/revoke': {
        post: {
          operationId: 'revokeUser',
          summary: 'Revoke a user token (admin, oios_chief: their side only)',
          security: [{ userToken: [] }],
          parameters: [idParameter('user')],
          responses: {
            '200': { description: 'revoked', content: json('UserRevoked') },
            ...errors({ ...AUTH_ERRORS, '404': 'no such user (`not_found`)' }),
          },
        },
      },
      '/v1/admin/proposals': {
        get: {
          operationId: 'listProposals',
          summary: "The proposals of the caller's side (admin, oios_chief)",
          security: [{ userToken: [] }],
          parameters: queryParameters(ProposalStateQuery),
          responses: {
            '200': { description: 'the proposals', content: json('ProposalList') },
            ...errors({ ...AUTH_ERRORS, '400': 'an unknown or invalid query parameter' }),
          },
        },
      },
      '/v1/admin/proposals/{id}/confirm': {
        post: {
          operationId: 'confirmProposal',
          summary:
            'Confirm a proposal: another administrator of its side than the proposer (admin, oios_chief)',
          security: [{ userToken: [] }],
          parameters: [idParameter('proposal')],
          responses: {
            '200': {
              description: "confirmed; a new user's second token part, shown once",
              content: json('ProposalDecided'),
            },
            ...errors(ADMIN_ERRORS),
          },
        },
      },
      '/v1/admin/proposals/{id}/reject': {
        post: {
          operationId: 'rejectProposal',
          summary: 'Reject a proposal (admin, oios_chief)',
          security: [{ userToken: [] }],
          parameters: [idParameter('proposal')],
          responses: {
            '200': { description: 'rejected', content: json('Proposal') },
            ...errors(ADMIN_ERRORS),
          },
        },
      },
      '/v1/users/me/token': {
        post: {
          operationId: 'replaceOwnToken',
          summary:
            "Replace the caller's own token (any user; the only thing a provisional token may do)",
          security: [{ userToken: [] }],
          responses: {
            '201': { description: 'the new token, shown once', content: json('ReplacedToken') },
            ...errors({ '401': AUTH_ERRORS['401'] }),
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
      '/v1/cases': {
        get: {
          operationId: 'listCases',
          summary: 'The cases this user may see',
          description:
            'Approvers, auditors and admins see ITSD cases (standard and technical); the OIOS ' +
            'Chief of Investigations also sees standard cases; an ITSD lead, technical cases; ' +
            'anyone else, the cases they requested, investigate or receive. OIOS cases are listed ' +
            'to OIOS investigators, the OIOS Chief, and ITSD designees whose 9.2e designations ' +
            'cover every category of the case.',
          security: [{ userToken: [] }],
          responses: {
            '200': {
              description: 'the cases, most recently changed first',
              content: json('CaseList'),
            },
            ...errors({ '401': AUTH_ERRORS['401'] }),
          },
        },
        post: caseOpening(
          'fileCase',
          'File a written investigation request (requester; bulletin 8.4a)',
          'CaseRequest',
          'The request names the data required, the staff member and their supervisor, the ' +
            'official who receives the records, the subjects (agents) and the window. The case ' +
            'starts `requested`: nothing may be captured or read before approval.',
        ).post,
      },
      '/v1/cases/emergency': caseOpening(
        'recordEmergency',
        'Record a verbal request in an emergency (approver; 8.4b)',
        'EmergencyRequest',
        'The written request must follow (POST /v1/cases/{id}/written-request) within ' +
          '`cases.emergency_written_hours`, or the case is suspended and its grants revoked. ' +
          'An emergency case may be approved without the OIOS consultation (8.4d).',
      ),
      '/v1/cases/technical': caseOpening(
        'openTechnicalCase',
        'Open a technical case on a disruption (ITSD lead; 8.2)',
        'TechnicalOpening',
        'Active at once with no approval: flow records only, for at most ' +
          '`cases.technical_max_hours` (72 h at most); the people in `notify` are told through ' +
          'the outbox and the opening is registered.',
      ),
      '/v1/cases/oios': caseOpening(
        'openOiosCase',
        'Open an OIOS investigation (OIOS investigator; section 9)',
        'OiosOpening',
        'Active at once: no approval, no notice to the staff member (9.2b). Its record is ' +
          "OIOS's register alone; ITSD's register holds nothing of it and ITSD roles cannot see it.",
      ),
      '/v1/cases/{id}': {
        get: {
          operationId: 'getCase',
          summary: 'One case, if this user may see it',
          description:
            'Reading a case applies time to it: an ended window makes it `expired`, an overdue ' +
            'written request after an emergency makes it `suspended`; both revoke its grants.',
          security: [{ userToken: [] }],
          parameters: [idParameter('case')],
          responses: {
            '200': { description: 'the case', content: json('Case') },
            ...errors({
              '401': AUTH_ERRORS['401'],
              '404': CASE_ERRORS['404'],
              '503': CASE_ERRORS['503'],
            }),
          },
        },
      },
      '/v1/cases/{id}/written-request': caseStep(
        'fileWrittenRequest',
        'The written request after a verbal one (the verbal requester; 8.4b)',
        'CaseRequest',
        'Only for an emergency case that is still requested, approved or active; it keeps the ' +
          'case from being suspended.',
      ),
      '/v1/cases/{id}/consultation': caseStep(
        'recordConsultation',
        'Record the OIOS consultation (OIOS Chief of Investigations; 8.4d)',
        'Consultation',
        'A standard case in state `requested`. Approval is refused until it is on record, ' +
          'unless the case is an emergency.',
      ),
      '/v1/cases/{id}/emergency-confirmation': caseStep(
        'confirmEmergency',
        'Confirm an emergency (another approver or the OIOS Chief; 8.4b)',
        'EmergencyConfirmation',
        'An emergency case in state `requested`, confirmed once, by someone who neither ' +
          'recorded it nor asked for it. Approval is refused until it is on record, and its ' +
          'approver is neither the recorder nor the confirmer.',
      ),
      '/v1/cases/{id}/approval': caseStep(
        'approveCase',
        'Approve a request and name the investigator (approver; 8.4c)',
        'Approval',
        'The approver is neither the requester nor the investigator (nor, in an emergency, ' +
          'its recorder or confirmer); the investigator holds the itsd_investigator role. The ' +
          'approved window lies inside the requested one: `until` may end it earlier, never ' +
          'later (400 `invalid_window`). A written request needs the OIOS consultation on record, ' +
          'an emergency its confirmation. The case becomes `approved`; grants follow the notice.',
      ),
      '/v1/cases/{id}/denial': caseStep(
        'denyCase',
        'Deny a request (approver)',
        'Denial',
        'A case in state `requested`, by an approver who is not its requester.',
      ),
      '/v1/cases/{id}/notice': caseStep(
        'recordNotice',
        'Inform the staff member and supervisor before access (an approver, not the investigator; 8.5a)',
        'Notice',
        'Recorded by an approver who is neither the requester nor the investigator. `outbox`: ' +
          'sent by webhook or mail and on record only once delivered; `in_person`: who gave it, ' +
          'a witness other than them, when (not in the future, not before the approval: 400 ' +
          '`invalid_notice`), to whom. The case becomes `active` and the grants are issued: one ' +
          "per subject agent, and the investigator's access grant.",
      ),
      '/v1/cases/{id}/extension': caseStep(
        'extendCase',
        'Extend an active case: a new approval (approver; 8.5f)',
        'Extension',
        'The new end is later than the current one and at most `cases.max_grant_days` from ' +
          'now; the grants are revoked and issued again for the longer window.',
      ),
      '/v1/cases/{id}/closing': caseStep(
        'closeCase',
        'Close a case (approver, requester or investigator; 8.5f)',
        'Closing',
        'The staff member is informed through the outbox (standard cases, when one is ' +
          'configured); the grants are revoked at once and tier I data is purged.',
      ),
      '/v1/cases/{id}/access-grant': {
        get: {
          operationId: 'getAccessGrant',
          summary: "The investigator's access grant for an active case (the investigator only)",
          security: [{ userToken: [] }],
          parameters: [idParameter('case')],
          responses: {
            '200': { description: 'the access grant', content: json('AccessGrant') },
            ...errors({
              '401': AUTH_ERRORS['401'],
              '403': "the user is not the case's investigator (`forbidden`)",
              '404': CASE_ERRORS['404'],
              '409': 'the case is not active, or no access grant is in force (`wrong_state`)',
              '503': CASE_ERRORS['503'],
            }),
          },
        },
      },
      '/v1/oios/designations': {
        post: {
          operationId: 'designateForOios',
          summary: 'Designate an ITSD officer to assist OIOS (admin; 9.2e)',
          description:
            'One designee and at most two alternates per resource category; the designated ' +
            'user holds the oios_designee role.',
          security: [{ userToken: [] }],
          requestBody: body('Designation'),
          responses: {
            '201': {
              description: "the category's designees after this one",
              content: json('Designations'),
            },
            ...errors({
              '400': CASE_ERRORS['400'],
              ...AUTH_ERRORS,
              '409':
                'the category already has its designee or two alternates (`designation_limit`), ' +
                'or the user is already designated for it (`already_designated`)',
              '503': CASE_ERRORS['503'],
            }),
          },
        },
      },
      '/v1/agents/grants': {
        get: {
          operationId: 'agentGrants',
          summary: 'The grants this agent must run now; anything not listed must stop',
          description:
            'Signed capture grants (EdDSA JWS, verified with the key pinned at enrollment) of ' +
            'active cases naming this agent. A closed, expired or suspended case drops out at once.',
          security: [{ agentCredential: [] }],
          parameters: [
            {
              name: 'register_size',
              in: 'query',
              required: false,
              description:
                'the size of the ITSD register head the agent kept (0: none). With it the answer ' +
                'also carries `register`: the latest signed head, the RFC 6962 proof from that ' +
                'size, and the register key; without it (older agents), the grants alone',
              schema: { type: 'integer', minimum: 0 },
            },
          ],
          responses: {
            '200': {
              description: 'the grants (and with register_size, the register head)',
              content: json('AgentGrantsPoll'),
            },
            ...errors({
              '400': 'register_size is not an integer >= 0 (`invalid_request`)',
              '401': 'no credential, or an unknown, wrong or revoked one (`unauthenticated`)',
            }),
          },
        },
      },
      '/v1/register/public-key': {
        get: {
          operationId: 'registerPublicKey',
          summary: "The register's checkpoint-signing public key (register readers)",
          security: [{ userToken: [] }],
          responses: {
            '200': { description: 'the public key', content: json('RegisterPublicKey') },
            ...errors(AUTH_ERRORS),
          },
        },
      },
      '/v1/register/{register}/entries': {
        get: {
          operationId: 'registerEntries',
          summary: 'A page of register entries, in order (register readers)',
          description: 'Reading the register is not itself registered.',
          security: [{ userToken: [] }],
          parameters: [
            registerParameter,
            {
              name: 'from',
              in: 'query',
              required: false,
              description: 'the first seq to return',
              schema: { type: 'integer', minimum: 1 },
            },
            {
              name: 'limit',
              in: 'query',
              required: false,
              schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE },
            },
            {
              name: 'case_id',
              in: 'query',
              required: false,
              description: "only this case's entries",
              schema: { type: 'string', minLength: 1, maxLength: 200 },
            },
          ],
          responses: {
            '200': { description: 'the entries', content: json('RegisterEntries') },
            ...errors({ '400': 'an unknown or invalid query parameter', ...REGISTER_ERRORS }),
          },
        },
      },
      '/v1/register/{register}/checkpoints': {
        get: {
          operationId: 'registerCheckpoints',
          summary: 'The signed checkpoints (tree heads) of a register (register readers)',
          security: [{ userToken: [] }],
          parameters: [registerParameter],
          responses: {
            '200': { description: 'the checkpoints', content: json('CheckpointList') },
            ...errors(REGISTER_ERRORS),
          },
        },
        post: {
          operationId: 'signCheckpoint',
          summary: 'Sign a checkpoint at the current size (register readers)',
          description: 'Refused when the stored chain does not verify.',
          security: [{ userToken: [] }],
          parameters: [registerParameter],
          responses: {
            '201': {
              description: 'the checkpoint (the existing one if the size has one)',
              content: json('Checkpoint'),
            },
            ...errors({
              ...REGISTER_ERRORS,
              '409': 'the register does not verify (`register_does_not_verify`)',
              '503': 'the store could not be written (`register_unavailable`); retry later',
            }),
          },
        },
      },
      '/v1/register/{register}/checkpoints/{size}/countersign': {
        post: {
          operationId: 'countersignCheckpoint',
          summary: 'Add a countersignature to a checkpoint (register readers)',
          description:
            "The signature is the countersigner's Ed25519 signature over the checkpoint's " +
            'canonical {register, size, root, ts}, checked with the public key given.',
          security: [{ userToken: [] }],
          parameters: [
            registerParameter,
            {
              name: 'size',
              in: 'path',
              required: true,
              description: "the checkpoint's size",
              schema: { type: 'integer', minimum: 0 },
            },
          ],
          requestBody: body('CountersignRequest'),
          responses: {
            '200': { description: 'the countersigned checkpoint', content: json('Checkpoint') },
            ...errors({
              '400':
                'the body does not match the schema, the size is not an integer, or the ' +
                'signature does not verify (`bad_countersignature`)',
              ...REGISTER_ERRORS,
              '404': `${REGISTER_ERRORS['404']}; or no checkpoint of that size`,
              '503': 'the store could not be written (`register_unavailable`); retry later',
            }),
          },
        },
      },
      '/v1/register/{register}/consistency': {
        get: {
          operationId: 'registerConsistency',
          summary:
            'RFC 6962 consistency proof between two tree sizes, from the stored entries (register readers)',
          description:
            'For a verifier that kept the head at `from`: the proof that the tree of size `to` ' +
            '(default: the latest signed head) extends it. The verifier checks it against both ' +
            'signed roots itself.',
          security: [{ userToken: [] }],
          parameters: [
            registerParameter,
            {
              name: 'from',
              in: 'query',
              required: true,
              description: 'the size of the kept head',
              schema: { type: 'integer', minimum: 0 },
            },
            {
              name: 'to',
              in: 'query',
              required: false,
              description: 'the size of the newer head (default: the latest signed one)',
              schema: { type: 'integer', minimum: 0 },
            },
          ],
          responses: {
            '200': { description: 'the proof', content: json('ConsistencyProof') },
            ...errors({
              '400': 'from missing, or from/to not sizes, or to below from (`invalid_request`)',
              ...REGISTER_ERRORS,
              '409':
                'a size beyond the register (`beyond_head`: cut below what the verifier kept), ' +
                'or the stored chain does not verify (`register_does_not_verify`)',
              '503': 'the store could not be read (`register_unavailable`); retry later',
            }),
          },
        },
      },
      '/v1/register/{register}/verify': {
        get: {
          operationId: 'verifyRegister',
          summary:
            'Recompute the hash chain, the Merkle tree and every checkpoint (register readers)',
          security: [{ userToken: [] }],
          parameters: [registerParameter],
          responses: {
            '200': {
              description: 'the report; `ok` is false with the problems named',
              content: json('VerifyReport'),
            },
            ...errors(REGISTER_ERRORS),
          },
        },
      },
      ...restrictedPaths(),
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
          summary: 'The store is reachable and takes writes',
          description:
            'A tiny write, at most every few seconds, decides: a full or read-only store still ' +
            'answers reads. A store failure seen by any request also counts until a write succeeds.',
          security: [],
          responses: {
            '200': { description: 'ready', content: json('Ready') },
            ...errors({}),
            '503': {
              ...error(
                'the store is not reachable (`store_unavailable`) or does not take writes ' +
                  '(`store_not_writable`)',
              ),
              headers: {
                'Retry-After': {
                  description: 'seconds to wait before asking again',
                  schema: { type: 'integer', minimum: 0 },
                },
              },
            },
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
