/**
 * The tier I routes: restricted ingest under a capture grant, the investigator's drill-down and
 * exports under an access grant, and the receiving official's receipt.
 */
import { z } from 'zod'
import {
  CATEGORIES,
  DnsRecord,
  FlowRecord,
  PcapSegment,
  RestrictedBatch,
  WebRecord,
} from '../grants.ts'
import { type Parameter, route } from './contract.ts'
import { MAX_DRILL_LIMIT, type Role } from './names.ts'

const INVESTIGATORS: readonly Role[] = ['itsd_investigator', 'oios_investigator']

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lower-case hex SHA-256')
/** The receiving official's receipt: every file of the manifest with its digest. */
export const Receipt = z.strictObject({
  manifest_sha256: sha256,
  files: z
    .array(z.strictObject({ name: z.string().min(1).max(100), sha256 }))
    .min(1)
    .max(100),
})
export type Receipt = z.infer<typeof Receipt>

export const Counts = z.strictObject({
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
/**
 * One bundle the store holds, as a receiving official picks it: ids, time, digest and sizes, no
 * record of the bundle's. A received bundle is not listed: the receipt purges the case's tier I
 * data, the bundle with it (8.5e); its receipt is on the register (`receipt_signed`).
 */
export const ExportListed = z.strictObject({
  export_id: z.string(),
  created_at: z.string().describe('ISO 8601, UTC: when the bundle was made'),
  created_by: z.string().describe('the user id of the investigator who made it'),
  manifest_sha256: z.string().describe('hex SHA-256 of manifest.json as served'),
  files: z.number().int().describe('the files the manifest lists'),
  bytes: z.number().int().describe('the size of those files, together'),
})
export const ExportList = z
  .strictObject({
    case_id: z.string(),
    exports: z.array(ExportListed).describe('oldest first'),
  })
  .describe("the case's export bundles awaiting receipt")
export type ExportList = z.output<typeof ExportList>

export const ReceiptSigned = z.strictObject({
  case_id: z.string(),
  export_id: z.string(),
  receipt: z.literal('signed'),
  purged: z.literal(true),
})
export type ReceiptSigned = z.output<typeof ReceiptSigned>

const path = (name: string, description: string): Parameter => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: { type: 'string' },
})
const grantHeader: Parameter = {
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
const instant = z.string().describe('ISO 8601 with an offset, or epoch milliseconds')
const port = z.coerce.number().int().min(0).max(65535)

/**
 * What a drill-down may narrow, by category: the grant's scope comes from the access grant
 * alone; each of these may only narrow it. Checked by the collector against the grant, after
 * the caller's access (collector/restricted/narrowing.ts).
 */
export const drillQuery = (category: 'flows' | 'dns' | 'web') =>
  z.strictObject({
    from: instant.optional(),
    to: instant.optional(),
    agent_id: z.string().optional(),
    address: z.string().optional().describe("one of the subject's addresses in the grant"),
    ...(category === 'dns' ? {} : { port: port.optional() }),
    ...(category === 'flows'
      ? {
          protocol: z
            .string()
            .optional()
            .describe('an IP protocol number, or tcp, udp, icmp, icmpv6'),
        }
      : {}),
    limit: z.coerce.number().int().min(1).max(MAX_DRILL_LIMIT).default(1000),
  })

/** Who may read an export bundle's manifest and files, and how. */
const EXPORT_READERS = {
  description:
    "The case's receiving official with their own token, or its investigator with the access " +
    'grant. Every download is registered first.',
  security: 'user',
  roles: [...INVESTIGATORS, 'receiving_official'],
} as const

const EXPORT_PATH = [path('id', "the case's id"), path('export_id', 'the export')] as const

const drill = <const C extends 'flows' | 'dns' | 'web', const S extends z.ZodType>(
  category: C,
  answer: S,
) =>
  route({
    method: 'GET',
    path: `/v1/cases/{id}/${category}`,
    operationId: `drill${category[0]?.toUpperCase()}${category.slice(1)}`,
    summary: `The subject's ${category} records, inside the access grant's scope`,
    description:
      'The query is built from the access grant alone (case, subjects, window); the parameters ' +
      'may only narrow it. Registered, with the SHA-256 of the answer, before it is answered.',
    security: 'user',
    roles: INVESTIGATORS,
    parameters: [path('id', "the case's id"), grantHeader],
    serviceQuery: drillQuery(category),
    status: 200,
    answer: { description: 'the records', schema: answer },
    errors: {
      '400': 'an unknown, repeated or malformed parameter (`invalid_param`)',
      ...ACCESS_ERRORS,
      '403': `${ACCESS_ERRORS['403']}; or a parameter that would widen the grant: a time outside its window, an agent or address it does not name, a category it does not grant (\`outside_scope\`)`,
    },
  })

export const restrictedIngest = route({
  method: 'POST',
  path: '/v1/restricted/ingest',
  operationId: 'restrictedIngest',
  summary: `Tier I records of one interval under one capture grant (categories: ${CATEGORIES.join(', ')})`,
  description:
    'Taken only when the grant is on record, not revoked, issued to this agent, its case ' +
    'is active, it grants every category present and every record lies inside its ' +
    'window; otherwise refused as a whole and registered. gzip or plain. A retry, same ' +
    '`(agent_id, grant_id, seq)`, is acknowledged as `duplicate`.',
  security: 'agent',
  body: RestrictedBatch,
  status: 200,
  answer: { description: 'stored, or a duplicate', schema: RestrictedIngestAck },
  errors: {
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
  },
})

export const drillFlows = drill('flows', FlowRows)
export const drillDns = drill('dns', DnsRows)
export const drillWeb = drill('web', WebRows)

export const createExport = route({
  method: 'POST',
  path: '/v1/cases/{id}/exports',
  operationId: 'createExport',
  summary: 'Builds an export bundle of the granted categories, with a manifest of digests',
  description:
    'flows.json/.csv, dns.json/.csv, web.json/.csv and packets.pcap, as granted. The body ' +
    'is empty or `{}`. Registered (`export_created`) with the manifest digests.',
  security: 'user',
  roles: INVESTIGATORS,
  parameters: [path('id', "the case's id"), grantHeader],
  status: 201,
  answer: { description: 'the bundle', schema: ExportCreated },
  errors: {
    '400': 'a body other than `{}`',
    ...ACCESS_ERRORS,
    '413': 'more records in scope than one bundle holds (`export_too_large`)',
  },
})

export const listExports = route({
  method: 'GET',
  path: '/v1/cases/{id}/exports',
  operationId: 'listExports',
  summary: "The case's export bundles awaiting receipt: ids, times, digests and sizes",
  description:
    "The case's receiving official with their own token, or its investigator with the access " +
    'grant. To anyone else the case does not exist (404), an OIOS case to ITSD roles alike. ' +
    'Registered (`exports_listed`) before it is answered, as a manifest download is.',
  security: 'user',
  roles: EXPORT_READERS.roles,
  parameters: [path('id', "the case's id"), { ...grantHeader, required: false }],
  status: 200,
  answer: { description: 'the bundles, oldest first', schema: ExportList },
  errors: {
    ...ACCESS_ERRORS,
    '404':
      'no such case, or one the caller is neither the receiving official nor the investigator of (`not_found`)',
  },
})

export const exportManifest = route({
  method: 'GET',
  path: '/v1/cases/{id}/exports/{export_id}/manifest',
  operationId: 'exportManifest',
  summary: "An export bundle's manifest.json",
  ...EXPORT_READERS,
  parameters: [...EXPORT_PATH, { ...grantHeader, required: false }],
  status: 200,
  answer: { description: 'manifest.json, byte for byte', schema: ExportManifest },
  errors: { ...ACCESS_ERRORS, '404': 'no such export (`no_such_export`)' },
})

export const exportFile = route({
  method: 'GET',
  path: '/v1/cases/{id}/exports/{export_id}/files/{name}',
  operationId: 'exportFile',
  summary: 'One file of an export bundle',
  ...EXPORT_READERS,
  parameters: [
    ...EXPORT_PATH,
    path('name', 'the file name, as in the manifest'),
    { ...grantHeader, required: false },
  ],
  status: 200,
  answer: {
    description: 'the file, byte for byte as its digest in the manifest',
    content: {
      'application/json': { schema: {} },
      'text/csv': { schema: { type: 'string' } },
      'application/vnd.tcpdump.pcap': { schema: { type: 'string', format: 'binary' } },
    },
  },
  errors: { ...ACCESS_ERRORS, '404': 'no such export or file (`no_such_export`)' },
})

export const signReceipt = route({
  method: 'POST',
  path: '/v1/cases/{id}/exports/{export_id}/receipt',
  operationId: 'signReceipt',
  summary: "The receiving official's receipt (8.5c); then the case's tier I data is purged (8.5e)",
  description:
    "By the case's receiving official only, with their own token. Every file of the " +
    'manifest must be listed with its digest, and the manifest’s digest must match.',
  security: 'user',
  roles: ['receiving_official'],
  parameters: [path('id', "the case's id"), path('export_id', 'the export')],
  body: Receipt,
  status: 200,
  answer: { description: 'signed and purged', schema: ReceiptSigned },
  errors: {
    '400':
      'a body that does not match the schema, or digests that do not match the bundle ' +
      '(`digest_mismatch`)',
    '401': 'no token, or an unknown, wrong or revoked one (`unauthenticated`)',
    '403': "not the case's receiving official (`forbidden`)",
    '404': 'no such export (`no_such_export`)',
    '503': REGISTER_DOWN,
  },
})

export const RESTRICTED_REQUESTS = {
  RestrictedBatch,
  FlowRecord,
  DnsRecord,
  WebRecord,
  PcapSegment,
  Receipt,
}
export const RESTRICTED_RESPONSES = {
  RestrictedIngestAck,
  FlowRows,
  DnsRows,
  WebRows,
  ExportManifest,
  ExportCreated,
  ExportList,
  ReceiptSigned,
}

export const RESTRICTED_ROUTES = [
  restrictedIngest,
  drillFlows,
  drillDns,
  drillWeb,
  createExport,
  listExports,
  exportManifest,
  exportFile,
  signReceipt,
]
