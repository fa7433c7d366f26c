/**
 * What a verifier of the register reads and reports, and the bytes each entry and checkpoint
 * is hashed and signed over. Generic in the register's name: the collector narrows it to its
 * two registers, a browser takes the one it was asked for.
 */
import { canonicalJson, fromHex, sha256, toHex, utf8 } from './bytes.ts'
import { leafHashOfBytes } from './merkle.ts'

type Json = string | number | boolean | null | Json[] | { [k: string]: Json }

export interface VerifiedEntry<N extends string = string> {
  register: N
  seq: number
  ts: string
  kind: string
  actor: string
  case_id?: string | undefined
  details: { [k: string]: Json }
  prev_hash: string
  hash: string
  signature?: string | undefined
}

export interface VerifiedCheckpoint<N extends string = string> {
  register: N
  size: number
  root: string
  ts: string
  key_id: string
  signature: string
  countersignatures: { by: string; key: string; signature: string; ts: string }[]
}

export type ProblemKind =
  | 'changed'
  | 'removed'
  | 'inserted'
  | 'reordered'
  | 'checkpoint-mismatch'
  | 'bad-signature'
  /** Fewer entries than a head the verifier kept from an earlier run. */
  | 'rolled-back'
  /** No valid consistency proof from a kept head: its entries were rewritten. */
  | 'inconsistent'

export interface Problem {
  seq: number
  kind: ProblemKind
  message: string
}

export interface Report<N extends string = string> {
  register: N
  ok: boolean
  /** Entries in the chain as reconstructed (forged duplicates left out). */
  size: number
  /** Merkle root over those entries, hex. */
  root: string
  /** Checkpoints whose signature verified (each then checked against the entries). */
  checked_checkpoints: number
  problems: Problem[]
}

/** prev_hash of the first entry. */
export const GENESIS_HASH = '0'.repeat(64)

const HEX64 = /^[0-9a-f]{64}$/
const ENTRY_SIGNATURE_CONTEXT = 'tally-register-entry:v1\n'

/** The entry as hashed and signed: everything but its own signature. */
function entryBody(entry: VerifiedEntry): Omit<VerifiedEntry, 'signature'> {
  const { signature: _signature, ...body } = entry
  return body
}

/** SHA-256(prev_hash bytes || canonical entry without `hash` and `signature`), hex. */
export async function entryHash(entry: VerifiedEntry): Promise<string> {
  const { hash: _hash, signature: _signature, ...unsigned } = entry
  const prev = HEX64.test(entry.prev_hash) ? fromHex(entry.prev_hash) : utf8(entry.prev_hash)
  return toHex(await sha256(prev, utf8(canonicalJson(unsigned))))
}

/** RFC 6962 leaf hash of an entry: SHA-256(0x00 || canonical entry, `hash` included). */
export const leafHash = (entry: VerifiedEntry): Promise<Uint8Array> =>
  leafHashOfBytes(utf8(canonicalJson(entryBody(entry))))

/** What an entry's signature covers: a context string, then the canonical entry. */
export const entrySignedBytes = (entry: VerifiedEntry): Uint8Array<ArrayBuffer> =>
  utf8(`${ENTRY_SIGNATURE_CONTEXT}${canonicalJson(entryBody(entry))}`)

/** The bytes a checkpoint's signature and every countersignature cover. */
export const checkpointBytes = (head: {
  register: string
  size: number
  root: string
  ts: string
}): Uint8Array<ArrayBuffer> => {
  const { register, size, root, ts } = head
  return utf8(canonicalJson({ register, size, root, ts }))
}

/** Whether an answer has the shape of a register entry (its content is checked by hashing). */
export function looksLikeEntry(value: unknown): value is VerifiedEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const v = value as Record<string, unknown>
  return (
    typeof v.register === 'string' &&
    typeof v.seq === 'number' &&
    typeof v.ts === 'string' &&
    typeof v.kind === 'string' &&
    typeof v.actor === 'string' &&
    (v.case_id === undefined || typeof v.case_id === 'string') &&
    typeof v.details === 'object' &&
    v.details !== null &&
    !Array.isArray(v.details) &&
    typeof v.prev_hash === 'string' &&
    typeof v.hash === 'string' &&
    (v.signature === undefined || typeof v.signature === 'string')
  )
}
