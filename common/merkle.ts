/**
 * RFC 6962 Merkle trees (section 2.1) as the collector builds them: roots of every prefix, and
 * consistency proofs between two sizes. Written out here rather than taken from a package
 * because the register's guarantee rests on it. Proofs are verified by common/register-verify/
 * (merkle.ts verifyConsistency), the one verifier the CLI, the console and the agent run.
 *
 * leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right); a tree of n > 1 leaves
 * splits at k, the largest power of two below n.
 */
import { createHash } from 'node:crypto'
import { EMPTY_ROOT, isPowerOfTwo, splitPoint } from './register-verify/merkle.ts'

// The tree's arithmetic is the verifier's (common/register-verify/merkle.ts, on WebCrypto); this
// file hashes synchronously, for the collector's appends and proofs.
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
