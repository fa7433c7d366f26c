/**
 * The tamper-evident register: the special register of bulletin 8.5d (ITSD) and OIOS's own
 * written record of 9.2d, as two separate chains. OIOS's record is OIOS's alone and ITSD's
 * register holds nothing of OIOS cases, so `itsd` and `oios` share no entry, hash or checkpoint.
 *
 * - An entry is canonical JSON (RFC 8785). Its hash is SHA-256(prev_hash bytes || canonical
 *   entry without `hash`): a hash chain starting from 32 zero bytes.
 * - The entries are also the leaves of an RFC 6962 Merkle tree (leaf = SHA-256(0x00 || canonical
 *   entry), node = SHA-256(0x01 || left || right), split at the largest power of two below n).
 *   A checkpoint is the tree head {register, size, root, ts} signed with the register's Ed25519
 *   key; an auditor or OIOS countersigns it with their own key and keeps a copy elsewhere. A
 *   rewrite of the whole chain with recomputed hashes then no longer matches a signed root.
 * - Every entry also carries its own Ed25519 signature by the register key over its canonical
 *   bytes (seq, prev_hash and hash included), written in the same insert. The chain's hashes
 *   need no key, so a holder of the data directory could otherwise append entries in anyone's
 *   name; an entry whose signature does not verify is not the collector's, and nothing trusts
 *   it. Entries stored before signatures existed (migration 013) are trusted only where a
 *   checkpoint signed with the register key covers them.
 * - Fail closed: `append` throws RegisterUnavailable when the entry cannot be written, and the
 *   caller does not perform the access.
 * - Reads verify, they do not trust: `verify` reads every stored column and recomputes
 *   everything; `verifyEntries` is the pure check an auditor runs on their own machine.
 */
import {
  createPublicKey,
  type KeyObject,
  sign as signBytes,
  verify as verifyBytes,
  type webcrypto,
} from 'node:crypto'
import { leafHashOfBytes, MerkleTree, sha256 } from '../../common/merkle.ts'
import { Mutex } from '../../common/mutex.ts'
import {
  canonicalJson,
  checkpointBytes,
  checkpointSignatureValid,
  ed25519PublicKey,
  type PublicKeyInput,
} from '../../common/register-head.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import {
  BadCountersignature,
  CheckpointNotFound,
  RegisterIntegrityError,
  RegisterUnavailable,
  SizeBeyondHead,
} from './errors.ts'

export { EMPTY_ROOT, MerkleTree, verifyConsistency } from '../../common/merkle.ts'
export {
  canonicalJson,
  checkHeadExtends,
  checkpointBytes,
  checkpointSignatureValid,
  ed25519PublicKey,
  type HeadCheck,
  type PublicKeyInput,
} from '../../common/register-head.ts'
export {
  BadCountersignature,
  CheckpointNotFound,
  RegisterIntegrityError,
  RegisterUnavailable,
  SizeBeyondHead,
} from './errors.ts'

export const REGISTERS = ['itsd', 'oios'] as const
export type RegisterName = (typeof REGISTERS)[number]
export const isRegisterName = (name: string): name is RegisterName =>
  (REGISTERS as readonly string[]).includes(name)

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue }

