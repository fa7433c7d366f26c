/**
 * The agent's kept register head: pinned on first use, kept only when the next head is signed
 * by the pinned key and proved to extend it, persisted in the state dir, and a cut or rewritten
 * register (even re-signed with the same key) reported as inconsistent at every poll.
 */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { fetchGrants } from '../../../agent/grants/manager.ts'
import { RegisterHeadWatch, registerHeadPath } from '../../../agent/register-head.ts'
import { leafHashOfBytes, MerkleTree } from '../../../common/merkle.ts'
import { checkpointBytes } from '../../../common/register-head.ts'
import type { RegisterHeadAnswer } from '../../../protocol/v1.ts'

const keyPair = generateKeyPairSync('ed25519')
const jwk = (key: KeyObject) => {
  const { kty, crv, x } = key.export({ format: 'jwk' })
  return { kty: String(kty), crv: String(crv), x: String(x) }
}

/** A register of `entries` and the answer a collector gives an agent that kept `keptSize`. */
function answer(
  entries: string[],
  keptSize: number,
  key: KeyObject = keyPair.privateKey,
  publicKey = jwk(keyPair.publicKey),
): RegisterHeadAnswer {
  const tree = new MerkleTree(entries.map((e) => leafHashOfBytes(Buffer.from(e))))
  const head = {
    register: 'itsd' as const,
    size: tree.size,
    root: tree.root(),
    ts: new Date(1_700_000_000_000 + tree.size).toISOString(),
  }
  const signature = sign(null, checkpointBytes(head), key).toString('base64url')
  const proof = keptSize === 0 || keptSize > tree.size ? [] : tree.consistencyProof(keptSize)
  return { head: { ...head, signature }, proof, public_key: publicKey }
}

const entries = (n: number, prefix = 'entry') =>
  Array.from({ length: n }, (_, i) => `${prefix} ${i}`)

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tally-register-head-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('the kept register head', () => {
  it('pins the key on first use, keeps each head that extends the last, across restarts', async () => {
    const watch = new RegisterHeadWatch(dir)
    expect(watch.keptSize).toBe(0)
    expect(await watch.observe(answer(entries(5), 0))).toEqual({
      status: 'kept',
      size: 5,
      first: true,
    })
    expect(await watch.observe(answer(entries(12), 5))).toEqual({
      status: 'kept',
      size: 12,
      first: false,
    })
    expect(watch.inconsistent).toBe(false)
    const stored = JSON.parse(await readFile(registerHeadPath(dir), 'utf8'))
    expect(stored.head.size).toBe(12)
    expect(stored.public_key.x).toBe(jwk(keyPair.publicKey).x)
    // A restarted agent goes on from the file.
    const again = new RegisterHeadWatch(dir)
    expect(again.keptSize).toBe(12)
    expect((await again.observe(answer(entries(13), 12))).status).toBe('kept')
    // No head in the answer (an older collector) changes nothing.
    expect(await again.observe(undefined)).toEqual({ status: 'none' })
  })

  it('reports a cut register, a rewritten one re-signed with the same key, and a new key', async () => {
    const watch = new RegisterHeadWatch(dir)
    await watch.observe(answer(entries(20), 0))
    // Cut to 15 entries (and 2 appended after): smaller than the kept head.
    const cut = await watch.observe(answer(entries(17), 20))
    expect(cut).toMatchObject({ status: 'inconsistent', problem: 'rolled-back' })
    expect(watch.inconsistent).toBe(true)
    expect(watch.keptSize).toBe(20)
    // Rewritten under the kept size and grown past it, signed with the same (stolen) key: the
    // proof the collector can make is from the rewritten tree, which does not give the kept root.
    const rewritten = [...entries(20, 'forged'), ...entries(10, 'later')]
    expect(await watch.observe(answer(rewritten, 20))).toMatchObject({
      status: 'inconsistent',
      problem: 'inconsistent',
    })
    // Another key: whatever it signs is refused.
    const mallory = generateKeyPairSync('ed25519')
    expect(
      await watch.observe(answer(entries(25), 20, mallory.privateKey, jwk(mallory.publicKey))),
    ).toMatchObject({ status: 'inconsistent', problem: 'key-changed' })
    const signedByOther = answer(entries(25), 20, mallory.privateKey)
    expect(await watch.observe(signedByOther)).toMatchObject({ problem: 'bad-signature' })
    expect(watch.keptSize).toBe(20)
    // The real register, restored, extends the kept head again.
    expect((await watch.observe(answer(entries(26), 20))).status).toBe('kept')
    expect(watch.inconsistent).toBe(false)
  })

  it('checks overlapping polls one after the other, each against the head the one before kept', async () => {
    const watch = new RegisterHeadWatch(dir)
    // Not awaited in between: the second (a cut register) must be judged against the head the
    // first keeps, not against the empty state both started from.
    const [first, cut] = await Promise.all([
      watch.observe(answer(entries(20), 0)),
      watch.observe(answer(entries(17), 20)),
    ])
    expect(first).toEqual({ status: 'kept', size: 20, first: true })
    expect(cut).toMatchObject({ status: 'inconsistent', problem: 'rolled-back' })
    expect(watch.keptSize).toBe(20)
  })

  it('asks for the head with the grants poll, and not when it keeps none', async () => {
    const seen: string[] = []
    const reply = (body: unknown) =>
      (async (url: URL | string) => {
        seen.push(String(url))
        return new Response(JSON.stringify(body), { status: 200 })
      }) as typeof fetch
    const withHead = { grants: [], register: answer(entries(3), 0) }
    const polled = await fetchGrants('http://127.0.0.1:9', 'cred', {
      registerSize: 0,
      fetch: reply(withHead),
    })
    expect(polled.register?.head.size).toBe(3)
    expect(seen.pop()).toBe('http://127.0.0.1:9/v1/agents/grants?register_size=0')
    // Without registerSize the strict grants schema stands: an extra field is refused.
    await expect(
      fetchGrants('http://127.0.0.1:9', 'cred', { fetch: reply(withHead) }),
    ).rejects.toThrow(/invalid/)
    expect(seen.pop()).toBe('http://127.0.0.1:9/v1/agents/grants')
  })
})
