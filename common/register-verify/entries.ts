/**
 * Verification of a register from its entries in stored order and its checkpoints: the one
 * check the collector runs on its own rows, `tally register verify` on what the API gave it,
 * and the console's auditor page in the browser (this folder is served to it as it is).
 *
 * What it recomputes: every entry's hash; the seq order of the stored rows; one entry per seq
 * from 1 with no gap; each entry's link to its predecessor; for each checkpoint, its signature,
 * its countersignatures and the Merkle root of the entries up to its size; each entry's
 * signature.
 *
 * How problems are named: `changed`, an entry whose content no longer gives its hash (or, with
 * its hash recomputed, no longer the hash its successor recorded); `removed`, a seq missing
 * (also at the end, below a checkpoint's size); `inserted`, a second entry for one seq, or an
 * entry that shares its predecessor with the next one; `reordered`, an entry stored out of seq
 * order; `checkpoint-mismatch`, a signed root the entries no longer give (a consistent rewrite);
 * `bad-signature`, a checkpoint, countersignature or entry that does not verify with its key.
 *
 * The hashes and signatures are computed first, all at once (WebCrypto works asynchronously and
 * in parallel); the problems are then named in one fixed order, which the report keeps for
 * problems of one seq.
 */
import { ed25519Valid, KeyRing, type VerifierKeyInput } from './keys.ts'
import { MerkleTree } from './merkle.ts'
import {
  checkpointBytes,
  entryHash,
  entrySignedBytes,
  GENESIS_HASH,
  leafHash,
  type Problem,
  type ProblemKind,
  type Report,
  type VerifiedCheckpoint,
  type VerifiedEntry,
} from './model.ts'

/** The problems found so far, in the order found; the report dedupes and sorts them by seq. */
export class Problems {
  readonly list: Problem[] = []
  add(seq: number, kind: ProblemKind, message: string): void {
    this.list.push({ seq, kind, message })
  }

  /** Each problem once (the first time it was found), by seq. */
  unique(): Problem[] {
    const seen = new Set<string>()
    const unique = this.list.filter((p) => {
      const key = `${p.seq}\u0000${p.kind}\u0000${p.message}`
      if (seen.has(key)) return false
      seen.add(key)
      return true
    })
    return unique.sort((a, b) => a.seq - b.seq)
  }
}

/** An entry with a usable seq, where it was stored, and whether it gives its own hash. */
interface Stored<N extends string> {
  entry: VerifiedEntry<N>
  index: number
  valid: boolean
  why: string
}

/** Whether `signature` is `key`'s over the checkpoint's head. */
export async function checkpointSignatureValid(
  keys: KeyRing,
  head: { register: string; size: number; root: string; ts: string },
  signature: string,
  key: VerifierKeyInput | undefined,
): Promise<boolean> {
  return ed25519Valid(await keys.of(key), signature, checkpointBytes(head))
}

/** Verifies register `name` from its entries in stored order and its checkpoints. */
export async function verifyEntries<N extends string>(
  entries: readonly VerifiedEntry<N>[],
  checkpoints: readonly VerifiedCheckpoint<N>[],
  key: VerifierKeyInput,
  name: N,
  keys: KeyRing = new KeyRing(),
): Promise<Report<N>> {
  const problems = new Problems()
  // 1. Each entry on its own. Whether a bad hash means `changed` or `inserted` depends on
  // whether the entry is in the chain (3).
  const usable = await usableEntries(entries, name, problems)
  // 2. Stored order: the entries outside a longest non-decreasing run of seqs were moved.
  for (const moved of outOfOrder(usable.map((x) => x.entry.seq))) {
    const x = usable[moved] as Stored<N>
    problems.add(
      x.entry.seq,
      'reordered',
      `entry ${x.entry.seq} is stored out of seq order (row ${x.index + 1})`,
    )
  }
  // 3. One entry per seq, from 1 without gaps, each linked to its predecessor.
  const { chain, maxSeq } = rebuildChain(usable, problems)
  // 4. Checkpoints: signature, countersignatures, root over the entries up to their size.
  const heads = await checkCheckpoints(chain, checkpoints, keys, key, name, maxSeq, problems)
  // 5. Each entry's own signature.
  await checkEntrySignatures(chain, await keys.of(key), heads.lastGood, problems)
  if (heads.beyond !== undefined) {
    const { size, ts } = heads.beyond
    problems.add(
      maxSeq + 1,
      'removed',
      `checkpoint at size ${size} (${ts}) covers ${size} entries but only ` +
        `${maxSeq} are stored: entries ${maxSeq + 1} to ${size} are missing`,
    )
  }
  const unique = problems.unique()
  return {
    register: name,
    ok: unique.length === 0,
    size: chain.length,
    root: await heads.tree.root(),
    checked_checkpoints: heads.checked,
    problems: unique,
  }
}

