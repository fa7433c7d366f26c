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
 *
 * This file is the facade the rest of the collector uses; the parts are model.ts (the types),
 * signing.ts (bytes, hashes, signatures), chain.ts (the chain, its tree and signed heads),
 * trust.ts (which stored entries the collector wrote), verify.ts (the full check) and
 * repository.ts (the tables).
 */
import type { KeyObject } from 'node:crypto'
import { KeyedMutex } from '../../common/mutex.ts'
import {
  canonicalJson,
  checkpointSignatureValid,
  ed25519PublicKey,
} from '../../common/register-head.ts'
import { MAX_PAGE } from '../../protocol/api/names.ts'
import type { Store } from '../store/client.ts'
import { proveConsistency, SignedChain } from './chain.ts'
import { BadCountersignature, CheckpointNotFound, RegisterIntegrityError } from './errors.ts'
import {
  type CaseOnRecord,
  type ConsistencyProof,
  checkName,
  type EntriesPage,
  type JsonValue,
  type RegisterEntry,
  type RegisterEntryInput,
  type RegisterName,
  type SignedCheckpoint,
  type VerifyReport,
} from './model.ts'
import { RegisterRepository } from './repository.ts'
import { type JsonWebKey, RegisterKey } from './signing.ts'
import { TrustedEntries } from './trust.ts'
import { columnProblems, verifyEntries } from './verify.ts'

export { EMPTY_ROOT, MerkleTree } from '../../common/merkle.ts'
export {
  canonicalJson,
  checkpointBytes,
  checkpointSignatureValid,
  ed25519PublicKey,
  type PublicKeyInput,
} from '../../common/register-head.ts'
export {
  BadCountersignature,
  CheckpointNotFound,
  RegisterIntegrityError,
  RegisterUnavailable,
  SizeBeyondHead,
} from './errors.ts'
export * from './model.ts'
export {
  entryHash,
  entrySignatureValid,
  entrySignedBytes,
  type JsonWebKey,
  jwkThumbprint,
  leafHash,
  signCheckpointBytes,
  signEntry,
} from './signing.ts'
export { verifyEntries } from './verify.ts'

export interface RegisterOptions {
  /** A checkpoint that could not be signed after an append (the entries themselves are written). */
  onCheckpointError?: (err: unknown, register: RegisterName) => void
  now?: () => number
}

interface PendingAppend {
  input: Omit<RegisterEntryInput, 'register'>
  resolve: (entry: RegisterEntry) => void
  reject: (err: unknown) => void
}

/** A query's parameters: undefined is a parameter the query left out. */
type PageOptions = {
  from?: number | undefined
  limit?: number | undefined
  case_id?: string | undefined
}

export class Register {
  readonly #repository: RegisterRepository
  readonly #key: RegisterKey
  readonly #chain: SignedChain
  readonly #trusted: TrustedEntries
  readonly #onCheckpointError: (err: unknown, register: RegisterName) => void
  readonly #now: () => number
  /** One lock per register: its next seq and its tree are read then written. */
  readonly #locks = new KeyedMutex<RegisterName>()
  /** Appends waiting for the batch being written: they go together in the next one. */
  readonly #waiting = new Map<RegisterName, PendingAppend[]>()
  /** Registers whose refusal to sign (RegisterIntegrityError) was already told: told once. */
  readonly #refusalTold = new Set<RegisterName>()

  constructor(store: Store, signingKey: KeyObject, options: RegisterOptions = {}) {
    this.#key = new RegisterKey(signingKey)
    this.#now = options.now ?? Date.now
    this.#repository = new RegisterRepository(store)
    this.#chain = new SignedChain(this.#repository, this.#key, this.#now)
    this.#trusted = new TrustedEntries(this.#repository, this.#key)
    this.#onCheckpointError = options.onCheckpointError ?? (() => undefined)
  }

