/**
 * Verification of a register from its entries in stored order and its checkpoints. Pure: the
 * collector runs it on rows it has just read, an auditor on what the API gave them.
 */
import type { KeyObject } from 'node:crypto'
import { MerkleTree } from '../../common/merkle.ts'
import {
  checkpointSignatureValid,
  ed25519PublicKey,
  type PublicKeyInput,
} from '../../common/register-head.ts'
import {
  GENESIS_HASH,
  type RegisterEntry,
  type RegisterName,
  type SignedCheckpoint,
  type VerifyProblem,
  type VerifyProblemKind,
  type VerifyReport,
} from './model.ts'
import type { StoredEntry } from './repository.ts'
import { entryHash, entrySignatureValid, leafHash } from './signing.ts'

/** The problems found so far, in the order found; the report dedupes and sorts them by seq. */
class Problems {
  readonly list: VerifyProblem[] = []
  add(seq: number, kind: VerifyProblemKind, message: string): void {
    this.list.push({ seq, kind, message })
  }

  /** Each problem once (the first time it was found), by seq. */
  unique(): VerifyProblem[] {
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
interface Stored {
  entry: RegisterEntry
  index: number
  valid: boolean
  why: string
}

/**
 * Verifies a register from its entries in stored order and its checkpoints.
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
  const problems = new Problems()
  // 1. Each entry on its own. Whether a bad hash means `changed` or `inserted` depends on
  // whether the entry is in the chain (3).
  const usable = usableEntries(entries, name, problems)
  // 2. Stored order: the entries outside a longest non-decreasing run of seqs were moved.
  for (const moved of outOfOrder(usable.map((x) => x.entry.seq))) {
    const x = usable[moved] as Stored
    problems.add(
      x.entry.seq,
      'reordered',
      `entry ${x.entry.seq} is stored out of seq order (row ${x.index + 1})`,
    )
  }
  // 3. One entry per seq, from 1 without gaps, each linked to its predecessor.
  const { chain, maxSeq } = rebuildChain(usable, problems)
  // 4. Checkpoints: signature, countersignatures, root over the entries up to their size.
  const heads = checkCheckpoints(chain, checkpoints, publicKeyJwk, name, maxSeq, problems)
  // 5. Each entry's own signature.
  checkEntrySignatures(chain, publicKeyJwk, heads.lastGood, problems)
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
    root: heads.tree.root(),
    checked_checkpoints: heads.checked,
    problems: unique,
  }
}

/** The entries that belong here and have a usable seq, each with whether it gives its hash. */
function usableEntries(entries: RegisterEntry[], name: RegisterName, problems: Problems): Stored[] {
  const usable: Stored[] = []
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
      const why = hashProblem(entry)
      usable.push({ entry, index, valid: why === '', why })
    }
  })
  return usable
}

function hashProblem(entry: RegisterEntry): string {
  try {
    return entryHash(entry) === entry.hash
      ? ''
      : 'does not give its recorded hash (content changed)'
  } catch (err) {
    return `cannot be hashed: ${(err as Error).message}`
  }
}

