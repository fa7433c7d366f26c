/**
 * The registers (ITSD's special register, 8.5d; OIOS's own record, 9.2d): entries, signed
 * checkpoints, countersignatures, consistency proofs and verification.
 */
import { z } from 'zod'
import { AUTH_ERRORS, type Parameter, route } from './contract.ts'
import { MAX_PAGE, REGISTER_READERS, REGISTERS, ROLES } from './names.ts'

export const CountersignRequest = z.strictObject({
  by: z.string().min(1).max(200),
  public_key: z.looseObject({
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a base64url Ed25519 public key'),
  }),
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'must be a base64url Ed25519 signature'),
})

const size = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

/** A page of entries: from a seq, at most `limit` of them, of one case or all. */
export const EntriesQuery = z.strictObject({
  from: z.coerce
    .number()
    .int()
    .min(1)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .describe('the first seq to return'),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).optional(),
  case_id: z.string().min(1).max(200).optional().describe("only this case's entries"),
})

/** The two tree sizes of a consistency proof; `to` at or above `from` (checked by the route). */
export const ConsistencyQuery = z.strictObject({
  from: size.describe('the size of the kept head'),
  to: size.optional().describe('the size of the newer head (default: the latest signed one)'),
})

export const RegisterEntry = z.strictObject({
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
export const RegisterEntries = z.strictObject({
  entries: z.array(RegisterEntry),
  next_from: z.number().int().nullable().describe('the `from` of the next page, null at the end'),
})
export const Checkpoint = z.strictObject({
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
export const CheckpointList = z.strictObject({ checkpoints: z.array(Checkpoint) })
export const VerifyReport = z.strictObject({
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
export const ConsistencyProof = z.strictObject({
  register: z.enum(REGISTERS),
  from: z.number().int(),
  to: z.number().int(),
  proof: z.array(z.string()).describe('RFC 6962 PROOF(from, to), hex SHA-256 hashes'),
})
export const RegisterPublicKey = z
  .object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string(), kid: z.string() })
  .catchall(z.string())
  .describe("the register's Ed25519 public key as a JWK, for checking checkpoint signatures")

const registerParameter: Parameter = {
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
const NOT_WRITTEN = 'the store could not be written (`register_unavailable`); retry later'

export const registerPublicKey = route({
  method: 'GET',
  path: '/v1/register/public-key',
  operationId: 'registerPublicKey',
  summary: "The register's checkpoint-signing public key (register readers)",
  security: 'user',
  roles: [...REGISTER_READERS.itsd, ...REGISTER_READERS.oios],
  status: 200,
  answer: { description: 'the public key', schema: RegisterPublicKey },
  errors: AUTH_ERRORS,
})

export const registerEntries = route({
  method: 'GET',
  path: '/v1/register/{register}/entries',
  operationId: 'registerEntries',
  summary: 'A page of register entries, in order (register readers)',
  description: 'Reading the register is not itself registered.',
  security: 'user',
  roles: ROLES,
  parameters: [registerParameter],
  query: EntriesQuery,
  status: 200,
  answer: { description: 'the entries', schema: RegisterEntries },
  errors: { '400': 'an unknown or invalid query parameter', ...REGISTER_ERRORS },
})

export const registerCheckpoints = route({
  method: 'GET',
  path: '/v1/register/{register}/checkpoints',
  operationId: 'registerCheckpoints',
  summary: 'The signed checkpoints (tree heads) of a register (register readers)',
  security: 'user',
  roles: ROLES,
  parameters: [registerParameter],
  status: 200,
  answer: { description: 'the checkpoints', schema: CheckpointList },
  errors: REGISTER_ERRORS,
})

export const signCheckpoint = route({
  method: 'POST',
  path: '/v1/register/{register}/checkpoints',
  operationId: 'signCheckpoint',
  summary: 'Sign a checkpoint at the current size (register readers)',
  description: 'Refused when the stored chain does not verify.',
  security: 'user',
  roles: ROLES,
  parameters: [registerParameter],
  status: 201,
  answer: {
    description: 'the checkpoint (the existing one if the size has one)',
    schema: Checkpoint,
  },
  errors: {
    ...REGISTER_ERRORS,
    '409': 'the register does not verify (`register_does_not_verify`)',
    '503': NOT_WRITTEN,
  },
})

export const countersignCheckpoint = route({
  method: 'POST',
  path: '/v1/register/{register}/checkpoints/{size}/countersign',
  operationId: 'countersignCheckpoint',
  summary: 'Add a countersignature to a checkpoint (register readers)',
  description:
    "The signature is the countersigner's Ed25519 signature over the checkpoint's " +
    'canonical {register, size, root, ts}, checked with the public key given.',
  security: 'user',
  roles: ROLES,
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
  body: CountersignRequest,
  status: 200,
  answer: { description: 'the countersigned checkpoint', schema: Checkpoint },
  errors: {
    '400':
      'the body does not match the schema, the size is not an integer, or the ' +
      'signature does not verify (`bad_countersignature`)',
    ...REGISTER_ERRORS,
    '404': `${REGISTER_ERRORS['404']}; or no checkpoint of that size`,
    '503': NOT_WRITTEN,
  },
})

export const registerConsistency = route({
  method: 'GET',
  path: '/v1/register/{register}/consistency',
  operationId: 'registerConsistency',
  summary:
    'RFC 6962 consistency proof between two tree sizes, from the stored entries (register readers)',
  description:
    'For a verifier that kept the head at `from`: the proof that the tree of size `to` ' +
    '(default: the latest signed head) extends it. The verifier checks it against both ' +
    'signed roots itself.',
  security: 'user',
  roles: ROLES,
  parameters: [registerParameter],
  query: ConsistencyQuery,
  status: 200,
  answer: { description: 'the proof', schema: ConsistencyProof },
  errors: {
    '400': 'from missing, or from/to not sizes, or to below from (`invalid_request`)',
    ...REGISTER_ERRORS,
    '409':
      'a size beyond the register (`beyond_head`: cut below what the verifier kept), ' +
      'or the stored chain does not verify (`register_does_not_verify`)',
    '503': 'the store could not be read (`register_unavailable`); retry later',
  },
})

export const verifyRegister = route({
  method: 'GET',
  path: '/v1/register/{register}/verify',
  operationId: 'verifyRegister',
  summary: 'Recompute the hash chain, the Merkle tree and every checkpoint (register readers)',
  security: 'user',
  roles: ROLES,
  parameters: [registerParameter],
  status: 200,
  answer: {
    description: 'the report; `ok` is false with the problems named',
    schema: VerifyReport,
  },
  errors: REGISTER_ERRORS,
})

export const REGISTER_REQUESTS = { CountersignRequest }
export const REGISTER_RESPONSES = {
  RegisterEntry,
  RegisterEntries,
  Checkpoint,
  CheckpointList,
  VerifyReport,
  ConsistencyProof,
  RegisterPublicKey,
}
