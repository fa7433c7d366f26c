/**
 * The auditor's side of the register: fetch what the collector holds over its API and verify it
 * here, with verifyEntries, instead of trusting the collector's own /verify. A collector that
 * rewrote its register and re-signed it with a new key is caught by a pinned public key
 * (`--public-key`) and by checkpoints kept elsewhere (`--checkpoints`).
 *
 * The auditor also keeps the last head it verified (a state file of its own). The next run
 * demands an RFC 6962 consistency proof from that head to the collector's current one and checks
 * it here: a register cut below the kept size, or whose kept prefix was rewritten, cannot give
 * one, even re-signed with the register's own (stolen) key.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { readStateFile, writeFileAtomic } from '../../common/atomic-file.ts'
import {
  AuditError,
  auditRegister as auditFetched,
  fetchRegister as fetchOver,
  formatAudit,
  parseCheckpoints as parseAnyCheckpoints,
  type AuditResult as SharedAuditResult,
  type FetchedRegister as SharedFetchedRegister,
  type KeptHead as SharedKeptHead,
} from '../../common/register-verify/audit.ts'
import {
  ed25519PublicKey,
  type PublicKeyInput,
  type RegisterName,
  type SignedCheckpoint,
  signCheckpointBytes,
} from './register.ts'

export { AuditError, formatAudit }

/** How the audit reaches the collector (callApi in the CLI, an in-process app in tests). */
export interface RegisterApi {
  get<T>(path: string): Promise<T>
  post<T>(path: string, body?: unknown): Promise<T>
}

export type FetchedRegister = SharedFetchedRegister<RegisterName>
export type AuditResult = SharedAuditResult<RegisterName>
/** What an auditor keeps between runs: the last head it verified, and of which collector. */
export type KeptHead = SharedKeptHead<RegisterName>

const base = (register: RegisterName) => `/v1/register/${encodeURIComponent(register)}`

const getOver = (api: RegisterApi) => (path: string) => api.get<unknown>(path)

/** Every entry and checkpoint of the register, and the public key the collector serves. */
export const fetchRegister = (api: RegisterApi, register: RegisterName): Promise<FetchedRegister> =>
  fetchOver(getOver(api), register)

/** Signed checkpoints from a list, one checkpoint, or {checkpoints: [...]}; `source` names it. */
export const parseCheckpoints = (value: unknown, source: string): SignedCheckpoint[] =>
  parseAnyCheckpoints(value, source) as SignedCheckpoint[]

/** Checkpoints kept elsewhere: a JSON array, one checkpoint, {checkpoints: [...]}, or JSON lines. */
export function readCheckpointsFile(file: string): SignedCheckpoint[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new AuditError(`cannot read ${file}: ${(err as Error).message}`)
  }
  try {
    return parseCheckpoints(JSON.parse(text), file)
  } catch (err) {
    if (err instanceof AuditError) throw err
    const lines = text.split('\n').filter((l) => l.trim() !== '')
    try {
      return lines.flatMap((l) => parseCheckpoints(JSON.parse(l), file))
    } catch (inner) {
      if (inner instanceof AuditError) throw inner
      throw new AuditError(`${file} holds neither JSON nor JSON lines of checkpoints`)
    }
  }
}

/** A public key file: a JWK (JSON) or a PEM. */
export function readPublicKeyFile(file: string): PublicKeyInput {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new AuditError(`cannot read ${file}: ${(err as Error).message}`)
  }
  const key: PublicKeyInput = text.includes('-----BEGIN')
    ? text
    : (JSON.parse(text) as Record<string, string>)
  try {
    ed25519PublicKey(key)
  } catch (err) {
    throw new AuditError(`${file} holds no Ed25519 public key: ${(err as Error).message}`)
  }
  return key
}

export interface AuditOptions {
  /** The register key as the auditor keeps it; without it, the key the collector gives. */
  publicKey?: PublicKeyInput | undefined
  /** Checkpoints the auditor kept elsewhere, checked alongside the collector's. */
  keptCheckpoints?: SignedCheckpoint[] | undefined
  /** The head this auditor verified last time: the new head must extend it. */
  keptHead?: KeptHead | undefined
}

