/**
 * RFC 6962 Merkle trees (section 2.1): roots of every prefix, and consistency proofs between two
 * sizes with their verification. Written out here rather than taken from a package because the
 * register's guarantee rests on it, and because the agent (which must not import the collector)
 * verifies the same proofs.
 *
 * leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right); a tree of n > 1 leaves
 * splits at k, the largest power of two below n.
 */
import { createHash } from 'node:crypto'
import { EMPTY_ROOT, HEX32, half, isPowerOfTwo, odd, splitPoint } from './register-verify/merkle.ts'

// The tree's arithmetic is the verifier's (common/register-verify/merkle.ts, on WebCrypto); this
// file hashes synchronously, for the collector's appends and proofs and the agent's check.
export { EMPTY_ROOT }

export const sha256 = (...parts: (Buffer | Uint8Array)[]): Buffer => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}

export const leafHashOfBytes = (data: Buffer | Uint8Array): Buffer => sha256(Buffer.from([0]), data)

export const nodeHash = (left: Buffer, right: Buffer): Buffer =>
  sha256(Buffer.from([1]), left, right)

/**
 * An RFC 6962 Merkle tree over leaf hashes, kept as its complete aligned subtrees so that the
 * root of any prefix, and any hash a consistency proof needs, costs O(log n) node hashes.
 */
export class MerkleTree {
  /** levels[j][i]: the perfect subtree of 2^j leaves starting at leaf i * 2^j. */
  readonly #levels: Buffer[][] = [[]]

  constructor(leafHashes: Iterable<Buffer> = []) {
    for (const leaf of leafHashes) this.push(leaf)
  }

  get size(): number {
    return this.#levels[0]?.length ?? 0
  }

  push(leaf: Buffer): void {
    let hash = leaf
    for (let j = 0; ; j++) {
      let level = this.#levels[j]
      if (level === undefined) {
        level = []
        this.#levels[j] = level
      }
      level.push(hash)
      if (level.length % 2 === 1) return
      hash = nodeHash(level[level.length - 2] as Buffer, hash)
    }
  }

  /** The root of the first `n` leaves (all by default), hex. */
  root(n = this.size): string {
    this.#checkSize(n)
    return n === 0 ? EMPTY_ROOT : this.#rangeHash(0, n).toString('hex')
  }

  /**
   * RFC 6962 2.1.2 PROOF(m, D[n]): the hashes that show the tree of the first m leaves is a
   * prefix of the tree of the first n. Empty when m is 0 or m equals n (nothing to show).
   */
  consistencyProof(m: number, n = this.size): string[] {
    this.#checkSize(n)
    if (!Number.isInteger(m) || m < 0 || m > n) {
      throw new RangeError(`no consistency proof from size ${m} to size ${n}`)
    }
    if (m === 0 || m === n) return []
    return this.#subproof(m, 0, n, true).map((h) => h.toString('hex'))
  }

  /** SUBPROOF(m, D[start:end], b), with the range given by its bounds in the whole tree. */
  #subproof(m: number, start: number, end: number, whole: boolean): Buffer[] {
    const n = end - start
    if (m === n) return whole ? [] : [this.#rangeHash(start, end)]
    const k = splitPoint(n)
    if (m <= k) {
      return [...this.#subproof(m, start, start + k, whole), this.#rangeHash(start + k, end)]
    }
    return [...this.#subproof(m - k, start + k, end, false), this.#rangeHash(start, start + k)]
  }

  /**
   * MTH(D[start:end]) for the ranges the RFC's recursion visits: `start` is a multiple of the
   * smallest power of two >= end - start, so each is a stored perfect subtree or splits into one
   * and a smaller range of the same kind.
   */
  #rangeHash(start: number, end: number): Buffer {
    const n = end - start
    if (n === 1) return this.#levels[0]?.[start] as Buffer
    if (isPowerOfTwo(n)) {
      const j = Math.round(Math.log2(n))
      const stored = this.#levels[j]?.[start / n]
      if (stored !== undefined) return stored
    }
    const k = splitPoint(n)
    return nodeHash(this.#rangeHash(start, start + k), this.#rangeHash(start + k, end))
  }

  #checkSize(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.size) {
      throw new RangeError(`tree has ${this.size} leaves, no prefix of ${n}`)
    }
  }
}

/**
 * Whether `proof` shows that the tree of size `m` with root `mRoot` is a prefix of the tree of
 * size `n` with root `nRoot` (RFC 9162 2.1.4.2, the verification of RFC 6962's proofs). Sizes
 * going down, a non-empty proof where none is due, or a malformed hash are all "no".
 */
export function verifyConsistency(
  m: number,
  n: number,
  mRoot: string,
  nRoot: string,
  proof: readonly string[],
): boolean {
  if (!Number.isSafeInteger(m) || !Number.isSafeInteger(n) || m < 0 || m > n) return false
  if (!HEX32.test(mRoot) || !HEX32.test(nRoot) || !proof.every((p) => HEX32.test(p))) return false
  if (m === 0) return proof.length === 0 && mRoot === EMPTY_ROOT
  if (m === n) return proof.length === 0 && mRoot === nRoot
  if (proof.length === 0) return false
  const path = proof.map((p) => Buffer.from(p, 'hex'))
  // A power-of-two first tree is itself a node of the second: its root starts the path.
  if (isPowerOfTwo(m)) path.unshift(Buffer.from(mRoot, 'hex'))
  const roots = rootsOfPath(m, n, path)
  return roots !== undefined && roots.first === mRoot && roots.second === nRoot
}

/**
 * The roots of the trees of sizes m and n that a consistency path gives (RFC 9162 2.1.4.2,
 * steps 3 to 7), or undefined when the path is longer than the trees allow or ends early.
 */
function rootsOfPath(
  m: number,
  n: number,
  path: Buffer[],
): { first: string; second: string } | undefined {
  let fn = m - 1
  let sn = n - 1
  while (odd(fn)) {
    fn = half(fn)
    sn = half(sn)
  }
  let fr = path[0] as Buffer
  let sr = path[0] as Buffer
  for (const c of path.slice(1)) {
    if (sn === 0) return undefined
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr)
      sr = nodeHash(c, sr)
      while (!odd(fn) && fn !== 0) {
        fn = half(fn)
        sn = half(sn)
      }
    } else {
      sr = nodeHash(sr, c)
    }
    fn = half(fn)
    sn = half(sn)
  }
  return sn === 0 ? { first: fr.toString('hex'), second: sr.toString('hex') } : undefined
}
