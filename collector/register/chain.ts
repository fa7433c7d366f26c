/**
 * The register's hash chain and Merkle tree as this process holds them: where the next entry
 * goes, the tree of the stored entries (each checked before it joins), the signed heads over it
 * and the consistency proofs between them. A checkpoint signs only a chain that verifies, or it
 * would vouch for a tampered register.
 */
import { MerkleTree } from '../../common/merkle.ts'
import { canonicalJson, checkpointSignatureValid } from '../../common/register-head.ts'
import { MAX_PAGE } from '../../protocol/api/names.ts'
import { RegisterIntegrityError, RegisterUnavailable, SizeBeyondHead } from './errors.ts'
import {
  entryBody,
  GENESIS_HASH,
  type RegisterEntry,
  type RegisterEntryInput,
  type RegisterName,
  type SignedCheckpoint,
} from './model.ts'
import type { RegisterRepository, StoredEntry } from './repository.ts'
import {
  entryHash,
  entrySignatureValid,
  leafHash,
  leafHashOfText,
  type RegisterKey,
  signCheckpointBytes,
  signEntry,
} from './signing.ts'

/** The last entry of a chain: where the next one goes. */
interface Head {
  seq: number
  hash: string
}

/** The verified tree of a register and the latest head signed over it. */
export interface TreeState {
  tree: MerkleTree
  lastHash: string
  /** The latest head signed over this tree (size <= tree.size), if any. */
  signed: SignedCheckpoint | undefined
}

/**
 * Why a stored entry cannot be the chain's entry `expected` after `lastHash`, or undefined when
 * it can: one row per seq, the row and its entry agreeing, canonical, hashed and linked.
 */
export function linkProblem(
  stored: StoredEntry,
  register: RegisterName,
  expected: number,
  lastHash: string,
): { at: number; why: string } | undefined {
  const { entry, seq } = stored
  if (seq < expected) return { at: seq, why: 'a second row for one seq' }
  if (seq > expected) return { at: expected, why: 'missing' }
  if (entry.seq !== seq || entry.register !== register) {
    return { at: seq, why: 'the row and its entry disagree' }
  }
  if (canonicalJson(entryBody(entry)) !== stored.text) {
    return { at: seq, why: 'the stored entry is not canonical' }
  }
  if (entryHash(entry) !== entry.hash || entry.hash !== stored.hash) {
    return { at: seq, why: 'its hash' }
  }
  if (entry.prev_hash !== lastHash) return { at: seq, why: 'its link to the entry before' }
  return undefined
}

/** Entries read beyond the tree, all checked, not yet joined to it. */
interface Extension {
  leaves: Buffer[]
  lastHash: string
  /** The entries stored without a signature. */
  unsigned: number[]
  /** The first entry whose signature is not the register key's. */
  badSignature: number | undefined
}

export class SignedChain {
  readonly #repository: RegisterRepository
  readonly #key: RegisterKey
  readonly #now: () => number
  readonly #heads = new Map<RegisterName, Head>()
  readonly #trees = new Map<RegisterName, TreeState>()

  constructor(repository: RegisterRepository, key: RegisterKey, now: () => number) {
    this.#repository = repository
    this.#key = key
    this.#now = now
  }

  /**
   * Hashes, signs and stores the entries after the chain's head, in one insert. Throws
   * RegisterUnavailable when they cannot be written.
   */
  async write(
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
    const entries = this.#entriesAfter(register, head, inputs, now)
    try {
      await this.#repository.insertEntries(register, now, entries)
    } catch (err) {
      const first = entries[0]?.seq
      const last = entries.at(-1)?.seq
      throw new RegisterUnavailable(
        `register ${register}: ${first === last ? `entry ${first}` : `entries ${first} to ${last}`} not written`,
        { cause: err },
      )
    }
    const last = entries.at(-1) as RegisterEntry
    this.#heads.set(register, { seq: last.seq, hash: last.hash })
    // The tree follows without reading back what this process just wrote, when it was in step.
    const state = this.#trees.get(register)
    if (state !== undefined && state.tree.size === head.seq && state.lastHash === head.hash) {
      for (const entry of entries) state.tree.push(leafHash(entry))
      state.lastHash = last.hash
    }
    return entries
  }

