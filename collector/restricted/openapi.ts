/**
 * The tier I routes' part of the OpenAPI document (collector/openapi.ts merges it): request and
 * answer schemas by component name, and the path items. Answers are checked at compile time to be
 * the types the routes write.
 */
import { z } from 'zod'
import {
  CATEGORIES,
  DnsRecord,
  FlowRecord,
  PcapSegment,
  RestrictedBatch,
  WebRecord,
} from '../../protocol/grants.ts'
import { MAX_LIMIT } from './drilldown.ts'
import { type Manifest, Receipt } from './export.ts'
import type { BatchCounts } from './ingest.ts'

const Counts = z.strictObject({
  flows: z.number().int(),
  dns: z.number().int(),
  web: z.number().int(),
  pcap: z.number().int(),
})

export const RestrictedIngestAck = z.strictObject({
  agent_id: z.string(),
  grant_id: z.string(),
  seq: z.number().int(),
  status: z.enum(['stored', 'duplicate']),
  counts: Counts,
})
export type RestrictedIngestAck = z.output<typeof RestrictedIngestAck>

const drillAnswer = (category: string, row: z.ZodType) =>
  z
    .strictObject({
      case_id: z.string(),
      category: z.literal(category),
      grant_id: z.string().describe('the access grant the answer was given under'),
      count: z.number().int(),
      truncated: z.boolean().describe('more records are in scope than `limit`'),
      rows: z.array(row),
    })
    .describe(`${category} records inside the access grant's scope, narrowed by the query`)

const withAgent = { agent_id: z.string().describe('the agent that captured the record') }
export const FlowRows = drillAnswer('flows', FlowRecord.extend(withAgent))
export const DnsRows = drillAnswer('dns', DnsRecord.extend(withAgent))
export const WebRows = drillAnswer('web', WebRecord.extend(withAgent))

export const ExportManifest = z
  .strictObject({
    case_id: z.string(),
    export_id: z.string(),
    created_at: z.string(),
    created_by: z.string(),
    grant_id: z.string(),
    files: z.array(
      z.strictObject({
        name: z.string(),
        bytes: z.number().int(),
        sha256: z.string().describe('hex SHA-256 of the file as served'),
      }),
    ),
  })
  .describe('manifest.json of an export bundle')
export const ExportCreated = z.strictObject({
  export_id: z.string(),
  manifest: ExportManifest,
  manifest_sha256: z.string().describe('hex SHA-256 of manifest.json as served'),
})
export const ReceiptSigned = z.strictObject({
  case_id: z.string(),
  export_id: z.string(),
  receipt: z.literal('signed'),
  purged: z.literal(true),
})
export type ReceiptSigned = z.output<typeof ReceiptSigned>

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const answersMatchTheirTypes: [
  Same<z.output<typeof ExportManifest>, Manifest>,
  Same<z.output<typeof Counts>, BatchCounts>,
] = [true, true]
void answersMatchTheirTypes

export const RESTRICTED_REQUESTS: Record<string, z.ZodType> = {
  RestrictedBatch,
  FlowRecord,
  DnsRecord,
  WebRecord,
  PcapSegment,
  Receipt,
}

export const RESTRICTED_RESPONSES: Record<string, z.ZodType> = {
  RestrictedIngestAck,
  FlowRows,
  DnsRows,
  WebRows,
  ExportManifest,
  ExportCreated,
  ReceiptSigned,
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const json = (name: string) => ({ 'application/json': { schema: ref(name) } })
const errors = (own: Record<string, string>) => ({
  ...Object.fromEntries(
    Object.entries(own).map(([status, description]) => [
      status,
      { description, content: json('ErrorBody') },
    ]),
  ),
  '500': {
    description: 'the collector failed to handle the request (`internal_error`); see its log',
    content: json('ErrorBody'),
  },
})
const path = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: { type: 'string' },
})
const grantHeader = {
  name: 'X-Tally-Grant',
  in: 'header',
  required: true,
  description: "the investigator's access grant for the case (GET /v1/cases/{id}/access-grant)",
  schema: { type: 'string' },
}
const REGISTER_DOWN =
  'the register could not be written, so nothing was done (`register_unavailable`)'
