import { createHmac } from 'node:crypto'
import fc from 'fast-check'
import { SignJWT } from 'jose'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  GrantRejected,
  type GrantRejectionReason,
  VerifiedGrant,
  verifyGrant,
} from '../../../agent/grants/verify.ts'
import { SubjectRecorder } from '../../../agent/subject/recorder.ts'
import { dnsRecord, flowRecord, NotGranted, pcapSegment } from '../../../agent/subject/records.ts'
import { GRANT_AUDIENCE, GRANT_ISSUER, GRANT_TYPE } from '../../../protocol/grants.ts'
import { AGENT_ID, claims, grantFor, makeKeys, signGrant, type TestKeys } from './tokens.ts'

const NOW = Date.UTC(2030, 0, 15, 12, 0, 0)

let keys: TestKeys
let otherKeys: TestKeys
beforeAll(async () => {
  keys = await makeKeys()
  otherKeys = await makeKeys()
})

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

async function rejection(promise: Promise<unknown>): Promise<GrantRejectionReason> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(GrantRejected)
    return (error as GrantRejected).reason
  }
  throw new Error('the grant was accepted')
}

describe('verifyGrant', () => {
  it('accepts a grant signed with the pinned key and exposes its scope', async () => {
    const c = claims(NOW, {
      categories: ['flows', 'web'],
      addresses: ['192.0.2.10', '2001:db8::1'],
    })
    const token = await signGrant(keys.pair.privateKey, { ...c }, { jti: 'g-aaaaaaaaaaaaaaaa' })
    const grant = await verifyGrant(token, keys.publicJwk, AGENT_ID, NOW)
    expect(grant).toBeInstanceOf(VerifiedGrant)
    expect(VerifiedGrant.isGenuine(grant)).toBe(true)
    expect(grant.grantId).toBe('g-aaaaaaaaaaaaaaaa')
    expect(grant.caseId).toBe(c.case_id)
    expect(grant.agentId).toBe(AGENT_ID)
    expect(grant.categories).toEqual(['flows', 'web'])
    expect(grant.addresses).toEqual(['192.0.2.10', '2001:db8::1'])
    expect(grant.window).toEqual(c.window)
    expect(grant.hostMode).toBe(false)
    expect(grant.allows('flows')).toBe(true)
    expect(grant.allows('dns')).toBe(false)
    expect(grant.active(NOW)).toBe(true)
    expect(grant.active(c.window.start - 1)).toBe(false)
    expect(grant.active(c.window.end)).toBe(false)
    expect(grant.token).toBe(token)
    // Frozen: the scope cannot be widened after verification.
    expect(() => (grant.categories as string[]).push('packets')).toThrow()
    expect(() => {
      ;(grant as unknown as { caseId: string }).caseId = 'c-other'
    }).toThrow()
  })

  it('accepts a host-mode grant (no addresses)', async () => {
    const grant = await grantFor(keys, NOW, { addresses: [] })
    expect(grant.hostMode).toBe(true)
  })

  it('rejects a grant signed with another key', async () => {
    const token = await signGrant(otherKeys.pair.privateKey, { ...claims(NOW) })
    expect(await rejection(verifyGrant(token, keys.publicJwk, AGENT_ID, NOW))).toBe('signature')
  })

  it('rejects alg none', async () => {
    const header = b64url({ alg: 'none', typ: GRANT_TYPE })
    const payload = b64url({
      ...claims(NOW),
      iss: GRANT_ISSUER,
      aud: GRANT_AUDIENCE,
      jti: 'g-1',
      exp: NOW / 1000 + 3600,
    })
    for (const token of [`${header}.${payload}.`, `${header}.${payload}`]) {
      const reason = await rejection(verifyGrant(token, keys.publicJwk, AGENT_ID, NOW))
      expect(['algorithm', 'malformed']).toContain(reason)
    }
  })

  it('rejects HS256 signed with the public key as the secret', async () => {
    const payload = {
      ...claims(NOW),
      iss: GRANT_ISSUER,
      aud: GRANT_AUDIENCE,
      jti: 'g-1',
      exp: Math.floor(NOW / 1000) + 3600,
    }
    const secrets = [
      new TextEncoder().encode(JSON.stringify(keys.publicJwk)),
      Buffer.from(keys.publicJwk.x ?? '', 'base64url'),
      new TextEncoder().encode(keys.publicJwk.x ?? ''),
    ]
    for (const secret of secrets) {
      const token = await new SignJWT(payload)
        .setProtectedHeader({ alg: 'HS256', typ: GRANT_TYPE })
        .sign(secret)
      expect(await rejection(verifyGrant(token, keys.publicJwk, AGENT_ID, NOW))).toBe('algorithm')
      // The same by hand, in case a library ever "helps" with the header.
      const head = b64url({ alg: 'HS256', typ: GRANT_TYPE })
      const body = b64url(payload)
      const mac = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')
      expect(
        await rejection(verifyGrant(`${head}.${body}.${mac}`, keys.publicJwk, AGENT_ID, NOW)),
      ).toBe('algorithm')
    }
  })

  it('rejects an expired grant, and one whose window is over', async () => {
    const c = claims(NOW, { window: { start: NOW - 7_200_000, end: NOW - 3_600_000 } })
    const expired = await signGrant(keys.pair.privateKey, { ...c })
    expect(await rejection(verifyGrant(expired, keys.publicJwk, AGENT_ID, NOW))).toBe('expired')
    // exp still ahead but the window itself is over.
    const over = await signGrant(keys.pair.privateKey, { ...c }, { expMs: NOW + 3_600_000 })
    expect(await rejection(verifyGrant(over, keys.publicJwk, AGENT_ID, NOW))).toBe('window')
    // An empty window.
    const empty = await signGrant(
      keys.pair.privateKey,
      { ...claims(NOW, { window: { start: NOW + 10, end: NOW + 10 } }) },
      { nbfMs: NOW - 1000, expMs: NOW + 3_600_000 },
    )
    expect(await rejection(verifyGrant(empty, keys.publicJwk, AGENT_ID, NOW))).toBe('window')
  })

  it('says not-yet-valid for a grant whose nbf is ahead', async () => {
    const c = claims(NOW, { window: { start: NOW + 600_000, end: NOW + 3_600_000 } })
    const token = await signGrant(keys.pair.privateKey, { ...c })
    expect(await rejection(verifyGrant(token, keys.publicJwk, AGENT_ID, NOW))).toBe('not-yet-valid')
    const later = await verifyGrant(token, keys.publicJwk, AGENT_ID, NOW + 600_000)
    expect(later.active(NOW + 600_000)).toBe(true)
  })

  it("rejects another agent's grant", async () => {
    const token = await signGrant(keys.pair.privateKey, {
      ...claims(NOW, { agent_id: 'a-ffffffffffffffff' }),
    })
    expect(await rejection(verifyGrant(token, keys.publicJwk, AGENT_ID, NOW))).toBe('agent')
    // sub naming another agent while agent_id names this one.
    const mixed = await signGrant(keys.pair.privateKey, { ...claims(NOW) }, { sub: 'a-other' })
    expect(await rejection(verifyGrant(mixed, keys.publicJwk, AGENT_ID, NOW))).toBe(
      'registered-claims',
    )
  })

  it('rejects an extra claim, a missing or empty category list, and invalid claims', async () => {
    const bad = [
      { ...claims(NOW), extra: 'x' },
      { ...claims(NOW), window: { start: NOW - 1, end: NOW + 1000, note: 'x' } },
      (({ categories: _c, ...rest }) => rest)(claims(NOW)),
      { ...claims(NOW), categories: [] },
      { ...claims(NOW), categories: ['flows', 'screenshots'] },
      { ...claims(NOW), addresses: ['not-an-address'] },
      { ...claims(NOW), case_id: 'c-1' },
    ]
    for (const payload of bad) {
      const token = await signGrant(keys.pair.privateKey, payload)
      expect(await rejection(verifyGrant(token, keys.publicJwk, AGENT_ID, NOW))).toBe('claims')
    }
  })

  it('rejects a tampered payload', async () => {
    const token = await signGrant(keys.pair.privateKey, { ...claims(NOW) })
    const [head, body, sig] = token.split('.')
    const payload = JSON.parse(Buffer.from(body ?? '', 'base64url').toString('utf8'))
    payload.addresses = ['192.0.2.99']
    payload.categories = ['flows', 'dns', 'web', 'packets']
    const tampered = `${head}.${b64url(payload)}.${sig}`
    expect(await rejection(verifyGrant(tampered, keys.publicJwk, AGENT_ID, NOW))).toBe('signature')
    // One flipped signature bit.
    const sigBytes = Buffer.from(sig ?? '', 'base64url')
    sigBytes[5] = (sigBytes[5] ?? 0) ^ 1
    const flipped = `${head}.${body}.${sigBytes.toString('base64url')}`
    expect(await rejection(verifyGrant(flipped, keys.publicJwk, AGENT_ID, NOW))).toBe('signature')
  })

  it('rejects a wrong issuer, audience or type, and a missing jti', async () => {
    const c = { ...claims(NOW) }
    const cases: [Parameters<typeof signGrant>[2], GrantRejectionReason][] = [
      [{ issuer: 'someone-else' }, 'issuer'],
      [{ audience: 'tally-drilldown' }, 'audience'],
      [{ typ: 'tally-access+jwt' }, 'type'],
      [{ typ: 'JWT' }, 'type'],
      [{ jti: null }, 'registered-claims'],
    ]
    for (const [options, reason] of cases) {
      const token = await signGrant(keys.pair.privateKey, c, options)
      expect(await rejection(verifyGrant(token, keys.publicJwk, AGENT_ID, NOW))).toBe(reason)
    }
  })

  it('refuses a pinned key that is not an Ed25519 public JWK', async () => {
    const token = await signGrant(keys.pair.privateKey, { ...claims(NOW) })
    const bad: Record<string, string>[] = [
      {},
      { ...keys.publicJwk, crv: 'X25519' },
      { kty: 'oct', k: keys.publicJwk.x ?? '' },
      { ...keys.publicJwk, d: keys.publicJwk.x ?? '' },
      { ...keys.publicJwk, x: 'AAAA' },
    ]
    for (const jwk of bad) {
      expect(await rejection(verifyGrant(token, jwk, AGENT_ID, NOW))).toBe('bad-pinned-key')
    }
  })

  it('rejects garbage with GrantRejected only', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.tuple(fc.base64String(), fc.base64String(), fc.base64String()).map((p) => p.join('.')),
        ),
        async (token) => {
          const reason = await rejection(verifyGrant(token, keys.publicJwk, AGENT_ID, NOW))
          expect(typeof reason).toBe('string')
        },
      ),
      { numRuns: 200 },
    )
  })
})

