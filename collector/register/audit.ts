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
  checkHeadExtends,
  checkpointSignatureValid,
  ed25519PublicKey,
  jwkThumbprint,
  looksLikeEntry,
  type PublicKeyInput,
  type RegisterEntry,
  type RegisterName,
  type SignedCheckpoint,
  signCheckpointBytes,
  type VerifyProblem,
  type VerifyReport,
  verifyEntries,
} from './register.ts'

/** How the audit reaches the collector (callApi in the CLI, an in-process app in tests). */
export interface RegisterApi {
  get<T>(path: string): Promise<T>
  post<T>(path: string, body?: unknown): Promise<T>
}

export class AuditError extends Error {
  override name = 'AuditError'
}

export interface FetchedRegister {
  entries: RegisterEntry[]
  checkpoints: SignedCheckpoint[]
  publicKey: Record<string, string>
}

const base = (register: RegisterName) => `/v1/register/${encodeURIComponent(register)}`

export async function fetchRegister(
  api: RegisterApi,
  register: RegisterName,
): Promise<FetchedRegister> {
  const publicKey = await api.get<Record<string, string>>('/v1/register/public-key')
  if (typeof publicKey?.x !== 'string') {
    throw new AuditError('the collector answered no Ed25519 public key for the register')
  }
  const { checkpoints } = await api.get<{ checkpoints: unknown }>(`${base(register)}/checkpoints`)
  const entries: RegisterEntry[] = []
  let from = 1
  for (;;) {
    const page = await api.get<{ entries: unknown; next_from: unknown }>(
      `${base(register)}/entries?from=${from}&limit=10000`,
    )
    if (!Array.isArray(page?.entries))
      throw new AuditError('the collector answered no entries list')
    for (const e of page.entries) {
      if (!looksLikeEntry(e)) {
        throw new AuditError(
          `the collector answered something that is not a register entry: ${JSON.stringify(e).slice(0, 200)}`,
        )
      }
      entries.push(e)
    }
    if (page.next_from === null || page.next_from === undefined) break
    if (typeof page.next_from !== 'number' || page.next_from <= from) {
      throw new AuditError(
        `the collector's paging went backwards (next_from ${String(page.next_from)})`,
      )
    }
    from = page.next_from
  }
  return { entries, checkpoints: parseCheckpoints(checkpoints, 'the collector'), publicKey }
}

export function parseCheckpoints(value: unknown, source: string): SignedCheckpoint[] {
  const list = Array.isArray(value)
    ? value
    : typeof value === 'object' && value !== null && 'checkpoints' in value
      ? (value as { checkpoints: unknown }).checkpoints
      : [value]
  if (!Array.isArray(list)) throw new AuditError(`${source}: no list of checkpoints`)
  return list.map((cp) => {
    const c = cp as Partial<SignedCheckpoint> | null
    if (
      c === null ||
      typeof c !== 'object' ||
      typeof c.register !== 'string' ||
      typeof c.size !== 'number' ||
      typeof c.root !== 'string' ||
      typeof c.ts !== 'string' ||
      typeof c.signature !== 'string'
    ) {
      throw new AuditError(
        `${source}: not a signed checkpoint: ${JSON.stringify(cp).slice(0, 200)}`,
      )
    }
    return {
      register: c.register,
      size: c.size,
      root: c.root,
      ts: c.ts,
      key_id: typeof c.key_id === 'string' ? c.key_id : '',
      signature: c.signature,
      countersignatures: Array.isArray(c.countersignatures) ? c.countersignatures : [],
    }
  })
}

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

export interface AuditResult {
  report: VerifyReport
  entries: number
  checkpoints: number
  /** Where the key came from, and whether the collector still serves the pinned one. */
  key: { source: 'pinned' | 'collector'; key_id: string; collector_key_id: string }
  fetched: FetchedRegister
  /** The latest signed head the collector serves (the one to keep when the report is OK). */
  head: SignedCheckpoint | undefined
  /** Entries stored after that head (no checkpoint covers them yet). */
  unsigned: number
}

