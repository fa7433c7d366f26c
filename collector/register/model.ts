/**
 * What the register is made of: its two names, its entries and signed checkpoints, and what a
 * verification reports. Shared by the collector's register, the routes and the auditor's side.
 */
import {
  GENESIS_HASH,
  looksLikeEntry as looksLikeAnyEntry,
  type Problem,
  type ProblemKind,
  type Report,
} from '../../common/register-verify/model.ts'
import { REGISTERS, type RegisterName } from '../../protocol/api/names.ts'

/** The register's two names: the API's (protocol/api/names.ts), named here for the register's code. */
export type { RegisterName }
export const isRegisterName = (name: string): name is RegisterName =>
  (REGISTERS as readonly string[]).includes(name)

/** The register a caller names, or a TypeError: callers check names before they get here. */
export function checkName(register: string): RegisterName {
  if (!isRegisterName(register)) throw new TypeError(`no register ${register}`)
  return register
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue }

export interface RegisterEntryInput {
  register: RegisterName
  kind: string
  actor: string
  /** Undefined as absent: the canonical JSON that is hashed leaves it out. */
  case_id?: string | undefined
  details: { [k: string]: JsonValue }
}

export interface RegisterEntry extends RegisterEntryInput {
  seq: number
  /** ISO 8601, UTC, milliseconds. */
  ts: string
  prev_hash: string
  hash: string
  /**
   * base64url Ed25519 signature by the register key over entrySignedBytes (the entry without
   * this field, `hash` included). Not part of what is hashed. Absent on entries stored before
   * migration 013, which only a signed checkpoint vouches for.
   */
  signature?: string | undefined
}

export interface Countersignature {
  by: string
  /** The countersigner's Ed25519 public key: the JWK `x` (base64url) or a PEM. */
  key: string
  signature: string
  ts: string
}

export interface SignedCheckpoint {
  register: RegisterName
  size: number
  /** Merkle root, hex. */
  root: string
  ts: string
  /** RFC 7638 thumbprint of the register's public key. */
  key_id: string
  /** base64url Ed25519 signature over canonical {register, size, root, ts}. */
  signature: string
  countersignatures: Countersignature[]
}

/** What a verification reports: the shared verifier's (common/register-verify/), which the
 * CLI, the agent and the console run too, so all of them say the same of a register. */
export type VerifyProblemKind = ProblemKind
export type VerifyProblem = Problem
export type VerifyReport = Report<RegisterName>

export interface EntriesPage {
  entries: RegisterEntry[]
  /** The `from` of the next page, or null at the end. */
  next_from: number | null
}

/** RFC 6962 PROOF(from, D[to]), hex hashes, for a verifier who kept the head at `from`. */
export interface ConsistencyProof {
  register: RegisterName
  from: number
  to: number
  proof: string[]
}

/** What the register's signed entries say of a case (Register.caseOnRecord). */
export interface CaseOnRecord {
  /** The state the latest entry that records one gives (every workflow entry does). */
  state: string
  /** That entry's seq and kind. */
  seq: number
  kind: string
  /** The latest grants issued: window (ISO) and the agents captured. */
  grants?: { start: string; end: string; agents: string[] }
}

/** prev_hash of the first entry. */
export { GENESIS_HASH }

/** Where the register's signing key lives: its own key, not the grant-signing key. */
export const REGISTER_KEY_FILE = 'register-signing-key.pem'

/** The entry as hashed and signed: everything but its own signature. */
export function entryBody<T extends { signature?: string | undefined }>(
  entry: T,
): Omit<T, 'signature'> {
  const { signature: _signature, ...body } = entry
  return body
}

/** Whether an answer or a stored document has the shape of an entry (the verifier's check). */
export const looksLikeEntry = (value: unknown): value is RegisterEntry => looksLikeAnyEntry(value)
