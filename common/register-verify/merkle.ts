/**
 * RFC 6962 Merkle trees on WebCrypto, for verifying: the root of any prefix of a list of leaf
 * hashes, and the check of a consistency proof (RFC 9162 2.1.4.2). The collector builds its
 * trees and proofs with common/merkle.ts (synchronous, node:crypto); these give the same
 * hashes, and test/common/register-verify.test.ts compares the two.
 *
 * leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right); a tree of n > 1 leaves
 * splits at k, the largest power of two below n.
 */
import { fromHex, sha256, toHex } from './bytes.ts'

const LEAF = new Uint8Array([0])
const NODE = new Uint8Array([1])

export const leafHashOfBytes = (data: Uint8Array): Promise<Uint8Array> => sha256(LEAF, data)
export const nodeHash = (left: Uint8Array, right: Uint8Array): Promise<Uint8Array> =>
  sha256(NODE, left, right)

/** The root of an empty tree: SHA-256 of nothing. */
export const EMPTY_ROOT = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

export const isPowerOfTwo = (x: number): boolean => x >= 1 && 2 ** Math.round(Math.log2(x)) === x

/** The largest power of two strictly below n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

/**
 * A tree over leaf hashes kept as its complete aligned subtrees, so that the root of any prefix
 * costs O(log n) more hashes. Each level is hashed at once (WebCrypto's digests run in
 * parallel), not leaf by leaf.
 */
export class MerkleTree {
  /** levels[j][i]: the perfect subtree of 2^j leaves starting at leaf i * 2^j. */
  readonly #levels: Uint8Array[][]

  private constructor(levels: Uint8Array[][]) {
    this.#levels = levels
  }

  static async of(leaves: Uint8Array[]): Promise<MerkleTree> {
    const levels: Uint8Array[][] = [leaves]
    let level = leaves
    while (level.length >= 2) {
      const pairs: Promise<Uint8Array>[] = []
      for (let i = 0; i + 1 < level.length; i += 2) {
        pairs.push(nodeHash(level[i] as Uint8Array, level[i + 1] as Uint8Array))
      }
      level = await Promise.all(pairs)
      levels.push(level)
    }
    return new MerkleTree(levels)
  }

  get size(): number {
    return this.#levels[0]?.length ?? 0
  }

  /** The root of the first `n` leaves (all by default), hex. */
  async root(n = this.size): Promise<string> {
    if (!Number.isInteger(n) || n < 0 || n > this.size) {
      throw new RangeError(`tree has ${this.size} leaves, no prefix of ${n}`)
    }
    return n === 0 ? EMPTY_ROOT : toHex(await this.#rangeHash(0, n))
  }

  /** MTH(D[start:end]) for a range the RFC's recursion visits (start aligned to its size). */
  async #rangeHash(start: number, end: number): Promise<Uint8Array> {
    const n = end - start
    if (n === 1) return this.#levels[0]?.[start] as Uint8Array
    if (isPowerOfTwo(n)) {
      const stored = this.#levels[Math.round(Math.log2(n))]?.[start / n]
      if (stored !== undefined) return stored
    }
    const k = splitPoint(n)
    const [left, right] = await Promise.all([
      this.#rangeHash(start, start + k),
      this.#rangeHash(start + k, end),
    ])
    return nodeHash(left, right)
  }
}

export const HEX32 = /^[0-9a-f]{64}$/
// Numbers above 2^31 do not survive JavaScript's bit operators: shift by halving.
export const odd = (x: number): boolean => x % 2 === 1
export const half = (x: number): number => Math.floor(x / 2)

/**
 * Whether `proof` shows that the tree of size `m` with root `mRoot` is a prefix of the tree of
 * size `n` with root `nRoot`. Sizes going down, a non-empty proof where none is due, or a
 * malformed hash are all "no".
 */
export async function verifyConsistency(
  m: number,
  n: number,
  mRoot: string,
  nRoot: string,
  proof: readonly string[],
): Promise<boolean> {
  if (!Number.isSafeInteger(m) || !Number.isSafeInteger(n) || m < 0 || m > n) return false
  if (!HEX32.test(mRoot) || !HEX32.test(nRoot) || !proof.every((p) => HEX32.test(p))) return false
  if (m === 0) return proof.length === 0 && mRoot === EMPTY_ROOT
  if (m === n) return proof.length === 0 && mRoot === nRoot
  if (proof.length === 0) return false
  const path = proof.map(fromHex)
  // A power-of-two first tree is itself a node of the second: its root starts the path.
  if (isPowerOfTwo(m)) path.unshift(fromHex(mRoot))
  const roots = await rootsOfPath(m, n, path)
  return roots !== undefined && roots.first === mRoot && roots.second === nRoot
}

/**
 * The roots of the trees of sizes m and n that a consistency path gives (RFC 9162 2.1.4.2,
 * steps 3 to 7), or undefined when the path is longer than the trees allow or ends early.
 */
async function rootsOfPath(
  m: number,
  n: number,
  path: Uint8Array[],
): Promise<{ first: string; second: string } | undefined> {
  let fn = m - 1
  let sn = n - 1
  while (odd(fn)) {
    fn = half(fn)
    sn = half(sn)
  }
  let fr = path[0] as Uint8Array
  let sr = path[0] as Uint8Array
  for (const c of path.slice(1)) {
    if (sn === 0) return undefined
    if (odd(fn) || fn === sn) {
      fr = await nodeHash(c, fr)
      sr = await nodeHash(c, sr)
      while (!odd(fn) && fn !== 0) {
        fn = half(fn)
        sn = half(sn)
      }
    } else {
      sr = await nodeHash(sr, c)
    }
    fn = half(fn)
    sn = half(sn)
  }
  return sn === 0 ? { first: toHex(fr), second: toHex(sr) } : undefined
}