/** The entries that belong here and have a usable seq, each with whether it gives its hash. */
async function usableEntries<N extends string>(
  entries: readonly VerifiedEntry<N>[],
  name: N,
  problems: Problems,
): Promise<Stored<N>[]> {
  const whys = await Promise.all(
    entries.map((entry) =>
      entry.register === name && Number.isSafeInteger(entry.seq) && entry.seq >= 1
        ? hashProblem(entry)
        : '',
    ),
  )
  const usable: Stored<N>[] = []
  entries.forEach((entry, index) => {
    if (entry.register !== name) {
      problems.add(
        entry.seq,
        'inserted',
        `entry ${entry.seq} belongs to register ${entry.register}, not ${name}`,
      )
    } else if (!Number.isSafeInteger(entry.seq) || entry.seq < 1) {
      problems.add(
        Number(entry.seq) || 0,
        'inserted',
        `an entry has an invalid seq ${String(entry.seq)}`,
      )
    } else {
      const why = whys[index] as string
      usable.push({ entry, index, valid: why === '', why })
    }
  })
  return usable
}

async function hashProblem(entry: VerifiedEntry): Promise<string> {
  try {
    return (await entryHash(entry)) === entry.hash
      ? ''
      : 'does not give its recorded hash (content changed)'
  } catch (err) {
    return `cannot be hashed: ${(err as Error).message}`
  }
}

/** Walks the seqs from 1, choosing each seq's entry and naming gaps, extra rows and bad links. */
function rebuildChain<N extends string>(
  usable: Stored<N>[],
  problems: Problems,
): { chain: VerifiedEntry<N>[]; maxSeq: number } {
  const bySeq = new Map<number, Stored<N>[]>()
  for (const x of usable) {
    const list = bySeq.get(x.entry.seq)
    if (list === undefined) bySeq.set(x.entry.seq, [x])
    else list.push(x)
  }
  const maxSeq = usable.reduce((m, x) => Math.max(m, x.entry.seq), 0)
  const hashOwners = new Map<string, number>()
  for (const x of usable) {
    if (!hashOwners.has(x.entry.hash)) hashOwners.set(x.entry.hash, x.entry.seq)
  }
  const chain: VerifiedEntry<N>[] = []
  let previous: VerifiedEntry<N> | undefined
  let gapStart: number | undefined
  for (let seq = 1; seq <= maxSeq; seq++) {
    const candidates = bySeq.get(seq)
    if (candidates === undefined) {
      gapStart ??= seq
      previous = undefined
      continue
    }
    if (gapStart !== undefined) reportGap(gapStart, seq - 1, problems)
    gapStart = undefined
    const expectedPrev = seq === 1 ? GENESIS_HASH : previous?.hash
    const chosen = chooseEntry(candidates, expectedPrev, bySeq.get(seq + 1) ?? [])
    for (const x of candidates) {
      if (x === chosen) continue
      problems.add(
        seq,
        'inserted',
        `a second entry ${seq} is stored (hash ${x.entry.hash.slice(0, 12)}…) that is not in the chain`,
      )
    }
    checkLink(chosen, previous, hashOwners, problems)
    chain.push(chosen.entry)
    previous = chosen.entry
  }
  return { chain, maxSeq }
}

function reportGap(start: number, end: number, problems: Problems): void {
  problems.add(
    start,
    'removed',
    start === end
      ? `entry ${start} is missing`
      : `entries ${start} to ${end} are missing (${end - start + 1})`,
  )
}