export interface RegisterEntryInput {
  register: RegisterName
  kind: string
  actor: string
  case_id?: string
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
  signature?: string
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

export type VerifyProblemKind =
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

export interface VerifyProblem {
  seq: number
  kind: VerifyProblemKind
  message: string
}

export interface VerifyReport {
  register: RegisterName
  ok: boolean
  /** Entries in the chain as reconstructed (forged duplicates left out). */
  size: number
  /** Merkle root over those entries, hex. */
  root: string
  /** Checkpoints whose signature verified (each then checked against the entries). */
  checked_checkpoints: number
  problems: VerifyProblem[]
}

/** prev_hash of the first entry. */
export const GENESIS_HASH = '0'.repeat(64)

// ---------------------------------------------------------------------------------------------
// Canonical bytes, hashes, Merkle tree, signatures: pure functions, shared with the auditor's CLI.

const HEX64 = /^[0-9a-f]{64}$/

/** The entry as hashed and signed: everything but its own signature. */
export function entryBody<T extends { signature?: string }>(entry: T): Omit<T, 'signature'> {
  const { signature: _signature, ...body } = entry
  return body
}

/** SHA-256(prev_hash bytes || canonical entry without `hash` and `signature`), hex. */
export function entryHash(entry: Omit<RegisterEntry, 'hash'> & { hash?: string }): string {
  const { hash: _hash, signature: _signature, ...unsigned } = entry
  const prev = HEX64.test(entry.prev_hash)
    ? Buffer.from(entry.prev_hash, 'hex')
    : Buffer.from(entry.prev_hash, 'utf8')
  return sha256(prev, Buffer.from(canonicalJson(unsigned), 'utf8')).toString('hex')
}

/** RFC 6962 leaf hash of an entry: SHA-256(0x00 || canonical entry, `hash` included). */
export function leafHash(entry: RegisterEntry): Buffer {
  return leafHashOfText(canonicalJson(entryBody(entry)))
}

/**
 * What an entry's signature covers: a context string, then the canonical entry with its seq,
 * prev_hash and hash (its signature left out). The context keeps an entry's signature from
 * ever being taken for a checkpoint's, though both come from the register key.
 */
export function entrySignedBytes(entry: RegisterEntry): Buffer {
  return Buffer.from(`${ENTRY_SIGNATURE_CONTEXT}${canonicalJson(entryBody(entry))}`, 'utf8')
}

const ENTRY_SIGNATURE_CONTEXT = 'tally-register-entry:v1\n'

export function signEntry(entry: RegisterEntry, privateKey: KeyObject): string {
  return signBytes(null, entrySignedBytes(entry), privateKey).toString('base64url')
}

/** Whether the entry carries `key`'s signature over its own bytes (false when it has none). */
export function entrySignatureValid(entry: RegisterEntry, key: PublicKeyInput): boolean {
  if (typeof entry.signature !== 'string' || entry.signature === '') return false
  try {
    return verifyBytes(
      null,
      entrySignedBytes(entry),
      ed25519PublicKey(key),
      Buffer.from(entry.signature, 'base64url'),
    )
  } catch {
    return false
  }
}

const leafHashOfText = (canonical: string): Buffer =>
  leafHashOfBytes(Buffer.from(canonical, 'utf8'))

/** RFC 7638 thumbprint of an Ed25519 public JWK, base64url. */
export function jwkThumbprint(jwk: { crv?: string; kty?: string; x?: string }): string {
  return sha256(
    Buffer.from(canonicalJson({ crv: jwk.crv, kty: jwk.kty, x: jwk.x }), 'utf8'),
  ).toString('base64url')
}

export type JsonWebKey = webcrypto.JsonWebKey

export function signCheckpointBytes(
  checkpoint: Pick<SignedCheckpoint, 'register' | 'size' | 'root' | 'ts'>,
  privateKey: KeyObject,
): string {
  return signBytes(null, checkpointBytes(checkpoint), privateKey).toString('base64url')
}

// ---------------------------------------------------------------------------------------------
// Verification.

/**
 * Verifies a register from its entries in stored order and its checkpoints. Pure: the collector
 * runs it on rows it has just read, an auditor on what the API gave them.
 *
 * What it recomputes: every entry's hash; the seq order of the stored rows; one entry per seq
 * from 1 with no gap; each entry's link to its predecessor; for each checkpoint, its signature,
 * its countersignatures and the Merkle root of the entries up to its size.
 *
 * How problems are named: `changed`, an entry whose content no longer gives its hash (or, with
 * its hash recomputed, no longer the hash its successor recorded); `removed`, a seq missing
 * (also at the end, below a checkpoint's size); `inserted`, a second entry for one seq, or an
 * entry that shares its predecessor with the next one; `reordered`, an entry stored out of seq
 * order; `checkpoint-mismatch`, a signed root the entries no longer give (a consistent rewrite);
 * `bad-signature`, a checkpoint or countersignature that does not verify with its key.
 */
export function verifyEntries(
  entries: RegisterEntry[],
  checkpoints: SignedCheckpoint[],
  publicKeyJwk: PublicKeyInput,
  register?: RegisterName,
): VerifyReport {
  const name: RegisterName = register ?? entries[0]?.register ?? checkpoints[0]?.register ?? 'itsd'
  const problems: VerifyProblem[] = []
  const add = (seq: number, kind: VerifyProblemKind, message: string) =>
    problems.push({ seq, kind, message })

  // 1. Each entry on its own: it belongs here, has a usable seq, and gives its hash. Whether a
  // bad hash means `changed` or `inserted` depends on whether the entry is in the chain (3).
  const usable: { entry: RegisterEntry; index: number; valid: boolean; why: string }[] = []
  entries.forEach((entry, index) => {
    if (entry.register !== name) {
      add(
        entry.seq,
        'inserted',
        `entry ${entry.seq} belongs to register ${entry.register}, not ${name}`,
      )
    } else if (!Number.isSafeInteger(entry.seq) || entry.seq < 1) {
      add(Number(entry.seq) || 0, 'inserted', `an entry has an invalid seq ${String(entry.seq)}`)
    } else {
      let why = ''
      try {
        if (entryHash(entry) !== entry.hash)
          why = 'does not give its recorded hash (content changed)'
      } catch (err) {
        why = `cannot be hashed: ${(err as Error).message}`
      }
      usable.push({ entry, index, valid: why === '', why })
    }
  })
  type Stored = (typeof usable)[number]

  // 2. Stored order: the entries outside a longest non-decreasing run of seqs were moved.
  for (const moved of outOfOrder(usable.map((x) => x.entry.seq))) {
    const x = usable[moved] as Stored
    add(
      x.entry.seq,
      'reordered',
      `entry ${x.entry.seq} is stored out of seq order (row ${x.index + 1})`,
    )
  }

  // 3. One entry per seq, from 1 without gaps, each linked to its predecessor.
  const bySeq = new Map<number, Stored[]>()
  for (const x of usable) {
    const list = bySeq.get(x.entry.seq)
    if (list === undefined) bySeq.set(x.entry.seq, [x])
    else list.push(x)
  }
  const maxSeq = usable.reduce((m, x) => Math.max(m, x.entry.seq), 0)
  const hashOwners = new Map<string, number>()
  for (const x of usable)
    if (!hashOwners.has(x.entry.hash)) hashOwners.set(x.entry.hash, x.entry.seq)
  const chain: RegisterEntry[] = []
  let previous: RegisterEntry | undefined
  let gapStart: number | undefined
  for (let seq = 1; seq <= maxSeq; seq++) {
    const candidates = bySeq.get(seq)
    if (candidates === undefined) {
      gapStart ??= seq
      previous = undefined
      continue
    }
    if (gapStart !== undefined) {
      const end = seq - 1
      add(
        gapStart,
        'removed',
        gapStart === end
          ? `entry ${gapStart} is missing`
          : `entries ${gapStart} to ${end} are missing (${end - gapStart + 1})`,
      )
      gapStart = undefined
    }
    // Of several rows for one seq, the one that fits the chain is the entry, the rest inserted.
    const expectedPrev = seq === 1 ? GENESIS_HASH : previous?.hash
    const next = bySeq.get(seq + 1) ?? []
    const score = (x: Stored) =>
      (x.valid ? 4 : 0) +
      (x.entry.prev_hash === expectedPrev ? 2 : 0) +
      (next.some((n) => n.entry.prev_hash === x.entry.hash) ? 1 : 0)
    // On a tie (two rows that both fit, the last entry forged, say) the earlier-written one is
    // the entry: rows come back in no set order, and the verdict must not depend on it.
    const ordered = [...candidates].sort((a, b) =>
      String(a.entry.ts).localeCompare(String(b.entry.ts)),
    )
    let chosen = ordered[0] as Stored
    for (const x of ordered) if (score(x) > score(chosen)) chosen = x
    for (const x of candidates) {
      if (x === chosen) continue
      add(
        seq,
        'inserted',
        `a second entry ${seq} is stored (hash ${x.entry.hash.slice(0, 12)}…) that is not in the chain`,
      )
    }
    const entry = chosen.entry
    if (!chosen.valid) {
      add(seq, 'changed', `entry ${seq} ${chosen.why}`)
    } else if (seq === 1 && entry.prev_hash !== GENESIS_HASH) {
      add(1, 'changed', 'entry 1 does not start the chain (its prev_hash is not the genesis hash)')
    } else if (previous !== undefined && entry.prev_hash !== previous.hash) {
      const owner = hashOwners.get(entry.prev_hash)
      if (entry.prev_hash === previous.prev_hash) {
        add(
          previous.seq,
          'inserted',
          `entries ${previous.seq} and ${seq} follow the same predecessor: entry ${previous.seq} was inserted`,
        )
      } else if (owner !== undefined && owner < seq - 1) {
        add(
          owner + 1,
          'inserted',
          `entry ${seq} follows entry ${owner}: entries ${owner + 1} to ${seq - 1} were inserted`,
        )
      } else if (owner !== undefined) {
        add(seq, 'reordered', `entry ${seq} follows entry ${owner}, not entry ${seq - 1}`)
      } else {
        add(
          previous.seq,
          'changed',
          `entry ${previous.seq} is not the entry that entry ${seq} follows: it was rewritten ` +
            `with a recomputed hash, or entries before ${seq} were removed and renumbered`,
        )
      }
    }
    chain.push(entry)
    previous = entry
  }

  // 4. Checkpoints: signature, countersignatures, root over the entries up to their size.
  const tree = new MerkleTree()
  const seqAt: number[] = []
  for (const e of chain) {
    tree.push(leafHash(e))
    seqAt.push(e.seq)
  }
  /** How many chain entries have seq <= size. */
  const countUpTo = (size: number): number => {
    let lo = 0
    let hi = seqAt.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((seqAt[mid] as number) <= size) lo = mid + 1
      else hi = mid
    }
    return lo
  }
  let checked = 0
  let lastGood = 0
  // One checkpoint per append batch: a cut tail or a rewrite would otherwise be reported once
  // per later checkpoint. The largest cut and the first mismatch say it, the rest are counted.
  let beyond: SignedCheckpoint | undefined
  let firstMismatch: { cp: SignedCheckpoint; root: string; after: number } | undefined
  let laterMismatches = 0
  const sorted = [...checkpoints].sort((a, b) => a.size - b.size)
  for (const cp of sorted) {
    const at = `checkpoint at size ${cp.size} (${cp.ts})`
    if (cp.register !== name) {
      add(cp.size, 'checkpoint-mismatch', `${at} is for register ${cp.register}, not ${name}`)
      continue
    }
    if (!checkpointSignatureValid(cp, cp.signature, publicKeyJwk)) {
      add(cp.size, 'bad-signature', `${at}: the register key's signature does not verify`)
      continue
    }
    checked++
    for (const cs of cp.countersignatures ?? []) {
      if (!checkpointSignatureValid(cp, cs.signature, cs.key)) {
        add(cp.size, 'bad-signature', `${at}: the countersignature by ${cs.by} does not verify`)
      }
    }
    if (cp.size > maxSeq) {
      beyond = cp
      continue
    }
    const root = tree.root(countUpTo(cp.size))
    if (root !== cp.root) {
      if (firstMismatch === undefined) firstMismatch = { cp, root, after: lastGood }
      else laterMismatches++
    } else if (firstMismatch === undefined) {
      lastGood = cp.size
    }
  }
  if (firstMismatch !== undefined) {
    const { cp, root, after } = firstMismatch
    add(
      cp.size,
      'checkpoint-mismatch',
      `checkpoint at size ${cp.size} (${cp.ts}) signed root ${cp.root.slice(0, 16)}…, the ` +
        `entries give ${root.slice(0, 16)}…: entries ${after + 1} to ${cp.size} were rewritten` +
        (laterMismatches > 0 ? ` (and ${laterMismatches} later checkpoints do not match)` : ''),
    )
  }
  // 5. Each entry's own signature: the collector signs every entry it writes, so one that does
  // not verify was written by someone else. Entries from before signatures existed stand only
  // under a checkpoint whose signature and root both verified.
  let entryKey: KeyObject | undefined
  try {
    entryKey = ed25519PublicKey(publicKeyJwk)
  } catch {
    entryKey = undefined
  }
  for (const entry of chain) {
    if (typeof entry.signature === 'string' && entry.signature !== '') {
      if (entryKey === undefined || !entrySignatureValid(entry, entryKey)) {
        add(
          entry.seq,
          'bad-signature',
          `entry ${entry.seq}: its signature does not verify with the register key (the collector did not write it)`,
        )
      }
    } else if (entry.seq > lastGood) {
      add(
        entry.seq,
        'bad-signature',
        `entry ${entry.seq} carries no signature and no signed checkpoint covers it (the collector did not write it)`,
      )
    }
  }
  if (beyond !== undefined) {
    add(
      maxSeq + 1,
      'removed',
      `checkpoint at size ${beyond.size} (${beyond.ts}) covers ${beyond.size} entries but only ` +
        `${maxSeq} are stored: entries ${maxSeq + 1} to ${beyond.size} are missing`,
    )
  }

