/**
 * RFC 6962 consistency proofs: the product's tree against the RFC's definitions written out here
 * by brute force (MTH and PROOF/SUBPROOF as recursions over the leaf list), for every pair of
 * sizes up to 64, and the Certificate Transparency project's published vectors.
 */
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { EMPTY_ROOT, MerkleTree, verifyConsistency } from '../../common/merkle.ts'

const h = (...parts: Buffer[]): Buffer => {
  const hash = createHash('sha256')
  for (const p of parts) hash.update(p)
  return hash.digest()
}
const leaf = (data: Buffer) => h(Buffer.from([0]), data)

/** MTH(D[n]) exactly as RFC 6962 2.1 defines it, on the leaves' data. */
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return h()
  if (d.length === 1) return leaf(d[0] as Buffer)
  let k = 1
  while (k * 2 < d.length) k *= 2
  return h(Buffer.from([1]), mth(d.slice(0, k)), mth(d.slice(k)))
}

/** SUBPROOF(m, D[n], b) exactly as RFC 6962 2.1.2 defines it. */
function subproof(m: number, d: Buffer[], b: boolean): Buffer[] {
  const n = d.length
  if (m === n) return b ? [] : [mth(d)]
  let k = 1
  while (k * 2 < n) k *= 2
  if (m <= k) return [...subproof(m, d.slice(0, k), b), mth(d.slice(k))]
  return [...subproof(m - k, d.slice(k), false), mth(d.slice(0, k))]
}

const data = Array.from({ length: 64 }, (_, i) => Buffer.from(`entry ${i} ${'x'.repeat(i % 7)}`))
const tree = new MerkleTree(data.map(leaf))
const hex = (b: Buffer) => b.toString('hex')

describe('RFC 6962 Merkle consistency', () => {
  it('gives the RFC roots and proofs for every 1 <= m <= n <= 64, and each proof verifies', () => {
    const roots = Array.from({ length: 65 }, (_, n) => hex(mth(data.slice(0, n))))
    expect(tree.root(0)).toBe(EMPTY_ROOT)
    for (let n = 1; n <= 64; n++) {
      expect(tree.root(n)).toBe(roots[n])
      for (let m = 1; m <= n; m++) {
        const expected = m === n ? [] : subproof(m, data.slice(0, n), true).map(hex)
        const proof = tree.consistencyProof(m, n)
        expect(proof, `PROOF(${m}, D[${n}])`).toEqual(expected)
        expect(
          verifyConsistency(m, n, roots[m] as string, roots[n] as string, proof),
          `verify ${m} -> ${n}`,
        ).toBe(true)
      }
    }
  })

  it('refuses a proof against a rewritten first or second tree, a changed or cut proof, sizes going down', () => {
    const other = data.map((d, i) => (i === 5 ? Buffer.from('rewritten') : d))
    const otherRoots = Array.from({ length: 65 }, (_, n) => hex(mth(other.slice(0, n))))
    const roots = Array.from({ length: 65 }, (_, n) => hex(mth(data.slice(0, n))))
    let checked = 0
    for (let n = 2; n <= 64; n++) {
      for (let m = 1; m < n; m++) {
        const proof = tree.consistencyProof(m, n)
        const mRoot = roots[m] as string
        const nRoot = roots[n] as string
        // A first tree whose prefix was rewritten (leaf 5 changed) is not a prefix of the second.
        if (m > 5)
          expect(verifyConsistency(m, n, otherRoots[m] as string, nRoot, proof)).toBe(false)
        // A second tree that rewrote the kept prefix.
        if (m > 5)
          expect(verifyConsistency(m, n, mRoot, otherRoots[n] as string, proof)).toBe(false)
        // Sizes going down (a truncation) have no proof. (The same roots claimed at other
        // sizes can verify: a root does not commit to its size, the signed head does.)
        expect(verifyConsistency(n, m, nRoot, mRoot, proof)).toBe(false)
        for (let i = 0; i < proof.length; i++) {
          const changed = [...proof]
          changed[i] = hex(h(Buffer.from(changed[i] as string)))
          expect(verifyConsistency(m, n, mRoot, nRoot, changed)).toBe(false)
        }
        expect(verifyConsistency(m, n, mRoot, nRoot, proof.slice(0, -1))).toBe(false)
        expect(verifyConsistency(m, n, mRoot, nRoot, [...proof, mRoot])).toBe(false)
        checked++
      }
    }
    expect(checked).toBe((64 * 63) / 2)
    // Equal sizes need equal roots and no proof; malformed hashes are refused.
    expect(verifyConsistency(7, 7, roots[7] as string, roots[7] as string, [])).toBe(true)
    expect(verifyConsistency(7, 7, roots[7] as string, otherRoots[7] as string, [])).toBe(false)
    expect(verifyConsistency(3, 7, 'zz', roots[7] as string, tree.consistencyProof(3, 7))).toBe(
      false,
    )
    expect(() => tree.consistencyProof(8, 7)).toThrow(RangeError)
    expect(() => tree.consistencyProof(1, 65)).toThrow(RangeError)
  })

  it('reproduces the Certificate Transparency test vectors', () => {
    const ct = new MerkleTree(
      [
        '',
        '00',
        '10',
        '2021',
        '3031',
        '40414243',
        '5051525354555657',
        '606162636465666768696a6b6c6d6e6f',
      ].map((x) => leaf(Buffer.from(x, 'hex'))),
    )
    expect(ct.consistencyProof(1, 1)).toEqual([])
    expect(ct.consistencyProof(1, 8)).toEqual([
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ])
    expect(ct.consistencyProof(6, 8)).toEqual([
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ])
    expect(ct.consistencyProof(2, 5)).toEqual([
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ])
    for (const [m, n] of [
      [1, 8],
      [6, 8],
      [2, 5],
    ] as const) {
      expect(verifyConsistency(m, n, ct.root(m), ct.root(n), ct.consistencyProof(m, n))).toBe(true)
    }
  })
})
