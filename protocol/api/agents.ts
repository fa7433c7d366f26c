/**
 * The agent's side of the API: enrollment and ingest (protocol v1). Its grants poll is the
 * cases' (protocol/api/cases.ts): it lists the capture grants of active cases.
 */
import {
  EnrollRequest,
  EnrollResponse,
  HostBatch,
  HostInventory,
  HostSample,
  IngestAck,
  SampleAttributes,
  SeqConflict,
} from '../v1.ts'
import { AUTH_ERRORS, RETRY_AFTER, route } from './contract.ts'

export const enrollAgent = route({
  method: 'POST',
  path: '/v1/agents/enroll',
  operationId: 'enrollAgent',
  summary: "Trade an enrollment token for an agent's credential",
  security: 'enrollment',
  body: EnrollRequest,
  status: 201,
  answer: {
    description:
      'enrolled; or, for a token already used with the same `instance` secret (and ' +
      'still known, unrevoked and unexpired), the same enrollment again with a new ' +
      'credential that replaces the previous one, spending no further use',
    schema: EnrollResponse,
  },
  errors: {
    '400': 'the body is not JSON or does not match the schema',
    '401':
      'no token (`unauthenticated`), or a token unknown, expired, used up (without the `instance` it was used with) or revoked, or the agent it enrolled was revoked (`enrollment_refused`)',
  },
})

export const ingest = route({
  method: 'POST',
  path: '/v1/ingest',
  operationId: 'ingest',
  summary: 'One agent batch; acknowledged only once its rows are stored',
  description:
    'The body is a HostBatch, gzip-compressed (`Content-Encoding: gzip`) or plain. ' +
    'A retried batch, same `(agent_id, seq)` and same content, is acknowledged as ' +
    '`duplicate` and not written again. A stored `(agent_id, seq)` with other content is ' +
    '409 `seq_conflict`. The interval must be plausible by the collector clock ' +
    '(`ingest.max_batch_age_hours`, `ingest.max_clock_skew_seconds`, ' +
    '`ingest.max_interval_seconds`), else 422 `implausible_time`.',
  security: 'agent',
  parameters: [
    {
      name: 'Content-Encoding',
      in: 'header',
      required: false,
      schema: { type: 'string', enum: ['gzip', 'identity'] },
    },
  ],
  body: HostBatch,
  status: 200,
  answer: { description: 'stored, or a duplicate of one stored', schema: IngestAck },
  errors: {
    '400':
      'malformed gzip or JSON, a host or site in the body, or a batch that does not match protocol v1',
    '401': AUTH_ERRORS['401'],
    '403': 'the batch names another agent (`wrong_agent`)',
    '409': {
      description:
        'the seq is stored for this agent with other content: its numbering went ' +
        'backwards (`seq_conflict`). Nothing was written; `last_seq` is the highest seq ' +
        'stored for the agent: number unacknowledged batches from `last_seq + 1`',
      schema: SeqConflict,
    },
    '413': 'the body exceeds the compressed or decompressed size cap (`body_too_large`)',
    '415': 'a Content-Encoding other than gzip (`unsupported_encoding`)',
    '422':
      'the interval ends at or before its start, spans more than ' +
      '`ingest.max_interval_seconds`, starts more than `ingest.max_batch_age_hours` ' +
      'ago or ends more than `ingest.max_clock_skew_seconds` ahead of the collector ' +
      'clock (`implausible_time`); the message says which. Sending it again cannot succeed',
    '503': {
      description: 'the store could not take the batch (`store_unavailable`); retry later',
      headers: RETRY_AFTER('seconds to wait before sending again'),
    },
  },
})

export const AGENT_REQUESTS = {
  HostBatch,
  HostSample,
  SampleAttributes,
  HostInventory,
  EnrollRequest,
}
export const AGENT_RESPONSES = {
  IngestAck,
  SeqConflict,
  EnrollResponse,
}