  #entriesAfter(
    register: RegisterName,
    head: Head,
    inputs: Omit<RegisterEntryInput, 'register'>[],
    now: number,
  ): RegisterEntry[] {
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
      const entry: RegisterEntry = { ...hashed, signature: signEntry(hashed, this.#key.private) }
      entries.push(entry)
      previous = { seq: entry.seq, hash: entry.hash }
    }
    return entries
  }

  /**
   * The last entry: the store's, unless this process wrote a later one (a lagging replica, or a
   * truncated table, must not make the chain fork from an older entry; a truncation then shows
   * as removed entries).
   */
  async #head(register: RegisterName): Promise<Head> {
    const stored = (await this.#repository.lastEntry(register)) ?? { seq: 0, hash: GENESIS_HASH }
    const known = this.#heads.get(register)
    return known !== undefined && known.seq >= stored.seq ? known : stored
  }

  /** The verified tree, brought up to what is stored. */
  async state(register: RegisterName): Promise<TreeState> {
    try {
      return await this.#extendTree(register)
    } catch (err) {
      if (err instanceof RegisterIntegrityError) throw err
      throw new RegisterUnavailable(`register ${register}: cannot read its entries`, { cause: err })
    }
  }

  /** Signs and stores the current tree head, or returns the checkpoint already at this size. */
  async checkpoint(register: RegisterName): Promise<SignedCheckpoint> {
    const state = await this.state(register)
    const size = state.tree.size
    const root = state.tree.root()
    if (state.signed?.size === size && state.signed.root === root) return state.signed
    try {
      state.signed = await this.#signedAt(register, size, root)
      return state.signed
    } catch (err) {
      if (err instanceof RegisterIntegrityError) throw err
      throw new RegisterUnavailable(`register ${register}: the checkpoint was not stored`, {
        cause: err,
      })
    }
  }

  async #signedAt(register: RegisterName, size: number, root: string): Promise<SignedCheckpoint> {
    const existing = await this.#repository.checkpointAt(register, size)
    if (existing !== undefined) {
      // A head already signed at this size over other entries: the entries were replaced.
      if (existing.checkpoint.root !== root) {
        throw new RegisterIntegrityError(
          size,
          `register ${register}: the checkpoint stored at size ${size} signs another root ` +
            'than the entries give; no checkpoint is signed over them: run `tally register verify`',
        )
      }
      return existing.checkpoint
    }
    const now = this.#now()
    const head = { register, size, root, ts: new Date(now).toISOString() }
    const checkpoint: SignedCheckpoint = {
      ...head,
      key_id: this.#key.id,
      signature: signCheckpointBytes(head, this.#key.private),
      countersignatures: [],
    }
    await this.#repository.saveCheckpoint(checkpoint, now, now)
    return checkpoint
  }

  /**
   * Adds the entries stored since the tree was last extended, checking each one first. Each
   * entry must carry the register key's own signature; one stored before entries were signed
   * (migration 013) only under the latest checkpoint this key signed. The first time (a
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
    const read = await this.#readBeyond(register, state)
    // Checked on a scratch tree: a refused load leaves nothing cached, so it is refused again.
    const signed =
      known === undefined
        ? await this.#latestOwnCheckpoint(register, new MerkleTree(read.leaves))
        : state.signed
    // Unsigned entries stand only under a head this key signed (those from before migration
    // 013); beyond it they are someone else's, appended with a hash chain that needs no key.
    const uncovered = read.unsigned.find((seq) => seq > (signed?.size ?? 0))
    const bad = read.badSignature
    if (uncovered !== undefined && (bad === undefined || uncovered < bad)) {
      refuse(register, uncovered, 'it carries no signature and no signed checkpoint covers it')
    }
    if (bad !== undefined) {
      refuse(register, bad, 'its signature does not verify with the register key')
    }
    state.signed = signed
    // Only a fully checked batch joins the cached tree.
    for (const leaf of read.leaves) state.tree.push(leaf)
    state.lastHash = read.lastHash
    this.#trees.set(register, state)
    return state
  }

  /** The entries stored beyond the tree, each checked against the chain. */
  async #readBeyond(register: RegisterName, state: TreeState): Promise<Extension> {
    const read: Extension = {
      leaves: [],
      lastHash: state.lastHash,
      unsigned: [],
      badSignature: undefined,
    }
    for (;;) {
      const from = state.tree.size + read.leaves.length + 1
      const page = await this.#repository.entries(register, { from, limit: MAX_PAGE })
      let expected = from
      for (const stored of page) {
        const problem = linkProblem(stored, register, expected, read.lastHash)
        if (problem !== undefined) refuse(register, problem.at, problem.why)
        if (stored.signature === '') read.unsigned.push(stored.seq)
        else if (!entrySignatureValid(stored.entry, this.#key.public)) {
          read.badSignature ??= stored.seq
        }
        read.leaves.push(leafHashOfText(stored.text))
        read.lastHash = stored.entry.hash
        expected++
      }
      if (page.length < MAX_PAGE) return read
    }
  }

  /** The latest checkpoint this key signed, which the entries must still give. */
  async #latestOwnCheckpoint(
    register: RegisterName,
    tree: MerkleTree,
  ): Promise<SignedCheckpoint | undefined> {
    const latest = await this.#repository.latestCheckpointOf(register, this.#key.id)
    if (latest === undefined) return undefined
    if (!checkpointSignatureValid(latest, latest.signature, this.#key.publicJwk)) {
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
}

function refuse(register: RegisterName, at: number, why: string): never {
  throw new RegisterIntegrityError(
    at,
    `register ${register} does not verify at entry ${at} (${why}); ` +
      'no checkpoint is signed over it: run `tally register verify`',
  )
}

/** RFC 6962 PROOF(from, to) over the verified tree, or SizeBeyondHead for sizes it lacks. */
export function proveConsistency(
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