const ACCESS_ERRORS = {
  '401':
    'no user token or access grant, or one that is unknown, forged, expired or not an access ' +
    'grant (`unauthenticated`, `grant_required`, `grant_invalid`, `grant_expired`)',
  '403':
    'the token lacks the role; the grant is another person’s (`not_your_grant`), for another ' +
    'case (`wrong_case`) or revoked (`grant_revoked`); the case is not active ' +
    '(`case_not_active`)',
  '503': REGISTER_DOWN,
}
const TIME = { type: 'string', description: 'ISO 8601 with an offset, or epoch milliseconds' }
const narrowing = (category: 'flows' | 'dns' | 'web') => [
  { name: 'from', in: 'query', required: false, schema: TIME },
  { name: 'to', in: 'query', required: false, schema: TIME },
  { name: 'agent_id', in: 'query', required: false, schema: { type: 'string' } },
  {
    name: 'address',
    in: 'query',
    required: false,
    description: "one of the subject's addresses in the grant",
    schema: { type: 'string' },
  },
  ...(category === 'dns'
    ? []
    : [
        {
          name: 'port',
          in: 'query',
          required: false,
          schema: { type: 'integer', minimum: 0, maximum: 65535 },
        },
      ]),
  ...(category === 'flows'
    ? [
        {
          name: 'protocol',
          in: 'query',
          required: false,
          description: 'an IP protocol number, or tcp, udp, icmp, icmpv6',
          schema: { type: 'string' },
        },
      ]
    : []),
  {
    name: 'limit',
    in: 'query',
    required: false,
    schema: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: 1000 },
  },
]

const drillPath = (category: 'flows' | 'dns' | 'web', answer: string) => ({
  get: {
    operationId: `drill${category[0]?.toUpperCase()}${category.slice(1)}`,
    summary: `The subject's ${category} records, inside the access grant's scope`,
    description:
      'The query is built from the access grant alone (case, subjects, window); the parameters ' +
      'may only narrow it. Registered, with the SHA-256 of the answer, before it is answered.',
    security: [{ userToken: [] }],
    parameters: [path('id', "the case's id"), grantHeader, ...narrowing(category)],
    responses: {
      '200': { description: 'the records', content: json(answer) },
      ...errors({
        '400': 'an unknown, repeated or malformed parameter (`invalid_param`)',
        ...ACCESS_ERRORS,
        '403': `${ACCESS_ERRORS['403']}; or a parameter that would widen the grant: a time outside its window, an agent or address it does not name, a category it does not grant (\`outside_scope\`)`,
      }),
    },
  },
})

const exportPath = (suffix: string) => `/v1/cases/{id}/exports/{export_id}${suffix}`
const readerDescription =
  "The case's receiving official with their own token, or its investigator with the access " +
  'grant. Every download is registered first.'

