/**
 * The collector's grant-signing key (Ed25519). Agents pin its public half at enrollment and
 * trust no grant it did not sign. Collectors behind one load balancer share the key file.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readStateFile, writeFileAtomic } from '../../common/atomic-file.ts'

export interface GrantSigningKey {
  privateKey: KeyObject
  publicKeyObject: KeyObject
  publicJwk: Record<string, string>
}

/**
 * Loads the key, or makes one on first start (written atomically: a crash leaves no empty key).
 * An empty or corrupt file stops the collector with one line naming it: a new key would not
 * verify what the old one signed (agents pinned it, the register's checkpoints use it).
 */
export function loadOrCreateSigningKey(file: string): GrantSigningKey {
  const readKey = () =>
    readStateFile(file, {
      parse: (pem) => {
        const key = createPrivateKey(pem)
        if (key.asymmetricKeyType !== 'ed25519') {
          throw new Error(`an Ed25519 private key is needed, not ${key.asymmetricKeyType}`)
        }
        return key
      },
      remedy: 'restore it from a backup (a new key would not verify what this one signed)',
    })
  let privateKey = readKey()
  if (privateKey === undefined) {
    const generated = generateKeyPairSync('ed25519').privateKey
    writeFileAtomic(file, generated.export({ format: 'pem', type: 'pkcs8' }), 0o600)
    privateKey = generated
  }
  const publicKeyObject = createPublicKey(privateKey)
  const jwk = publicKeyObject.export({ format: 'jwk' })
  const publicJwk: Record<string, string> = {}
  for (const [k, v] of Object.entries(jwk)) if (typeof v === 'string') publicJwk[k] = v
  return { privateKey, publicKeyObject, publicJwk: { ...publicJwk, alg: 'EdDSA', use: 'sig' } }
}
