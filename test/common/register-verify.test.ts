/**
 * common/register-verify/ is the one verification of the register: the collector, `tally
 * register verify` and (served to the browser) the console's auditor page run it. It computes
 * on WebCrypto what the collector writes with node:crypto and the `canonicalize` package, so
 * these tests hold the two to the same bytes; and they hold the folder to importing nothing
 * but itself, which is what lets the console serve it file by file.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import canonicalizeModule from 'canonicalize'
import { describe, expect, it } from 'vitest'
import type { RegisterEntry } from '../../collector/register/model.ts'
import * as signing from '../../collector/register/signing.ts'
import * as nodeMerkle from '../../common/merkle.ts'
import { canonicalJson } from '../../common/register-verify/bytes.ts'
import { ed25519Key, ed25519Valid, jwkThumbprint } from '../../common/register-verify/keys.ts'
import { EMPTY_ROOT, MerkleTree, verifyConsistency } from '../../common/register-verify/merkle.ts'
import {
  checkpointBytes,
  entryHash,
  entrySignedBytes,
  GENESIS_HASH,
  leafHash,
} from '../../common/register-verify/model.ts'
import { CT_LEAVES, CT_PROOFS } from './ct-vectors.ts'

const DIR = join(import.meta.dirname, '../../common/register-verify')
const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined

describe('common/register-verify', () => {
  it('imports nothing but its own files (the console serves the folder as it is)', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.ts'))
    expect(files.length).toBeGreaterThan(3)
    for (const file of files) {
      const source = readFileSync(join(DIR, file), 'utf8')
      const imports = [...source.matchAll(/^(import|export)\s[^;]*?from\s+'([^']+)'/gms)]
      for (const [statement, , target] of imports) {
        if (/^import\s+type\s/.test(statement)) continue
        expect(`${file}: ${target}`).toMatch(/: \.\/[a-z-]+\.ts$/)
        expect(files, `${file} imports ${target}`).toContain(String(target).slice(2))
      }
      // Node's own globals do not exist in a browser (the comments may name them).
      const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
      expect(code, file).not.toMatch(/\bBuffer\b|\bprocess\.|\brequire\(/)
    }
  })

  it('writes canonical JSON byte for byte as the canonicalize package does', () => {
    const values: unknown[] = [
      { b: 1, a: [1, 'x', null, true, undefined], c: { z: 0.1, y: -0, x: 1e21, w: 5e-7 } },
      { é: 'ünïcödé \u2028 "quoted" \\ \u0001', '10': 1, '9': 2, A: 'a', a: 'A' },
      { ts: new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 6)), skip: undefined, n: 123456789.125 },
      [[], {}, '', 0, -1.5, Number.MAX_SAFE_INTEGER, 2 ** 60],
      'just a string',
    ]
    for (let i = 0; i < 50; i++) {
      values.push({ step: i, ratio: i / 7, hex: randomBytes(4).toString('hex'), nested: [{ i }] })
    }
    for (const value of values) expect(canonicalJson(value)).toBe(canonicalize(value))
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(/NaN/)
    expect(() => canonicalJson(undefined)).toThrow(/no JSON form/)
  })

  it("gives the collector's Merkle roots, and accepts exactly its consistency proofs", async () => {
    const leaves = Array.from({ length: 40 }, (_, i) =>
      nodeMerkle.leafHashOfBytes(Buffer.from([i])),
    )
    const built = new nodeMerkle.MerkleTree(leaves)
    const shared = await MerkleTree.of(leaves.map((l) => new Uint8Array(l)))
    expect(EMPTY_ROOT).toBe(createHash('sha256').digest('hex'))
    for (let n = 0; n <= 40; n++) expect(await shared.root(n)).toBe(built.root(n))
    for (let n = 1; n <= 40; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = built.consistencyProof(m, n)
        const [mRoot, nRoot] = [built.root(m), built.root(n)]
        expect(await verifyConsistency(m, n, mRoot, nRoot, proof)).toBe(true)
        if (proof.length > 0) {
          const bent = [...proof]
          bent[0] = `${(bent[0] as string).slice(0, 63)}${(bent[0] as string).endsWith('0') ? '1' : '0'}`
          expect(await verifyConsistency(m, n, mRoot, nRoot, bent)).toBe(false)
          expect(await verifyConsistency(m, n, mRoot, nRoot, proof.slice(1))).toBe(false)
        }
        if (m < n) expect(await verifyConsistency(m, n, nRoot, mRoot, proof)).toBe(false)
      }
    }
  })

  it('refuses a proof against a rewritten first or second tree, a changed or cut proof, sizes going down', async () => {
    const data = Array.from({ length: 64 }, (_, i) => Buffer.from(`entry ${i}`))
    const built = new nodeMerkle.MerkleTree(data.map((d) => nodeMerkle.leafHashOfBytes(d)))
    // Leaf 5 rewritten: no tree of more than 5 leaves is then a prefix of the real one.
    const other = new nodeMerkle.MerkleTree(
      data.map((d, i) => nodeMerkle.leafHashOfBytes(i === 5 ? Buffer.from('rewritten') : d)),
    )
    const changedHash = (p: string) => createHash('sha256').update(p).digest('hex')
    let checked = 0
    for (let n = 2; n <= 64; n++) {
      for (let m = 1; m < n; m++) {
        const proof = built.consistencyProof(m, n)
        const [mRoot, nRoot] = [built.root(m), built.root(n)]
        const refused = [
          // Sizes going down (a truncation) have no proof. (The same roots claimed at other
          // sizes can verify: a root does not commit to its size, the signed head does.)
          verifyConsistency(n, m, nRoot, mRoot, proof),
          ...proof.map((_, i) =>
            verifyConsistency(m, n, mRoot, nRoot, proof.with(i, changedHash(proof[i] as string))),
          ),
          verifyConsistency(m, n, mRoot, nRoot, proof.slice(0, -1)),
          verifyConsistency(m, n, mRoot, nRoot, [...proof, mRoot]),
        ]
        if (m > 5) {
          refused.push(verifyConsistency(m, n, other.root(m), nRoot, proof))
          refused.push(verifyConsistency(m, n, mRoot, other.root(n), proof))
        }
        expect(await Promise.all(refused), `${m} -> ${n}`).not.toContain(true)
        checked++
      }
    }
    expect(checked).toBe((64 * 63) / 2)
    // Equal sizes need equal roots and no proof; malformed hashes are refused.
    expect(await verifyConsistency(7, 7, built.root(7), built.root(7), [])).toBe(true)
    expect(await verifyConsistency(7, 7, built.root(7), other.root(7), [])).toBe(false)
    expect(await verifyConsistency(3, 7, 'zz', built.root(7), built.consistencyProof(3, 7))).toBe(
      false,
    )
  })

  it('accepts the Certificate Transparency vectors', async () => {
    const ct = new nodeMerkle.MerkleTree(
      CT_LEAVES.map((x) => nodeMerkle.leafHashOfBytes(Buffer.from(x, 'hex'))),
    )
    for (const [m, n, proof] of CT_PROOFS) {
      expect(await verifyConsistency(m, n, ct.root(m), ct.root(n), proof), `${m} -> ${n}`).toBe(
        true,
      )
    }
  })

  it('hashes and checks signatures over the bytes the collector signs', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>
    const unsigned = {
      register: 'itsd' as const,
      seq: 1,
      ts: '2025-01-02T03:04:05.006Z',
      kind: 'case.requested',
      actor: 'u-1',
      case_id: 'c-1',
      details: { what: 'flows', ratio: 1 / 7, list: ['a', 'é'] },
      prev_hash: GENESIS_HASH,
    }
    const entry: RegisterEntry = { ...unsigned, hash: signing.entryHash(unsigned) }
    entry.signature = signing.signEntry(entry, privateKey)
    expect(await entryHash(entry)).toBe(entry.hash)
    expect(Buffer.from(await leafHash(entry)).equals(signing.leafHash(entry))).toBe(true)
    expect(Buffer.from(entrySignedBytes(entry)).equals(signing.entrySignedBytes(entry))).toBe(true)
    const key = await ed25519Key(jwk)
    expect(await ed25519Valid(key, entry.signature, entrySignedBytes(entry))).toBe(true)
    const changed = { ...entry, actor: 'u-2' }
    expect(await ed25519Valid(key, entry.signature, entrySignedBytes(changed))).toBe(false)
    // The same key as a PEM and as a bare `x`, as countersigners give theirs.
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString()
    const head = { register: 'itsd' as const, size: 1, root: 'ab'.repeat(32), ts: entry.ts }
    const signature = signing.signCheckpointBytes(head, privateKey)
    for (const form of [pem, jwk.x as string, jwk]) {
      expect(await ed25519Valid(await ed25519Key(form), signature, checkpointBytes(head))).toBe(
        true,
      )
    }
    expect(await ed25519Key('not a key')).toBeUndefined()
    expect(await jwkThumbprint(jwk)).toBe(signing.jwkThumbprint(jwk))
  })
})
