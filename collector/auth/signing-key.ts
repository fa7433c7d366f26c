/**
 * The collector's grant-signing key (Ed25519). Agents pin its public half at enrollment and
 * trust no grant it did not sign. Collectors behind one load balancer share the key file.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'

export interface GrantSigningKey {
  privateKey: KeyObject
  publicKeyObject: KeyObject
  publicJwk: Record<string, string>
}

export function loadOrCreateSigningKey(file: string): GrantSigningKey {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ed25519')
    writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
    chmodSync(file, 0o600)
  }
  const privateKey = createPrivateKey(readFileSync(file))
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(`${file} must hold an Ed25519 private key, not ${privateKey.asymmetricKeyType}`)
  }
  const publicKeyObject = createPublicKey(privateKey)
  const jwk = publicKeyObject.export({ format: 'jwk' })
  const publicJwk: Record<string, string> = {}
  for (const [k, v] of Object.entries(jwk)) if (typeof v === 'string') publicJwk[k] = v
  return { privateKey, publicKeyObject, publicJwk: { ...publicJwk, alg: 'EdDSA', use: 'sig' } }
}