/** Walks the seqs from 1, choosing each seq's entry and naming gaps, extra rows and bad links. */
function rebuildChain(
  usable: Stored[],
  problems: Problems,
): { chain: RegisterEntry[]; maxSeq: number } {
  const bySeq = new Map<number, Stored[]>()
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
function chooseEntry(candidates: Stored[], expectedPrev: string | undefined, next: Stored[]) {
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
  return chosen
}

/** Names what is wrong with the chosen entry's own hash or its link to the entry before. */
function checkLink(
  chosen: Stored,
  previous: RegisterEntry | undefined,
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
  entry: RegisterEntry,
  previous: RegisterEntry,
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

interface CheckedHeads {
  tree: MerkleTree
  /** Checkpoints whose register signature verified. */
  checked: number
  /** The largest size up to which every signed root matched. */
  lastGood: number
  /** The largest checkpoint beyond the stored entries (a cut tail). */
  beyond: SignedCheckpoint | undefined
}

/**
 * Each checkpoint's signatures, and its root against the chain's entries up to its size. One
 * checkpoint per append batch: a cut tail or a rewrite would otherwise be reported once per
 * later checkpoint, so the largest cut and the first mismatch say it, the rest are counted.
 */
function checkCheckpoints(
  chain: RegisterEntry[],
  checkpoints: SignedCheckpoint[],
  key: PublicKeyInput,
  name: RegisterName,
  maxSeq: number,
  problems: Problems,
): CheckedHeads {
  const tree = new MerkleTree(chain.map(leafHash))
  const seqAt = chain.map((e) => e.seq)
  const heads: CheckedHeads = { tree, checked: 0, lastGood: 0, beyond: undefined }
  let firstMismatch: { cp: SignedCheckpoint; root: string; after: number } | undefined
  let laterMismatches = 0
  for (const cp of [...checkpoints].sort((a, b) => a.size - b.size)) {
    if (!checkpointSigned(cp, key, name, problems)) continue
    heads.checked++
    if (cp.size > maxSeq) {
      heads.beyond = cp
      continue
    }
    const root = tree.root(countUpTo(seqAt, cp.size))
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

/** Whether the checkpoint is this register's and its key's; names bad countersignatures. */
function checkpointSigned(
  cp: SignedCheckpoint,
  key: PublicKeyInput,
  name: RegisterName,
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
  if (!checkpointSignatureValid(cp, cp.signature, key)) {
    problems.add(cp.size, 'bad-signature', `${at}: the register key's signature does not verify`)
    return false
  }
  for (const cs of cp.countersignatures ?? []) {
    if (!checkpointSignatureValid(cp, cs.signature, cs.key)) {
      problems.add(
        cp.size,
        'bad-signature',
        `${at}: the countersignature by ${cs.by} does not verify`,
      )
    }
  }
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

/**
 * The collector signs every entry it writes, so one whose signature does not verify was written
 * by someone else. Entries from before signatures existed stand only under a checkpoint whose
 * signature and root both verified (up to `lastGood`).
 */
function checkEntrySignatures(
  chain: RegisterEntry[],
  key: PublicKeyInput,
  lastGood: number,
  problems: Problems,
): void {
  let entryKey: KeyObject | undefined
  try {
    entryKey = ed25519PublicKey(key)
  } catch {
    entryKey = undefined
  }
  for (const entry of chain) {
    if (typeof entry.signature === 'string' && entry.signature !== '') {
      if (entryKey === undefined || !entrySignatureValid(entry, entryKey)) {
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

/**
 * What verifyEntries cannot see from the entries alone: whether each row's index columns still
 * say what its entry says (a case hidden from a case_id search, an entry moved to another seq).
 */
export function columnProblems(stored: StoredEntry[]): VerifyProblem[] {
  const problems: VerifyProblem[] = []
  for (const row of stored) {
    const e = row.entry
    const differ = differingColumns(row)
    if (differ.length > 0) {
      problems.push({
        seq: e.seq,
        kind: 'changed',
        message: `entry ${e.seq}: the stored ${differ.join(', ')} column(s) no longer say what the entry says`,
      })
    }
    if (row.seq !== e.seq) {
      problems.push({
        seq: e.seq,
        kind: 'reordered',
        message: `entry ${e.seq} is stored under seq ${row.seq}`,
      })
    }
  }
  return problems
}

function differingColumns(row: StoredEntry): string[] {
  const e = row.entry
  const columns: [string, boolean][] = [
    ['register', row.register === e.register],
    ['kind', row.kind === e.kind],
    ['actor', row.actor === e.actor],
    ['case_id', row.case_id === (e.case_id ?? '')],
    ['prev_hash', row.prev_hash === e.prev_hash],
    ['hash', row.hash === e.hash],
    ['ts', row.ts_ms === Date.parse(e.ts)],
  ]
  return columns.filter(([, same]) => !same).map(([name]) => name)
}