  const seen = new Set<string>()
  const unique = problems.filter((p) => {
    const key = `${p.seq}\u0000${p.kind}\u0000${p.message}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
  unique.sort((a, b) => a.seq - b.seq)
  return {
    register: name,
    ok: unique.length === 0,
    size: chain.length,
    root: tree.root(),
    checked_checkpoints: checked,
    problems: unique,
  }
}

/** Indexes of the values outside one longest non-decreasing subsequence. */
function outOfOrder(values: number[]): number[] {
  // Patience sorting: tails[k] = index ending the best run of length k + 1.
  const tails: number[] = []
  const parent: number[] = new Array(values.length).fill(-1)
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number
    let lo = 0
    let hi = tails.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((values[tails[mid] as number] as number) <= v) lo = mid + 1
      else hi = mid
    }
    if (lo > 0) parent[i] = tails[lo - 1] as number
    tails[lo] = i
  }
  const keep = new Set<number>()
  for (let i = tails[tails.length - 1]; i !== undefined && i >= 0; i = parent[i]) keep.add(i)
  const moved: number[] = []
  for (let i = 0; i < values.length; i++) if (!keep.has(i)) moved.push(i)
  return moved
}

// ---------------------------------------------------------------------------------------------
// The register on the store.

interface EntryRow {
  register: string
  seq: number
  ts_ms: number
  kind: string
  actor: string
  case_id: string
  entry: string
  prev_hash: string
  hash: string
  signature: string
}

interface CheckpointRow {
  register: string
  size: number
  root: string
  ts_ms: number
  key_id: string
  signature: string
  countersignatures: string
  version: number
}

const ENTRY_COLUMNS = `register, seq, toUnixTimestamp64Milli(ts) AS ts_ms, kind, actor, case_id,
  entry, prev_hash, hash, signature`
const CHECKPOINT_COLUMNS = `register, size, root, toUnixTimestamp64Milli(ts) AS ts_ms, key_id,
  signature, countersignatures, version`

/**
 * The entry a stored row holds. A row whose `entry` is not an entry is shown as one built from
 * its other columns, marked unreadable, so that verification reports it as changed instead of
 * the read failing (its hash cannot match).
 */
function entryOfRow(row: EntryRow): RegisterEntry {
  // The signature is its own column: one written into the entry's JSON is not the entry's.
  const signature = row.signature ? { signature: row.signature } : {}
  try {
    const parsed: unknown = JSON.parse(row.entry)
    if (looksLikeEntry(parsed)) return { ...entryBody(parsed), ...signature }
  } catch {
    // fall through
  }
  return {
    register: row.register as RegisterName,
    seq: Number(row.seq),
    ts: new Date(Number(row.ts_ms)).toISOString(),
    kind: row.kind,
    actor: row.actor,
    ...(row.case_id === '' ? {} : { case_id: row.case_id }),
    details: { unreadable_entry: row.entry.slice(0, 200) },
    prev_hash: row.prev_hash,
    hash: row.hash,
    ...signature,
  }
}

export function looksLikeEntry(value: unknown): value is RegisterEntry {
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

function checkpointOfRow(row: CheckpointRow): SignedCheckpoint {
  let countersignatures: Countersignature[] = []
  try {
    const parsed: unknown = JSON.parse(row.countersignatures || '[]')
    if (Array.isArray(parsed)) countersignatures = parsed as Countersignature[]
  } catch {
    // An unreadable list verifies as no countersignatures; the signed head still stands.
  }
  return {
    register: row.register as RegisterName,
    size: Number(row.size),
    root: row.root,
    ts: new Date(Number(row.ts_ms)).toISOString(),
    key_id: row.key_id,
    signature: row.signature,
    countersignatures,
  }
}

/** Where a register's next entry goes and what the signed tree holds so far. */
interface Head {
  seq: number
  hash: string
}

interface TreeState {
  tree: MerkleTree
  lastHash: string
  /** The latest head signed over this tree (size <= tree.size), if any. */
  signed: SignedCheckpoint | undefined
}

export interface RegisterOptions {
  /** A checkpoint that could not be signed after an append (the entries themselves are written). */
  onCheckpointError?: (err: unknown, register: RegisterName) => void
  now?: () => number
}

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

export const MAX_PAGE = 10_000

/** The workflow's entry that issues a case's grants (collector/cases/workflow.ts). */
const GRANTS_ISSUED = 'grants_issued'

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

interface PendingAppend {
  input: Omit<RegisterEntryInput, 'register'>
  resolve: (entry: RegisterEntry) => void
  reject: (err: unknown) => void
}

export class Register {
  readonly #store: Store
  readonly #key: KeyObject
  readonly #publicKey: KeyObject
  readonly #publicJwk: Record<string, string>
  readonly #keyId: string
  readonly #onCheckpointError: (err: unknown, register: RegisterName) => void
  readonly #now: () => number
  readonly #locks = new Map<RegisterName, Mutex>()
  readonly #heads = new Map<RegisterName, Head>()
  readonly #trees = new Map<RegisterName, TreeState>()
  /** Appends waiting for the batch being written: they go together in the next one. */
  readonly #waiting = new Map<RegisterName, PendingAppend[]>()
  /** Entries from before entries were signed that a signed checkpoint covers: seq -> hash. */
  readonly #legacy = new Map<RegisterName, Promise<Map<number, string>>>()
  /** Registers whose refusal to sign (RegisterIntegrityError) was already told: told once. */
  readonly #refusalTold = new Set<RegisterName>()
  /** What the register says of a case, per register; emptied by every append to it. */
  readonly #caseRecords = new Map<RegisterName, Map<string, Promise<CaseOnRecord | undefined>>>()

  constructor(store: Store, signingKey: KeyObject, options: RegisterOptions = {}) {
    if (signingKey.type !== 'private' || signingKey.asymmetricKeyType !== 'ed25519') {
      throw new TypeError('the register signing key must be an Ed25519 private key')
    }
    this.#store = store
    this.#key = signingKey
    this.#publicKey = createPublicKey(signingKey)
    const jwk = this.#publicKey.export({ format: 'jwk' })
    const publicJwk: Record<string, string> = {}
    for (const [k, v] of Object.entries(jwk)) if (typeof v === 'string') publicJwk[k] = v
    this.#keyId = jwkThumbprint(publicJwk)
    this.#publicJwk = { ...publicJwk, alg: 'EdDSA', use: 'sig', kid: this.#keyId }
    this.#onCheckpointError = options.onCheckpointError ?? (() => undefined)
    this.#now = options.now ?? Date.now
  }

  publicKeyJwk(): Record<string, string> {
    return { ...this.#publicJwk }
  }

  #lock(register: RegisterName): Mutex {
    let lock = this.#locks.get(register)
    if (lock === undefined) {
      lock = new Mutex()
      this.#locks.set(register, lock)
    }
    return lock
  }

  /**
   * Appends an entry and returns it once it is stored and a checkpoint over it is signed.
   * Throws RegisterUnavailable (with the store's error as cause) when it cannot be written: the
   * caller must then not do what the entry records.
   *
   * Every append batch gets its own signed checkpoint, so no entry waits unsigned for a later
   * one (an unsigned tail is what a holder of the data directory could cut unnoticed). Appends
   * that arrive while a batch is being written go together into the next batch: one insert of
   * entries and one checkpoint however many callers wait.
   */
  async append(input: RegisterEntryInput): Promise<RegisterEntry> {
    const register = checkName(input.register)
    if (typeof input.kind !== 'string' || input.kind === '') throw new TypeError('kind is required')
    if (typeof input.actor !== 'string') throw new TypeError('actor must be a string')
    if (input.case_id !== undefined && typeof input.case_id !== 'string') {
      throw new TypeError('case_id must be a string')
    }
    if (
      typeof input.details !== 'object' ||
      input.details === null ||
      Array.isArray(input.details)
    ) {
      throw new TypeError('details must be an object')
    }
    // The JSON form of the details, as they will be hashed and read back (throws on NaN etc.).
    const details = JSON.parse(canonicalJson(input.details)) as { [k: string]: JsonValue }
    const { kind, actor, case_id } = input
    return new Promise<RegisterEntry>((resolve, reject) => {
      let waiting = this.#waiting.get(register)
      if (waiting === undefined) {
        waiting = []
        this.#waiting.set(register, waiting)
      }
      waiting.push({
        input: { kind, actor, ...(case_id === undefined ? {} : { case_id }), details },
        resolve,
        reject,
      })
      // The first to wait schedules the batch; the others ride along with it.
      if (waiting.length === 1) {
        this.#lock(register)
          .run(() => this.#writeBatch(register))
          .catch(() => undefined)
      }
    })
  }

  async #writeBatch(register: RegisterName): Promise<void> {
    const batch = this.#waiting.get(register)?.splice(0) ?? []
    if (batch.length === 0) return
    let entries: RegisterEntry[]
    try {
      entries = await this.#insertEntries(
        register,
        batch.map((p) => p.input),
      )
    } catch (err) {
      for (const p of batch) p.reject(err)
      return
    }
    try {
      await this.#checkpoint(register)
      this.#refusalTold.delete(register)
    } catch (err) {
      // A register that does not verify refuses at every append: one error line says it.
      const integrity = err instanceof RegisterIntegrityError
      if (!integrity || !this.#refusalTold.has(register)) this.#onCheckpointError(err, register)
      if (integrity) this.#refusalTold.add(register)
    }
    batch.forEach((p, i) => {
      p.resolve(entries[i] as RegisterEntry)
    })
  }

  async #insertEntries(
    register: RegisterName,
    inputs: Omit<RegisterEntryInput, 'register'>[],
  ): Promise<RegisterEntry[]> {
    let head: Head
    try {
      head = await this.#head(register)
    } catch (err) {
      throw new RegisterUnavailable(`register ${register}: cannot read its last entry`, {
        cause: err,
      })
    }
    const now = this.#now()
    const entries: RegisterEntry[] = []
    let previous = head
    for (const input of inputs) {
      const unsigned: Omit<RegisterEntry, 'hash'> = {
        register,
        seq: previous.seq + 1,
        ts: new Date(now).toISOString(),
        kind: input.kind,
        actor: input.actor,
        ...(input.case_id === undefined ? {} : { case_id: input.case_id }),
        details: input.details,
        prev_hash: previous.hash,
      }
      const hashed: RegisterEntry = { ...unsigned, hash: entryHash(unsigned) }
      // Signed in the same insert: an entry never exists without its signature.
      const entry: RegisterEntry = { ...hashed, signature: signEntry(hashed, this.#key) }
      entries.push(entry)
      previous = { seq: entry.seq, hash: entry.hash }
    }
    const first = entries[0]?.seq
    const last = entries.at(-1)?.seq
    try {
      await insertRows(
        this.#store,
        'tally.register_entries',
        entries.map((entry) => ({
          register,
          seq: entry.seq,
          ts: now,
          kind: entry.kind,
          actor: entry.actor,
          case_id: entry.case_id ?? '',
          entry: canonicalJson(entryBody(entry)),
          prev_hash: entry.prev_hash,
          hash: entry.hash,
          signature: entry.signature ?? '',
        })),
      )
    } catch (err) {
      // A failed insert may still have landed: what a case's entries say is read again.
      this.#caseRecords.delete(register)
      throw new RegisterUnavailable(
        `register ${register}: ${first === last ? `entry ${first}` : `entries ${first} to ${last}`} not written`,
        { cause: err },
      )
    }
    this.#heads.set(register, previous)
    // What the register says of a case may have changed: read it again next time.
    this.#caseRecords.delete(register)
    // The tree follows without reading back what this process just wrote, when it was in step.
    const state = this.#trees.get(register)
    if (state !== undefined && state.tree.size === head.seq && state.lastHash === head.hash) {
      for (const entry of entries) state.tree.push(leafHash(entry))
      state.lastHash = previous.hash
    }
    return entries
  }

  /**
   * The last entry: the store's, unless this process wrote a later one (a lagging replica, or a
   * truncated table, must not make the chain fork from an older entry; a truncation then shows
   * as removed entries).
   */
  async #head(register: RegisterName): Promise<Head> {
    const [row] = await selectRows<{ seq: number; hash: string }>(
      this.#store,
      `SELECT seq, hash FROM tally.register_entries WHERE register = {register:String}
       ORDER BY seq DESC LIMIT 1`,
      { register },
    )
    const stored: Head =
      row === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: Number(row.seq), hash: row.hash }
    const known = this.#heads.get(register)
    return known !== undefined && known.seq >= stored.seq ? known : stored
  }

  /** Entries in seq order (as stored), from `from` (default 1), at most `limit` (default 1000). */
  async entries(
    register: RegisterName,
    options: { from?: number; limit?: number; case_id?: string } = {},
  ): Promise<RegisterEntry[]> {
    return (await this.entriesPage(register, options)).entries
  }

  /**
   * A page of entries with the cursor for the next one. Rows sharing the last seq all come in
   * the same page, so a second row for one seq cannot hide between two pages.
   */
  async entriesPage(
    register: RegisterName,
    options: { from?: number; limit?: number; case_id?: string } = {},
  ): Promise<EntriesPage> {
    const { rows, next_from } = await this.#pageRows(register, options)
    return { entries: rows.map(entryOfRow), next_from }
  }

  async #pageRows(
    register: RegisterName,
    options: { from?: number; limit?: number; case_id?: string },
  ): Promise<{ rows: EntryRow[]; next_from: number | null }> {
    checkName(register)
    const from = Math.max(1, Math.floor(options.from ?? 1))
    const limit = Math.min(MAX_PAGE, Math.max(1, Math.floor(options.limit ?? 1000)))
    const byCase = options.case_id !== undefined
    const rows = await selectRows<EntryRow>(
      this.#store,
      `SELECT ${ENTRY_COLUMNS} FROM tally.register_entries
       WHERE register = {register:String} AND seq >= {from:UInt64}
         ${byCase ? 'AND case_id = {case_id:String}' : ''}
       ORDER BY seq LIMIT {limit:UInt32} WITH TIES`,
      { register, from, limit, case_id: options.case_id ?? '' },
    )
    const last = rows[rows.length - 1]
    return {
      rows,
      next_from: rows.length >= limit && last !== undefined ? Number(last.seq) + 1 : null,
    }
  }

  /**
   * A page of entries as entriesPage gives it, less every entry the collector did not write:
   * what anything that decides from the register (role reconciliation, guard settings, a case's
   * state) must read. An entry stays when its own signature verifies with the register key, or,
   * stored before entries were signed, when a checkpoint signed with that key covers it. The
   * cursor is the unfiltered page's.
   */
  async trustedEntriesPage(
    register: RegisterName,
    options: { from?: number; limit?: number } = {},
  ): Promise<EntriesPage> {
    const { rows, next_from } = await this.#pageRows(register, options)
    return { entries: await this.#trusted(register, rows), next_from }
  }

  /**
   * What the register's signed entries say of a case: the state its latest entry recorded and
   * its latest grants (window and agents). Undefined when no entry the collector wrote names the
   * case. One read of the case's entries (a skip index on case_id), kept until the next append
   * to this register.
   */
  caseOnRecord(register: RegisterName, caseId: string): Promise<CaseOnRecord | undefined> {
    checkName(register)
    let cache = this.#caseRecords.get(register)
    if (cache === undefined) {
      cache = new Map()
      this.#caseRecords.set(register, cache)
    }
    const cached = cache.get(caseId)
    if (cached !== undefined) return cached
    const read = this.#readCaseOnRecord(register, caseId)
    cache.set(caseId, read)
    // A failed read is not kept: the next call reads again.
    read.catch(() => this.#caseRecords.get(register)?.delete(caseId))
    return read
  }

  async #readCaseOnRecord(
    register: RegisterName,
    caseId: string,
  ): Promise<CaseOnRecord | undefined> {
    const rows = await selectRows<EntryRow>(
      this.#store,
      `SELECT ${ENTRY_COLUMNS} FROM tally.register_entries
       WHERE register = {register:String} AND case_id = {case_id:String}
       ORDER BY seq`,
      { register, case_id: caseId },
    )
    const entries = (await this.#trusted(register, rows)).filter((e) => e.case_id === caseId)
    let record: CaseOnRecord | undefined
    for (const entry of entries) {
      const state = entry.details.state
      if (typeof state !== 'string') continue
      record = { ...record, state, seq: entry.seq, kind: entry.kind }
      if (entry.kind === GRANTS_ISSUED) {
        const window = entry.details.window as { start?: unknown; end?: unknown } | undefined
        const agents = entry.details.agents
        record.grants = {
          start: typeof window?.start === 'string' ? window.start : '',
          end: typeof window?.end === 'string' ? window.end : '',
          agents: Array.isArray(agents) ? agents.map(String) : [],
        }
      }
    }
    return record
  }

  /**
   * The entries of these rows that the collector wrote (see trustedEntriesPage), each where it
   * was written: an entry copied into a row of another seq, register or case is not taken.
   */
  async #trusted(register: RegisterName, rows: EntryRow[]): Promise<RegisterEntry[]> {
    const legacy = rows.some((r) => r.signature === '') ? await this.#legacyCovered(register) : null
    const out: RegisterEntry[] = []
    for (const row of rows) {
      const e = entryOfRow(row)
      if (e.register !== register || e.seq !== Number(row.seq)) continue
      if ((e.case_id ?? '') !== row.case_id) continue
      const written = e.signature
        ? entrySignatureValid(e, this.#publicKey)
        : legacy?.get(e.seq) === e.hash && entryHash(e) === e.hash
      if (written) out.push(e)
    }
    return out
  }

  /**
   * The entries stored before entries were signed (migration 013) that a checkpoint signed with
   * this key covers, seq -> hash: the chain from the first entry, one entry per seq chosen by its
   * link, must give the checkpoint's root. Worked out once per process: no unsigned entry is
   * ever written again, so the set cannot grow.
   */
  #legacyCovered(register: RegisterName): Promise<Map<number, string>> {
    let found = this.#legacy.get(register)
    if (found === undefined) {
      found = this.#readLegacyCovered(register)
      this.#legacy.set(register, found)
      found.catch(() => this.#legacy.delete(register))
    }
    return found
  }

  async #readLegacyCovered(register: RegisterName): Promise<Map<number, string>> {
    const covered = new Map<number, string>()
    const [count] = await selectRows<{ n: number }>(
      this.#store,
      `SELECT count() AS n FROM tally.register_entries
       WHERE register = {register:String} AND signature = ''`,
      { register },
    )
    if (Number(count?.n ?? 0) === 0) return covered
    const own = (await this.checkpoints(register))
      .filter(
        (cp) =>
          cp.key_id === this.#keyId && checkpointSignatureValid(cp, cp.signature, this.#publicKey),
      )
      .sort((a, b) => b.size - a.size)
    const largest = own[0]?.size ?? 0
    if (largest === 0) return covered
    const tree = new MerkleTree()
    const unsigned = new Map<number, string>()
    let lastHash = GENESIS_HASH
    let seq = 1
    chain: while (seq <= largest) {
      const rows = await selectRows<EntryRow>(
        this.#store,
        `SELECT ${ENTRY_COLUMNS} FROM tally.register_entries
         WHERE register = {register:String} AND seq >= {from:UInt64} AND seq <= {to:UInt64}
         ORDER BY seq LIMIT {limit:UInt32} WITH TIES`,
        { register, from: seq, to: largest, limit: MAX_PAGE },
      )
      if (rows.length === 0) break
      for (let i = 0; i < rows.length; ) {
        const at = Number((rows[i] as EntryRow).seq)
        if (at !== seq) break chain
        let chosen: { row: EntryRow; entry: RegisterEntry } | undefined
        for (; i < rows.length && Number((rows[i] as EntryRow).seq) === at; i++) {
          const row = rows[i] as EntryRow
          const entry = entryOfRow(row)
          if (
            chosen === undefined &&
            entry.seq === at &&
            entry.register === register &&
            canonicalJson(entryBody(entry)) === row.entry &&
            entryHash(entry) === entry.hash &&
            entry.hash === row.hash &&
            entry.prev_hash === lastHash
          ) {
            chosen = { row, entry }
          }
        }
        if (chosen === undefined) break chain
        tree.push(leafHashOfText(chosen.row.entry))
        if (chosen.row.signature === '') unsigned.set(at, chosen.entry.hash)
        lastHash = chosen.entry.hash
        seq++
      }
      if (rows.length < MAX_PAGE) break
    }
    const head = own.find((cp) => cp.size <= tree.size && tree.root(cp.size) === cp.root)
    if (head === undefined) return covered
    for (const [at, hash] of unsigned) if (at <= head.size) covered.set(at, hash)
    return covered
  }

  /**
   * Checks what is stored as a checkpoint would (the chain, each entry's signature, the latest
   * signed head): throws RegisterIntegrityError when the register would refuse to sign.
   */
  async checkStored(register: RegisterName): Promise<void> {
    checkName(register)
    try {
      await this.#lock(register).run(() => this.#state(register))
    } catch (err) {
      // The caller tells it; the appends that follow do not tell it again.
      if (err instanceof RegisterIntegrityError) this.#refusalTold.add(register)
      throw err
    }
  }

  /** Signs and stores the current tree head, or returns the checkpoint already at this size. */
  async checkpoint(register: RegisterName): Promise<SignedCheckpoint> {
    checkName(register)
    return this.#lock(register).run(() => this.#checkpoint(register))
  }

  /**
   * The latest signed head and, for a verifier that kept the head at `keptSize`, the proof that
   * it extends that one. What agents get with their grants poll and auditors with
   * `tally register verify`. When `keptSize` is above the head (the register was cut below
   * what the verifier saw) there is no proof to give: the head goes out with none, and its size
   * tells the verifier.
   */
  async signedHead(
    register: RegisterName,
    keptSize?: number,
  ): Promise<{ head: SignedCheckpoint | undefined; proof: string[] }> {
    checkName(register)
    return this.#lock(register).run(async () => {
      const state = await this.#state(register)
      const head = state.signed
      if (keptSize === undefined || head === undefined || keptSize > head.size) {
        return { head, proof: [] }
      }
      return { head, proof: proveConsistency(register, state.tree, keptSize, head.size) }
    })
  }

  /** RFC 6962 PROOF(from, D[to]) over the register's entries; `to` defaults to the signed head. */
  async consistency(register: RegisterName, from: number, to?: number): Promise<ConsistencyProof> {
    checkName(register)
    return this.#lock(register).run(async () => {
      const state = await this.#state(register)
      const size = to ?? state.signed?.size ?? state.tree.size
      return {
        register,
        from,
        to: size,
        proof: proveConsistency(register, state.tree, from, size),
      }
    })
  }

  /** The verified tree, brought up to what is stored. */
  async #state(register: RegisterName): Promise<TreeState> {
    try {
      return await this.#extendTree(register)
    } catch (err) {
      if (err instanceof RegisterIntegrityError) throw err
      throw new RegisterUnavailable(`register ${register}: cannot read its entries`, { cause: err })
    }
  }

  async #checkpoint(register: RegisterName): Promise<SignedCheckpoint> {
    const state = await this.#state(register)
    const size = state.tree.size
    const root = state.tree.root()
    if (state.signed?.size === size && state.signed.root === root) return state.signed
    try {
      const existing = await this.#checkpointAt(register, size)
      if (existing !== undefined) {
        // A head already signed at this size over other entries: the entries were replaced.
        if (existing.checkpoint.root !== root) {
          throw new RegisterIntegrityError(
            size,
            `register ${register}: the checkpoint stored at size ${size} signs another root ` +
              'than the entries give; no checkpoint is signed over them: run `tally register verify`',
          )
        }
        state.signed = existing.checkpoint
        return existing.checkpoint
      }
      const now = this.#now()
      const head = { register, size, root, ts: new Date(now).toISOString() }
      const checkpoint: SignedCheckpoint = {
        ...head,
        key_id: this.#keyId,
        signature: signCheckpointBytes(head, this.#key),
        countersignatures: [],
      }
      await insertRows(this.#store, 'tally.register_checkpoints', [
        { ...checkpointRow(checkpoint, now), version: now },
      ])
      state.signed = checkpoint
      return checkpoint
    } catch (err) {
      if (err instanceof RegisterIntegrityError) throw err
      throw new RegisterUnavailable(`register ${register}: the checkpoint was not stored`, {
        cause: err,
      })
    }
  }

  /**
   * Adds the entries stored since the tree was last extended, checking each one first: a
   * checkpoint signs only a chain that verifies, or it would vouch for a tampered register.
   * Each entry must carry the register key's own signature; one stored before entries were
   * signed (migration 013) only under the latest checkpoint this key signed. The first time (a
   * restart), the tree must also give the root of that checkpoint: entries under a signed head
   * that are gone or changed stop the register from signing anything over them.
   */
  async #extendTree(register: RegisterName): Promise<TreeState> {
    const known = this.#trees.get(register)
    const state: TreeState = known ?? {
      tree: new MerkleTree(),
      lastHash: GENESIS_HASH,
      signed: undefined,
    }
    const tree = state.tree
    let lastHash = state.lastHash
    const pending: { leaf: Buffer; hash: string }[] = []
    const refuse = (at: number, why: string): never => {
      throw new RegisterIntegrityError(
        at,
        `register ${register} does not verify at entry ${at} (${why}); ` +
          'no checkpoint is signed over it: run `tally register verify`',
      )
    }
    /** The entries stored without a signature, and the first whose signature is not the key's. */
    const unsigned: number[] = []
    let badSignature: number | undefined
    for (;;) {
      const from = tree.size + pending.length + 1
      const rows = await selectRows<EntryRow>(
        this.#store,
        `SELECT ${ENTRY_COLUMNS} FROM tally.register_entries
         WHERE register = {register:String} AND seq >= {from:UInt64}
         ORDER BY seq LIMIT {limit:UInt32} WITH TIES`,
        { register, from, limit: MAX_PAGE },
      )
      let expected = from
      for (const row of rows) {
        const entry = entryOfRow(row)
        const seq = Number(row.seq)
        if (seq < expected) refuse(seq, 'a second row for one seq')
        if (seq > expected) refuse(expected, 'missing')
        if (entry.seq !== seq || entry.register !== register)
          refuse(seq, 'the row and its entry disagree')
        if (canonicalJson(entryBody(entry)) !== row.entry)
          refuse(seq, 'the stored entry is not canonical')
        if (entryHash(entry) !== entry.hash || entry.hash !== row.hash) refuse(seq, 'its hash')
        if (entry.prev_hash !== lastHash) refuse(seq, 'its link to the entry before')
        if (row.signature !== '') {
          if (!entrySignatureValid(entry, this.#publicKey)) badSignature ??= seq
        } else {
          unsigned.push(seq)
        }
        pending.push({ leaf: leafHashOfText(row.entry), hash: entry.hash })
        lastHash = entry.hash
        expected++
      }
      if (rows.length < MAX_PAGE) break
    }
    let signed = state.signed
    if (known === undefined) {
      // Checked on a scratch tree: a refused load leaves nothing cached, so it is refused again.
      const candidate = new MerkleTree(pending.map((p) => p.leaf))
      signed = await this.#latestOwnCheckpoint(register, candidate)
    }
    // Unsigned entries stand only under a head this key signed (those from before migration
    // 013); beyond it they are someone else's, appended with a hash chain that needs no key.
    const uncovered = unsigned.find((seq) => seq > (signed?.size ?? 0))
    if (uncovered !== undefined && (badSignature === undefined || uncovered < badSignature)) {
      refuse(uncovered, 'it carries no signature and no signed checkpoint covers it')
    }
    if (badSignature !== undefined) {
      refuse(badSignature, 'its signature does not verify with the register key')
    }
    state.signed = signed
    // Only a fully checked batch joins the cached tree.
    for (const p of pending) tree.push(p.leaf)
    state.lastHash = lastHash
    this.#trees.set(register, state)
    return state
  }

  /** The latest checkpoint this key signed, which the entries must still give. */
  async #latestOwnCheckpoint(
    register: RegisterName,
    tree: MerkleTree,
  ): Promise<SignedCheckpoint | undefined> {
    const [row] = await selectRows<CheckpointRow>(
      this.#store,
      `SELECT ${CHECKPOINT_COLUMNS} FROM tally.register_checkpoints FINAL
       WHERE register = {register:String} AND key_id = {key_id:String}
       ORDER BY size DESC LIMIT 1`,
      { register, key_id: this.#keyId },
    )
    if (row === undefined) return undefined
    const latest = checkpointOfRow(row)
    if (!checkpointSignatureValid(latest, latest.signature, this.#publicJwk)) {
      throw new RegisterIntegrityError(
        latest.size,
        `register ${register}: the latest checkpoint (size ${latest.size}) does not verify ` +
          'with the register key; nothing is signed: run `tally register verify`',
      )
    }
    if (latest.size > tree.size) {
      throw new RegisterIntegrityError(
        tree.size + 1,
        `register ${register}: a checkpoint was signed at size ${latest.size} but only ` +
          `${tree.size} entries are stored (entries ${tree.size + 1} to ${latest.size} were ` +
          'removed); nothing is signed over them: run `tally register verify`',
      )
    }
    if (tree.root(latest.size) !== latest.root) {
      throw new RegisterIntegrityError(
        latest.size,
        `register ${register}: the entries no longer give the root signed at size ` +
          `${latest.size} (they were rewritten); nothing is signed over them: run ` +
          '`tally register verify`',
      )
    }
    return latest
  }

  async #checkpointAt(
    register: RegisterName,
    size: number,
  ): Promise<{ checkpoint: SignedCheckpoint; version: number } | undefined> {
    const [row] = await selectRows<CheckpointRow>(
      this.#store,
      `SELECT ${CHECKPOINT_COLUMNS} FROM tally.register_checkpoints FINAL
       WHERE register = {register:String} AND size = {size:UInt64}`,
      { register, size },
    )
    return row === undefined
      ? undefined
      : { checkpoint: checkpointOfRow(row), version: Number(row.version) }
  }

  async checkpoints(register: RegisterName): Promise<SignedCheckpoint[]> {
    checkName(register)
    const rows = await selectRows<CheckpointRow>(
      this.#store,
      `SELECT ${CHECKPOINT_COLUMNS} FROM tally.register_checkpoints FINAL
       WHERE register = {register:String} ORDER BY size`,
      { register },
    )
    return rows.map(checkpointOfRow)
  }

  /**
   * Adds a countersignature: `signature` must be `publicKeyJwk`'s Ed25519 signature over the
   * same canonical bytes the register signed. A key that already countersigned is kept once.
   */
  async countersign(
    register: RegisterName,
    size: number,
    by: string,
    publicKeyJwk: JsonWebKey,
    signature: string,
  ): Promise<SignedCheckpoint> {
    checkName(register)
    return this.#lock(register).run(async () => {
      const found = await this.#checkpointAt(register, size)
      if (found === undefined) {
        throw new CheckpointNotFound(`register ${register} has no checkpoint at size ${size}`)
      }
      let key: KeyObject
      try {
        key = ed25519PublicKey(publicKeyJwk)
      } catch (err) {
        throw new BadCountersignature(
          `the public key is not an Ed25519 JWK: ${(err as Error).message}`,
        )
      }
      const { checkpoint } = found
      if (!checkpointSignatureValid(checkpoint, signature, key)) {
        throw new BadCountersignature(
          `the signature does not verify with the given key over checkpoint ${register}/${size}`,
        )
      }
      const x = String(key.export({ format: 'jwk' }).x)
      if (checkpoint.countersignatures.some((cs) => cs.key === x)) return checkpoint
      const now = this.#now()
      const updated: SignedCheckpoint = {
        ...checkpoint,
        countersignatures: [
          ...checkpoint.countersignatures,
          { by, key: x, signature, ts: new Date(now).toISOString() },
        ],
      }
      await insertRows(this.#store, 'tally.register_checkpoints', [
        {
          ...checkpointRow(updated, Date.parse(checkpoint.ts)),
          version: Math.max(now, found.version + 1),
        },
      ])
      return updated
    })
  }

  /**
   * Verifies what is stored, reading every column: the entries' own check (verifyEntries) plus
   * whether the index columns still say what the entry says.
   */
  async verify(register: RegisterName): Promise<VerifyReport> {
    checkName(register)
    const rows = await selectRows<EntryRow>(
      this.#store,
      `SELECT ${ENTRY_COLUMNS} FROM tally.register_entries
       WHERE register = {register:String} ORDER BY seq`,
      { register },
    )
    const entries = rows.map(entryOfRow)
    const columnProblems: VerifyProblem[] = []
    rows.forEach((row, i) => {
      const e = entries[i] as RegisterEntry
      const differ: string[] = []
      if (row.register !== e.register) differ.push('register')
      if (row.kind !== e.kind) differ.push('kind')
      if (row.actor !== e.actor) differ.push('actor')
      if (row.case_id !== (e.case_id ?? '')) differ.push('case_id')
      if (row.prev_hash !== e.prev_hash) differ.push('prev_hash')
      if (row.hash !== e.hash) differ.push('hash')
      if (Number(row.ts_ms) !== Date.parse(e.ts)) differ.push('ts')
      if (differ.length > 0) {
        columnProblems.push({
          seq: e.seq,
          kind: 'changed',
          message: `entry ${e.seq}: the stored ${differ.join(', ')} column(s) no longer say what the entry says`,
        })
      }
      if (Number(row.seq) !== e.seq) {
        columnProblems.push({
          seq: e.seq,
          kind: 'reordered',
          message: `entry ${e.seq} is stored under seq ${row.seq}`,
        })
      }
    })
    const report = verifyEntries(
      entries,
      await this.checkpoints(register),
      this.#publicJwk,
      register,
    )
    const problems = [...report.problems, ...columnProblems].sort((a, b) => a.seq - b.seq)
    return { ...report, ok: problems.length === 0, problems }
  }
}

function checkpointRow(checkpoint: SignedCheckpoint, tsMs: number): Record<string, unknown> {
  return {
    register: checkpoint.register,
    size: checkpoint.size,
    root: checkpoint.root,
    ts: tsMs,
    key_id: checkpoint.key_id,
    signature: checkpoint.signature,
    countersignatures: JSON.stringify(checkpoint.countersignatures),
  }
}

function proveConsistency(
  register: RegisterName,
  tree: MerkleTree,
  from: number,
  to: number,
): string[] {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
    throw new SizeBeyondHead(`register ${register}: no consistency proof from ${from} to ${to}`)
  }
  if (to > tree.size) {
    throw new SizeBeyondHead(`register ${register} has ${tree.size} entries, no tree of size ${to}`)
  }
  return tree.consistencyProof(from, to)
}

function checkName(register: string): RegisterName {
  if (!isRegisterName(register)) throw new TypeError(`no register ${register}`)
  return register
}

/** Where the register's signing key lives: its own key, not the grant-signing key. */
export const REGISTER_KEY_FILE = 'register-signing-key.pem'