/** The path items of the tier I routes. */
export function restrictedPaths(): Record<string, unknown> {
  return {
    '/v1/restricted/ingest': {
      post: {
        operationId: 'restrictedIngest',
        summary:
          'Tier I records of one interval under one capture grant (categories: ' +
          `${CATEGORIES.join(', ')})`,
        description:
          'Taken only when the grant is on record, not revoked, issued to this agent, its case ' +
          'is active, it grants every category present and every record lies inside its ' +
          'window; otherwise refused as a whole and registered. gzip or plain. A retry, same ' +
          '`(agent_id, grant_id, seq)`, is acknowledged as `duplicate`.',
        security: [{ agentCredential: [] }],
        requestBody: { required: true, content: json('RestrictedBatch') },
        responses: {
          '200': { description: 'stored, or a duplicate', content: json('RestrictedIngestAck') },
          ...errors({
            '400':
              'malformed gzip or JSON, a batch that does not match the schema, a bad pcap ' +
              'segment (`invalid_batch`, `invalid_pcap`)',
            '401': 'no credential, or an unknown, wrong or revoked one (`unauthenticated`)',
            '403':
              '`wrong_agent`, `grant_unknown`, `grant_revoked`, `not_your_grant`, ' +
              '`case_not_active`, `category_not_granted`, `outside_window`',
            '413': 'the body exceeds the compressed or decompressed size cap (`body_too_large`)',
            '415': 'a Content-Encoding other than gzip (`unsupported_encoding`)',
            '503': `${REGISTER_DOWN}, or the store could not take the batch (\`store_unavailable\`); retry later`,
          }),
        },
      },
    },
    '/v1/cases/{id}/flows': drillPath('flows', 'FlowRows'),
    '/v1/cases/{id}/dns': drillPath('dns', 'DnsRows'),
    '/v1/cases/{id}/web': drillPath('web', 'WebRows'),
    '/v1/cases/{id}/exports': {
      post: {
        operationId: 'createExport',
        summary: 'Builds an export bundle of the granted categories, with a manifest of digests',
        description:
          'flows.json/.csv, dns.json/.csv, web.json/.csv and packets.pcap, as granted. The body ' +
          'is empty or `{}`. Registered (`export_created`) with the manifest digests.',
        security: [{ userToken: [] }],
        parameters: [path('id', "the case's id"), grantHeader],
        responses: {
          '201': { description: 'the bundle', content: json('ExportCreated') },
          ...errors({
            '400': 'a body other than `{}`',
            ...ACCESS_ERRORS,
            '413': 'more records in scope than one bundle holds (`export_too_large`)',
          }),
        },
      },
    },
    [exportPath('/manifest')]: {
      get: {
        operationId: 'exportManifest',
        summary: "An export bundle's manifest.json",
        description: readerDescription,
        security: [{ userToken: [] }],
        parameters: [
          path('id', "the case's id"),
          path('export_id', 'the export'),
          { ...grantHeader, required: false },
        ],
        responses: {
          '200': { description: 'manifest.json, byte for byte', content: json('ExportManifest') },
          ...errors({ ...ACCESS_ERRORS, '404': 'no such export (`no_such_export`)' }),
        },
      },
    },
    [exportPath('/files/{name}')]: {
      get: {
        operationId: 'exportFile',
        summary: 'One file of an export bundle',
        description: readerDescription,
        security: [{ userToken: [] }],
        parameters: [
          path('id', "the case's id"),
          path('export_id', 'the export'),
          path('name', 'the file name, as in the manifest'),
          { ...grantHeader, required: false },
        ],
        responses: {
          '200': {
            description: 'the file, byte for byte as its digest in the manifest',
            content: {
              'application/json': { schema: {} },
              'text/csv': { schema: { type: 'string' } },
              'application/vnd.tcpdump.pcap': { schema: { type: 'string', format: 'binary' } },
            },
          },
          ...errors({ ...ACCESS_ERRORS, '404': 'no such export or file (`no_such_export`)' }),
        },
      },
    },
    [exportPath('/receipt')]: {
      post: {
        operationId: 'signReceipt',
        summary:
          "The receiving official's receipt (8.5c); then the case's tier I data is purged (8.5e)",
        description:
          "By the case's receiving official only, with their own token. Every file of the " +
          'manifest must be listed with its digest, and the manifest’s digest must match.',
        security: [{ userToken: [] }],
        parameters: [path('id', "the case's id"), path('export_id', 'the export')],
        requestBody: { required: true, content: json('Receipt') },
        responses: {
          '200': { description: 'signed and purged', content: json('ReceiptSigned') },
          ...errors({
            '400':
              'a body that does not match the schema, or digests that do not match the bundle ' +
              '(`digest_mismatch`)',
            '401': 'no token, or an unknown, wrong or revoked one (`unauthenticated`)',
            '403': "not the case's receiving official (`forbidden`)",
            '404': 'no such export (`no_such_export`)',
            '503': REGISTER_DOWN,
          }),
        },
      },
    },
  }
}