/** Of several rows for one seq, the one that fits the chain is the entry, the rest inserted. */
function chooseEntry<N extends string>(
  candidates: Stored<N>[],
  expectedPrev: string | undefined,
  next: Stored<N>[],
): Stored<N> {
  const score = (x: Stored<N>) =>
    (x.valid ? 4 : 0) +
    (x.entry.prev_hash === expectedPrev ? 2 : 0) +
    (next.some((n) => n.entry.prev_hash === x.entry.hash) ? 1 : 0)
  // On a tie (two rows that both fit, the last entry forged, say) the earlier-written one is
  // the entry: rows come back in no set order, and the verdict must not depend on it.
  const ordered = [...candidates].sort((a, b) =>
    String(a.entry.ts).localeCompare(String(b.entry.ts)),
  )
  let chosen = ordered[0] as Stored<N>
  for (const x of ordered) if (score(x) > score(chosen)) chosen = x
  return chosen
}

/** Names what is wrong with the chosen entry's own hash or its link to the entry before. */
function checkLink<N extends string>(
  chosen: Stored<N>,
  previous: VerifiedEntry<N> | undefined,
  hashOwners: Map<string, number>,
  problems: Problems,
): void {
  const entry = chosen.entry
  const seq = entry.seq
  if (!chosen.valid) {
    problems.add(seq, 'changed', `entry ${seq} ${chosen.why}`)
  } else if (seq === 1 && entry.prev_hash !== GENESIS_HASH) {
    problems.add(
      1,
      'changed',
      'entry 1 does not start the chain (its prev_hash is not the genesis hash)',
    )
  } else if (previous !== undefined && entry.prev_hash !== previous.hash) {
    brokenLink(entry, previous, hashOwners.get(entry.prev_hash), problems)
  }
}

/** An entry that does not follow its predecessor: what was inserted, moved or rewritten. */
function brokenLink(
  entry: VerifiedEntry,
  previous: VerifiedEntry,
  owner: number | undefined,
  problems: Problems,
): void {
  const seq = entry.seq
  if (entry.prev_hash === previous.prev_hash) {
    problems.add(
      previous.seq,
      'inserted',
      `entries ${previous.seq} and ${seq} follow the same predecessor: entry ${previous.seq} was inserted`,
    )
  } else if (owner !== undefined && owner < seq - 1) {
    problems.add(
      owner + 1,
      'inserted',
      `entry ${seq} follows entry ${owner}: entries ${owner + 1} to ${seq - 1} were inserted`,
    )
  } else if (owner !== undefined) {
    problems.add(seq, 'reordered', `entry ${seq} follows entry ${owner}, not entry ${seq - 1}`)
  } else {
    problems.add(
      previous.seq,
      'changed',
      `entry ${previous.seq} is not the entry that entry ${seq} follows: it was rewritten ` +
        `with a recomputed hash, or entries before ${seq} were removed and renumbered`,
    )
  }
}

interface CheckedHeads<N extends string> {
  tree: MerkleTree
  /** Checkpoints whose register signature verified. */
  checked: number
  /** The largest size up to which every signed root matched. */
  lastGood: number
  /** The largest checkpoint beyond the stored entries (a cut tail). */
  beyond: VerifiedCheckpoint<N> | undefined
}

/** A checkpoint's signatures, checked before its problems are named in order. */
interface CheckpointSignatures<N extends string> {
  cp: VerifiedCheckpoint<N>
  signed: boolean
  countersigned: boolean[]
}

/**
 * Each checkpoint's signatures, and its root against the chain's entries up to its size. One
 * checkpoint per append batch: a cut tail or a rewrite would otherwise be reported once per
 * later checkpoint, so the largest cut and the first mismatch say it, the rest are counted.
 */
