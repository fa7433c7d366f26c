/**
 * Encryption at rest for tier I (flow, DNS and web rows, packet segments, export bundles):
 * AES-256-GCM with a key per case, one mechanism for all of them. A case key is stored in
 * `tally.case_keys` wrapped (encrypted) with the collector's master key, 32 random bytes,
 * owner-only, in the file `cases.master_key_file`, or `<data_dir>/case-master.key` when that is
 * not set (single-machine demos: whoever holds the data directory then holds the master key as
 * well, and so every active case's records). Purging a case destroys its keys
 * (crypto-shredding): whatever copy of the ciphertext survives somewhere (an old part, a backup)
 * cannot be read any more.
 *
 * Collectors behind one load balancer share the master key file, as they share the grant-signing
 * key. Two collectors may each create a key for the same case; every ciphertext names the key
 * version it was made with, so both stay readable until the case's keys are destroyed.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KeyedMutex } from '../../common/mutex.ts'
import type { Store } from '../store/client.ts'
import { CaseKeysRepository } from './case-keys-repository.ts'

const KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16

export const masterKeyFile = (dataDir: string): string => join(dataDir, 'case-master.key')

/** The master key file in effect: the configured one, else the demo's in the data directory. */
export const masterKeyPath = (dataDir: string, configured: string | undefined): string =>
  configured ?? masterKeyFile(dataDir)

/** Reads the master key from `file`, creating it (0600) when missing. */
export function loadOrCreateMasterKey(file: string): Buffer {
  if (!existsSync(file)) {
    writeFileSync(file, randomBytes(KEY_BYTES), { mode: 0o600, flag: 'wx' })
    chmodSync(file, 0o600)
  }
  const mode = statSync(file).mode & 0o777
  if ((mode & 0o077) !== 0) {
    throw new Error(
      `${file} must be readable by its owner only (mode ${mode.toString(8)}); chmod 600 it`,
    )
  }
  const key = readFileSync(file)
  if (key.length !== KEY_BYTES) {
    throw new Error(`${file} must hold exactly ${KEY_BYTES} bytes, not ${key.length}`)
  }
  return key
}

/** One AES-256-GCM ciphertext, each part base64 (ClickHouse Strings travel as JSON text). */
export interface Sealed {
  nonce: string
  ciphertext: string
  tag: string
}

/** Encrypts `plaintext`; `aad` binds it to where it belongs (case, grant, file name ...). */
export function seal(key: Buffer, plaintext: Uint8Array, aad: string): Sealed {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(aad, 'utf8'))
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return {
    nonce: nonce.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  }
}

/** Decrypts and authenticates; throws when the key, the bytes or `aad` do not match. */
export function unseal(key: Buffer, sealed: Sealed, aad: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.nonce, 'base64'), {
    authTagLength: TAG_BYTES,
  })
  decipher.setAAD(Buffer.from(aad, 'utf8'))
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'))
  return Buffer.concat([
    decipher.update(Buffer.from(sealed.ciphertext, 'base64')),
    decipher.final(),
  ])
}

export class CaseKeyDestroyed extends Error {
  override name = 'CaseKeyDestroyed'
}

const wrapAad = (caseId: string, version: number) => `tally-case-key:${caseId}:${version}`

function wrap(master: Buffer, caseId: string, version: number, key: Buffer): string {
  const s = seal(master, key, wrapAad(caseId, version))
  return Buffer.concat([
    Buffer.from(s.nonce, 'base64'),
    Buffer.from(s.ciphertext, 'base64'),
    Buffer.from(s.tag, 'base64'),
  ]).toString('base64')
}

function unwrap(master: Buffer, caseId: string, version: number, wrapped: string): Buffer {
  const raw = Buffer.from(wrapped, 'base64')
  if (raw.length !== NONCE_BYTES + KEY_BYTES + TAG_BYTES) {
    throw new CaseKeyDestroyed(`the key ${version} of case ${caseId} is malformed or destroyed`)
  }
  return unseal(
    master,
    {
      nonce: raw.subarray(0, NONCE_BYTES).toString('base64'),
      ciphertext: raw.subarray(NONCE_BYTES, NONCE_BYTES + KEY_BYTES).toString('base64'),
      tag: raw.subarray(NONCE_BYTES + KEY_BYTES).toString('base64'),
    },
    wrapAad(caseId, version),
  )
}

export class CaseKeys {
  readonly #stored: CaseKeysRepository
  readonly #loadMaster: () => Buffer
  #masterKey: Buffer | undefined
  /** One creation at a time per case, so that racing batches do not make two keys. */
  readonly #create = new KeyedMutex()

  /** `master`: the key, or how to load it on first use (loadOrCreateMasterKey). */
  constructor(store: Store, master: Buffer | (() => Buffer)) {
    this.#stored = new CaseKeysRepository(store)
    this.#loadMaster = typeof master === 'function' ? master : () => master
  }

  get #master(): Buffer {
    this.#masterKey ??= this.#loadMaster()
    return this.#masterKey
  }

  /** The case's newest live key, created if it has none. */
  async current(caseId: string): Promise<{ version: number; key: Buffer }> {
    return this.#create.run(caseId, async () => {
      const newest = await this.#stored.newest(caseId)
      if (newest !== undefined) {
        return {
          version: newest.version,
          key: unwrap(this.#master, caseId, newest.version, newest.wrapped),
        }
      }
      const now = Date.now()
      const version = now * 1000 + (randomBytes(2).readUInt16BE(0) % 1000)
      const key = randomBytes(KEY_BYTES)
      await this.#stored.insert(
        caseId,
        { version, wrapped: wrap(this.#master, caseId, version, key) },
        now,
      )
      return { version, key }
    })
  }

  /** A key by version; throws CaseKeyDestroyed when it is gone. */
  async get(caseId: string, version: number): Promise<Buffer> {
    const stored = await this.#stored.byVersion(caseId, version)
    if (stored === undefined || stored.wrapped === '') {
      throw new CaseKeyDestroyed(`the key ${version} of case ${caseId} is destroyed or unknown`)
    }
    return unwrap(this.#master, caseId, version, stored.wrapped)
  }
}