/** Where `tally register verify` keeps its head without --state: the XDG state directory. */
export function defaultStatePath(
  register: RegisterName,
  collector: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state')
  // One file per collector and register: an auditor who checks several collectors keeps each
  // one's head apart instead of being refused by the file of another.
  const origin = collector.replace(/^[a-z]+:\/\//i, '').replace(/[^A-Za-z0-9.-]+/g, '_')
  return join(base, 'tally', `register-${register}-${origin}.json`)
}

const HEX64 = /^[0-9a-f]{64}$/

/** The kept head, or undefined when there is none yet; a damaged file is an AuditError. */
export function readKeptHead(file: string): KeptHead | undefined {
  try {
    return readStateFile(file, {
      parse: (data) => {
        const v = JSON.parse(data.toString('utf8')) as Partial<KeptHead> | null
        const head = v?.head
        if (
          v?.version !== 1 ||
          typeof v.collector !== 'string' ||
          typeof v.register !== 'string' ||
          typeof v.key_id !== 'string' ||
          typeof v.verified_at !== 'string' ||
          typeof head !== 'object' ||
          head === null ||
          head.register !== v.register ||
          !Number.isSafeInteger(head.size) ||
          typeof head.root !== 'string' ||
          !HEX64.test(head.root) ||
          typeof head.ts !== 'string' ||
          typeof head.signature !== 'string'
        ) {
          throw new Error('not a kept register head')
        }
        return v as KeptHead
      },
      remedy: 'restore it from your own copy; removing it starts over and loses what it proves',
    })
  } catch (err) {
    throw new AuditError((err as Error).message)
  }
}

/** Replaces the kept head atomically (a crash leaves the old one or the new one). */
export function writeKeptHead(file: string, kept: KeptHead): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  writeFileAtomic(file, `${JSON.stringify(kept, null, 2)}\n`, 0o600)
}

/** Fetches the register and verifies it here (common/register-verify/audit.ts). */
export async function auditRegister(
  api: RegisterApi,
  register: RegisterName,
  options: AuditOptions = {},
): Promise<AuditResult> {
  // A pinned key in any form Node reads (a PEM, a KeyObject) is checked and given as its JWK.
  const pinned =
    options.publicKey === undefined
      ? undefined
      : (ed25519PublicKey(options.publicKey).export({ format: 'jwk' }) as Record<string, string>)
  return auditFetched(getOver(api), register, {
    publicKey: pinned,
    keptCheckpoints: options.keptCheckpoints,
    keptHead: options.keptHead,
  })
}

/** An auditor's own Ed25519 private key, from a PEM file. */
export function readPrivateKeyFile(file: string): KeyObject {
  let key: KeyObject
  try {
    key = createPrivateKey(readFileSync(file))
  } catch (err) {
    throw new AuditError(
      `cannot read an Ed25519 private key from ${file}: ${(err as Error).message}\n` +
        'Make one with: openssl genpkey -algorithm ed25519 -out ' +
        file,
    )
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AuditError(`${file} holds a ${key.asymmetricKeyType} key, not Ed25519`)
  }
  return key
}

/**
 * Countersigns the checkpoint at `size` with the auditor's own key, after verifying the register
 * here: a countersignature says "I checked this", so it is refused while the register does not
 * verify up to that size.
 */
export async function countersignCheckpoint(
  api: RegisterApi,
  register: RegisterName,
  size: number,
  by: string,
  privateKey: KeyObject,
  options: AuditOptions = {},
): Promise<{ checkpoint: SignedCheckpoint; audit: AuditResult }> {
  const audit = await auditRegister(api, register, options)
  const checkpoint = audit.fetched.checkpoints.find((c) => c.size === size)
  if (checkpoint === undefined) {
    throw new AuditError(
      `register ${register} has no checkpoint at size ${size}; sign one with \`tally register checkpoint\``,
    )
  }
  const problems = audit.report.problems.filter((p) => p.seq <= size)
  if (problems.length > 0) {
    throw new AuditError(
      `register ${register} does not verify up to size ${size}, so it is not countersigned:\n${formatAudit(audit)}`,
    )
  }
  const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' })
  const answer = await api.post<SignedCheckpoint>(
    `${base(register)}/checkpoints/${size}/countersign`,
    {
      by,
      public_key: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x },
      signature: signCheckpointBytes(checkpoint, privateKey),
    },
  )
  return { checkpoint: answer, audit }
}