  publicKeyJwk(): Record<string, string> {
    return { ...this.#key.publicJwk }
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
    const pending = pendingInput(input)
    return new Promise<RegisterEntry>((resolve, reject) => {
      let waiting = this.#waiting.get(register)
      if (waiting === undefined) {
        waiting = []
        this.#waiting.set(register, waiting)
      }
      waiting.push({ input: pending, resolve, reject })
      // The first to wait schedules the batch; the others ride along with it.
      if (waiting.length === 1) {
        this.#locks.run(register, () => this.#writeBatch(register)).catch(() => undefined)
      }
    })
  }

  async #writeBatch(register: RegisterName): Promise<void> {
    const batch = this.#waiting.get(register)?.splice(0) ?? []
    if (batch.length === 0) return
    let entries: RegisterEntry[]
    try {
      entries = await this.#chain.write(
        register,
        batch.map((p) => p.input),
      )
    } catch (err) {
      for (const p of batch) p.reject(err)
      return
    } finally {
      // What the register says of a case may have changed (a failed insert may still have
      // landed): read it again next time.
      this.#trusted.forgetCases(register)
    }
    try {
      await this.#chain.checkpoint(register)
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

  /** Entries in seq order (as stored), from `from` (default 1), at most `limit` (default 1000). */
  async entries(register: RegisterName, options: PageOptions = {}): Promise<RegisterEntry[]> {
    return (await this.entriesPage(register, options)).entries
  }

  /**
   * A page of entries with the cursor for the next one. Rows sharing the last seq all come in
   * the same page, so a second row for one seq cannot hide between two pages.
   */
  async entriesPage(register: RegisterName, options: PageOptions = {}): Promise<EntriesPage> {
    const { stored, next_from } = await this.#page(register, options)
    return { entries: stored.map((s) => s.entry), next_from }
  }

  async #page(register: RegisterName, options: PageOptions) {
    checkName(register)
    const from = Math.max(1, Math.floor(options.from ?? 1))
    const limit = Math.min(MAX_PAGE, Math.max(1, Math.floor(options.limit ?? 1000)))
    const stored = await this.#repository.entries(register, {
      from,
      limit,
      ...(options.case_id === undefined ? {} : { caseId: options.case_id }),
    })
    const last = stored.at(-1)
    const next_from = stored.length >= limit && last !== undefined ? last.seq + 1 : null
    return { stored, next_from }
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
    const { stored, next_from } = await this.#page(register, options)
    return { entries: await this.#trusted.of(register, stored), next_from }
  }

  /**
   * What the register's signed entries say of a case: the state its latest entry recorded and
   * its latest grants (window and agents). Undefined when no entry the collector wrote names the
   * case. Kept until the next append to this register.
   */
  caseOnRecord(register: RegisterName, caseId: string): Promise<CaseOnRecord | undefined> {
    checkName(register)
    return this.#trusted.caseOnRecord(register, caseId)
  }

  /**
   * Checks what is stored as a checkpoint would (the chain, each entry's signature, the latest
   * signed head): throws RegisterIntegrityError when the register would refuse to sign.
   */
  async checkStored(register: RegisterName): Promise<void> {
    checkName(register)
    try {
      await this.#locks.run(register, () => this.#chain.state(register))
    } catch (err) {
      // The caller tells it; the appends that follow do not tell it again.
      if (err instanceof RegisterIntegrityError) this.#refusalTold.add(register)
      throw err
    }
  }

  /** Signs and stores the current tree head, or returns the checkpoint already at this size. */
  async checkpoint(register: RegisterName): Promise<SignedCheckpoint> {
    checkName(register)
    return this.#locks.run(register, () => this.#chain.checkpoint(register))
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
    return this.#locks.run(register, async () => {
      const state = await this.#chain.state(register)
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
    return this.#locks.run(register, async () => {
      const state = await this.#chain.state(register)
      const size = to ?? state.signed?.size ?? state.tree.size
      return { register, from, to: size, proof: proveConsistency(register, state.tree, from, size) }
    })
  }

  async checkpoints(register: RegisterName): Promise<SignedCheckpoint[]> {
    checkName(register)
    return this.#repository.checkpoints(register)
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
    return this.#locks.run(register, async () => {
      const found = await this.#repository.checkpointAt(register, size)
      if (found === undefined) {
        throw new CheckpointNotFound(`register ${register} has no checkpoint at size ${size}`)
      }
      const { checkpoint } = found
      const x = countersignerKey(checkpoint, publicKeyJwk, signature)
      if (checkpoint.countersignatures.some((cs) => cs.key === x)) return checkpoint
      const now = this.#now()
      const updated: SignedCheckpoint = {
        ...checkpoint,
        countersignatures: [
          ...checkpoint.countersignatures,
          { by, key: x, signature, ts: new Date(now).toISOString() },
        ],
      }
      await this.#repository.saveCheckpoint(
        updated,
        Date.parse(checkpoint.ts),
        Math.max(now, found.version + 1),
      )
      return updated
    })
  }

  /**
   * Verifies what is stored, reading every column: the entries' own check (verifyEntries) plus
   * whether the index columns still say what the entry says.
   */
  async verify(register: RegisterName): Promise<VerifyReport> {
    checkName(register)
    const stored = await this.#repository.entries(register, { from: 0 })
    const report = await verifyEntries(
      stored.map((s) => s.entry),
      await this.checkpoints(register),
      this.#key.publicJwk,
      register,
    )
    const problems = [...report.problems, ...columnProblems(stored)].sort((a, b) => a.seq - b.seq)
    return { ...report, ok: problems.length === 0, problems }
  }
}

/** An append's input, checked, with its details in the JSON form they are hashed and read in. */
function pendingInput(input: RegisterEntryInput): Omit<RegisterEntryInput, 'register'> {
  if (typeof input.kind !== 'string' || input.kind === '') throw new TypeError('kind is required')
  if (typeof input.actor !== 'string') throw new TypeError('actor must be a string')
  if (input.case_id !== undefined && typeof input.case_id !== 'string') {
    throw new TypeError('case_id must be a string')
  }
  if (typeof input.details !== 'object' || input.details === null || Array.isArray(input.details)) {
    throw new TypeError('details must be an object')
  }
  // Throws on what has no JSON form (NaN etc.).
  const details = JSON.parse(canonicalJson(input.details)) as { [k: string]: JsonValue }
  const { kind, actor, case_id } = input
  return { kind, actor, ...(case_id === undefined ? {} : { case_id }), details }
}

/**
 * The countersigner's public key (its JWK `x`) once its signature over the checkpoint verifies;
 * BadCountersignature otherwise.
 */
function countersignerKey(
  checkpoint: SignedCheckpoint,
  publicKeyJwk: JsonWebKey,
  signature: string,
): string {
  let key: KeyObject
  try {
    key = ed25519PublicKey(publicKeyJwk)
  } catch (err) {
    throw new BadCountersignature(`the public key is not an Ed25519 JWK: ${(err as Error).message}`)
  }
  if (!checkpointSignatureValid(checkpoint, signature, key)) {
    throw new BadCountersignature(
      `the signature does not verify with the given key over checkpoint ${checkpoint.register}/${checkpoint.size}`,
    )
  }
  return String(key.export({ format: 'jwk' }).x)
}