async function checkCheckpoints<N extends string>(
  chain: VerifiedEntry<N>[],
  checkpoints: readonly VerifiedCheckpoint<N>[],
  keys: KeyRing,
  key: VerifierKeyInput,
  name: N,
  maxSeq: number,
  problems: Problems,
): Promise<CheckedHeads<N>> {
  const sorted = [...checkpoints].sort((a, b) => a.size - b.size)
  const [tree, signatures] = await Promise.all([
    Promise.all(chain.map(leafHash)).then((leaves) => MerkleTree.of(leaves)),
    Promise.all(sorted.map((cp) => checkpointSignatures(cp, keys, key, name))),
  ])
  const seqAt = chain.map((e) => e.seq)
  const heads: CheckedHeads<N> = { tree, checked: 0, lastGood: 0, beyond: undefined }
  let firstMismatch: { cp: VerifiedCheckpoint<N>; root: string; after: number } | undefined
  let laterMismatches = 0
  for (const signed of signatures) {
    const { cp } = signed
    if (!checkpointSigned(signed, name, problems)) continue
    heads.checked++
    if (cp.size > maxSeq) {
      heads.beyond = cp
      continue
    }
    const root = await tree.root(countUpTo(seqAt, cp.size))
    if (root !== cp.root) {
      if (firstMismatch === undefined) firstMismatch = { cp, root, after: heads.lastGood }
      else laterMismatches++
    } else if (firstMismatch === undefined) {
      heads.lastGood = cp.size
    }
  }
  if (firstMismatch !== undefined) {
    const { cp, root, after } = firstMismatch
    problems.add(
      cp.size,
      'checkpoint-mismatch',
      `checkpoint at size ${cp.size} (${cp.ts}) signed root ${cp.root.slice(0, 16)}…, the ` +
        `entries give ${root.slice(0, 16)}…: entries ${after + 1} to ${cp.size} were rewritten` +
        (laterMismatches > 0 ? ` (and ${laterMismatches} later checkpoints do not match)` : ''),
    )
  }
  return heads
}

async function checkpointSignatures<N extends string>(
  cp: VerifiedCheckpoint<N>,
  keys: KeyRing,
  key: VerifierKeyInput,
  name: N,
): Promise<CheckpointSignatures<N>> {
  if (cp.register !== name) return { cp, signed: false, countersigned: [] }
  const [signed, ...countersigned] = await Promise.all([
    checkpointSignatureValid(keys, cp, cp.signature, key),
    ...(cp.countersignatures ?? []).map((cs) =>
      checkpointSignatureValid(keys, cp, cs.signature, cs.key),
    ),
  ])
  return { cp, signed: signed === true, countersigned }
}

/** Whether the checkpoint is this register's and its key's; names bad countersignatures. */
function checkpointSigned<N extends string>(
  { cp, signed, countersigned }: CheckpointSignatures<N>,
  name: N,
  problems: Problems,
): boolean {
  const at = `checkpoint at size ${cp.size} (${cp.ts})`
  if (cp.register !== name) {
    problems.add(
      cp.size,
      'checkpoint-mismatch',
      `${at} is for register ${cp.register}, not ${name}`,
    )
    return false
  }
  if (!signed) {
    problems.add(cp.size, 'bad-signature', `${at}: the register key's signature does not verify`)
    return false
  }
  ;(cp.countersignatures ?? []).forEach((cs, i) => {
    if (countersigned[i] !== true) {
      problems.add(
        cp.size,
        'bad-signature',
        `${at}: the countersignature by ${cs.by} does not verify`,
      )
    }
  })
  return true
}

/** How many chain entries have seq <= size (seqAt ascending). */
function countUpTo(seqAt: number[], size: number): number {
  let lo = 0
  let hi = seqAt.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((seqAt[mid] as number) <= size) lo = mid + 1
    else hi = mid
  }
  return lo
}

const hasSignature = (entry: VerifiedEntry) =>
  typeof entry.signature === 'string' && entry.signature !== ''

/**
 * The collector signs every entry it writes, so one whose signature does not verify was written
 * by someone else. Entries from before signatures existed stand only under a checkpoint whose
 * signature and root both verified (up to `lastGood`).
 */
async function checkEntrySignatures(
  chain: VerifiedEntry[],
  entryKey: CryptoKey | undefined,
  lastGood: number,
  problems: Problems,
): Promise<void> {
  const valid = await Promise.all(
    chain.map((entry) =>
      hasSignature(entry)
        ? ed25519Valid(entryKey, entry.signature as string, entrySignedBytes(entry))
        : false,
    ),
  )
  chain.forEach((entry, i) => {
    if (hasSignature(entry)) {
      if (valid[i] !== true) {
        problems.add(
          entry.seq,
          'bad-signature',
          `entry ${entry.seq}: its signature does not verify with the register key (the collector did not write it)`,
        )
      }
    } else if (entry.seq > lastGood) {
      problems.add(
        entry.seq,
        'bad-signature',
        `entry ${entry.seq} carries no signature and no signed checkpoint covers it (the collector did not write it)`,
      )
    }
  })
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
