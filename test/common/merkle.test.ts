/**
 * RFC 6962 trees and consistency proofs as the collector builds them: the product's tree against
 * the RFC's definitions written out here by brute force (MTH and PROOF/SUBPROOF as recursions
 * over the leaf list), for every pair of sizes up to 64, and the Certificate Transparency
 * project's published vectors. Their verification is common/register-verify/'s, tested in
 * test/common/register-verify.test.ts against these proofs.
 */
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { EMPTY_ROOT, MerkleTree } from '../../common/merkle.ts'
import { CT_LEAVES, CT_PROOFS } from './ct-vectors.ts'

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
  it('gives the RFC roots and proofs for every 1 <= m <= n <= 64', () => {
    const roots = Array.from({ length: 65 }, (_, n) => hex(mth(data.slice(0, n))))
    expect(tree.root(0)).toBe(EMPTY_ROOT)
    for (let n = 1; n <= 64; n++) {
      expect(tree.root(n)).toBe(roots[n])
      for (let m = 1; m <= n; m++) {
        const expected = m === n ? [] : subproof(m, data.slice(0, n), true).map(hex)
        const proof = tree.consistencyProof(m, n)
        expect(proof, `PROOF(${m}, D[${n}])`).toEqual(expected)
      }
    }
  })

  it('gives no proof for sizes going down or beyond the tree', () => {
    expect(() => tree.consistencyProof(8, 7)).toThrow(RangeError)
    expect(() => tree.consistencyProof(1, 65)).toThrow(RangeError)
  })

  it('reproduces the Certificate Transparency test vectors', () => {
    const ct = new MerkleTree(CT_LEAVES.map((x) => leaf(Buffer.from(x, 'hex'))))
    for (const [m, n, proof] of CT_PROOFS) {
      expect(ct.consistencyProof(m, n), `PROOF(${m}, D[${n}])`).toEqual(proof)
    }
  })
})