/** What an auditor keeps between runs: the last head it verified, and of which collector. */
export interface KeptHead {
  version: 1
  collector: string
  register: RegisterName
  key_id: string
  head: Pick<SignedCheckpoint, 'register' | 'size' | 'root' | 'ts' | 'signature'>
  verified_at: string
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

/** The latest checkpoint whose signature verifies with `key`. */
function latestSigned(
  checkpoints: readonly SignedCheckpoint[],
  register: RegisterName,
  key: PublicKeyInput,
): SignedCheckpoint | undefined {
  let latest: SignedCheckpoint | undefined
  for (const cp of checkpoints) {
    if (cp.register !== register || (latest !== undefined && cp.size <= latest.size)) continue
    if (checkpointSignatureValid(cp, cp.signature, key)) latest = cp
  }
  return latest
}

/**
 * The kept head against the collector's current one: signed by the key in use, not larger,
 * and extended by the consistency proof the collector gives (checked here).
 */
async function checkKeptHead(
  api: RegisterApi,
  register: RegisterName,
  kept: KeptHead,
  head: SignedCheckpoint | undefined,
  key: PublicKeyInput,
): Promise<VerifyProblem[]> {
  const at = `the head you kept (size ${kept.head.size}, ${kept.head.ts})`
  if (!checkpointSignatureValid(kept.head, kept.head.signature, key)) {
    return [
      {
        seq: kept.head.size,
        kind: 'bad-signature',
        message: `${at} does not verify with the register key in use: the key was replaced`,
      },
    ]
  }
  if (head === undefined) {
    return [
      {
        seq: 1,
        kind: 'rolled-back',
        message: `the collector serves no signed head, but ${at} covers ${kept.head.size} entries`,
      },
    ]
  }
  if (head.size < kept.head.size) {
    return [
      {
        seq: head.size + 1,
        kind: 'rolled-back',
        message:
          `the collector's latest signed head covers ${head.size} entries, fewer than ${at}: ` +
          `entries ${head.size + 1} to ${kept.head.size} were removed`,
      },
    ]
  }
  let proof: string[]
  try {
    const answer = await api.get<{ proof?: unknown }>(
      `${base(register)}/consistency?from=${kept.head.size}&to=${head.size}`,
    )
    if (!Array.isArray(answer?.proof) || !answer.proof.every((p) => typeof p === 'string')) {
      throw new AuditError('the answer holds no proof')
    }
    proof = answer.proof as string[]
  } catch (err) {
    return [
      {
        seq: kept.head.size,
        kind: 'inconsistent',
        message:
          `the collector gives no consistency proof from ${at} to its head at size ` +
          `${head.size}: ${(err as Error).message}`,
      },
    ]
  }
  const check = checkHeadExtends(kept.head, head, proof, key)
  if (check.ok) return []
  return [{ seq: kept.head.size, kind: check.problem, message: check.message }]
}

/** Fetches the register and verifies it here. */
export async function auditRegister(
  api: RegisterApi,
  register: RegisterName,
  options: AuditOptions = {},
): Promise<AuditResult> {
  const fetched = await fetchRegister(api, register)
  const collectorKeyId = jwkThumbprint(fetched.publicKey)
  const pinned = options.publicKey === undefined ? undefined : ed25519PublicKey(options.publicKey)
  const keyId =
    pinned === undefined
      ? collectorKeyId
      : jwkThumbprint(pinned.export({ format: 'jwk' }) as Record<string, string>)
  const checkpoints = [...fetched.checkpoints]
  for (const kept of options.keptCheckpoints ?? []) {
    const same = checkpoints.some(
      (c) => c.register === kept.register && c.size === kept.size && c.signature === kept.signature,
    )
    if (!same) checkpoints.push(kept)
  }
  const key = pinned ?? fetched.publicKey
  const kept = options.keptHead
  if (kept !== undefined) {
    if (kept.register !== register) {
      throw new AuditError(`the kept head is of register ${kept.register}, not ${register}`)
    }
    // The entries downloaded must give the kept root too (besides the proof below).
    const keptAsCheckpoint: SignedCheckpoint = {
      ...kept.head,
      key_id: kept.key_id,
      countersignatures: [],
    }
    if (
      !checkpoints.some((c) => c.size === kept.head.size && c.signature === kept.head.signature)
    ) {
      checkpoints.push(keptAsCheckpoint)
    }
  }
  const entriesReport = verifyEntries(fetched.entries, checkpoints, key, register)
  const head = latestSigned(fetched.checkpoints, register, key)
  const headProblems = kept === undefined ? [] : await checkKeptHead(api, register, kept, head, key)
  const problems = [...entriesReport.problems, ...headProblems].sort((a, b) => a.seq - b.seq)
  const report: VerifyReport = { ...entriesReport, ok: problems.length === 0, problems }
  return {
    head,
    unsigned: Math.max(0, report.size - (head?.size ?? 0)),
    report,
    entries: fetched.entries.length,
    checkpoints: checkpoints.length,
    key: {
      source: pinned === undefined ? 'collector' : 'pinned',
      key_id: keyId,
      collector_key_id: collectorKeyId,
    },
    fetched,
  }
}

export function formatAudit(result: AuditResult): string {
  const { report } = result
  const head =
    `register ${report.register}: ${result.entries} entries, ${result.checkpoints} checkpoints, ` +
    `root ${report.root.slice(0, 16)}…`
  if (report.ok) return `${head}: OK`
  const lines = report.problems.map(
    (p) => `  seq ${String(p.seq).padStart(6)}  ${p.kind.padEnd(19)}  ${p.message}`,
  )
  const n = report.problems.length
  return [`${head}: ${n} problem${n === 1 ? '' : 's'}`, ...lines].join('\n')
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