describe('a VerifiedGrant cannot be made otherwise', () => {
  it('the constructor refuses without the module-private key', () => {
    const Ctor = VerifiedGrant as unknown as new (...args: unknown[]) => VerifiedGrant
    expect(() => new Ctor(Symbol('VerifiedGrant.issue'), 'g-1', claims(NOW), 'token')).toThrow(
      TypeError,
    )
    expect(() => new Ctor(undefined, 'g-1', claims(NOW), 'token')).toThrow(TypeError)
    expect(() => Reflect.construct(VerifiedGrant, [Symbol.for('VerifiedGrant.issue')])).toThrow(
      TypeError,
    )
  })

  it('a look-alike object is not genuine, and tier I builders refuse it', () => {
    const fake = Object.create(VerifiedGrant.prototype) as VerifiedGrant
    Object.assign(fake, {
      grantId: 'g-1',
      caseId: 'c-0123456789abcdef',
      categories: ['flows', 'dns', 'web', 'packets'],
      addresses: ['192.0.2.10'],
      window: { start: 0, end: Number.MAX_SAFE_INTEGER },
    })
    expect(VerifiedGrant.isGenuine(fake)).toBe(false)
    const flow = {
      start: 1,
      end: 2,
      ip_version: 4 as const,
      protocol: 6,
      src: '192.0.2.10',
      dst: '192.0.2.1',
      src_port: 1,
      dst_port: 2,
      bytes: 1,
      packets: 1,
      tcp_flags: 0,
      community_id: '1:x',
    }
    expect(() => flowRecord(fake, flow)).toThrow(NotGranted)
    expect(() => new SubjectRecorder(fake, { subject: ['192.0.2.10'] })).toThrow(TypeError)
  })

  it('tier I builders refuse a category the grant does not allow', async () => {
    const grant = await grantFor(keys, NOW, { categories: ['flows'] })
    expect(() =>
      dnsRecord(grant, {
        ts: 1,
        client: '192.0.2.10',
        server: '192.0.2.53',
        query: 'example.org',
        qtype: 'A',
        rcode: 'NOERROR',
      }),
    ).toThrow(NotGranted)
    expect(() => pcapSegment(grant, { index: 0, first: 1, last: 1, packets: 0, data: '' })).toThrow(
      NotGranted,
    )
  })
})
