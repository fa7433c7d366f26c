/**
 * The auditor's verification of a register fetched over the API: the register's entries and
 * checkpoints checked here (verifyEntries), and the head verified last time (if any) extended by
 * the collector's current one, as an RFC 6962 consistency proof shows. `tally register verify`
 * and the console's auditor page both run this, so that they give the same verdict and the
 * same problems by construction.
 *
 * The collector is a party the audit does not trust: its answers are taken raw, by path, and
 * their shape judged here, so a malformed answer is a finding of the audit.
 */

import { checkpointSignatureValid, verifyEntries } from './entries.ts'
import { jwkThumbprint, KeyRing, type VerifierKeyInput } from './keys.ts'
import { verifyConsistency } from './merkle.ts'
import {
  looksLikeEntry,
  type Problem,
  type ProblemKind,
  type Report,
  type VerifiedCheckpoint,
  type VerifiedEntry,
} from './model.ts'

export class AuditError extends Error {
  override name = 'AuditError'
}

/** GETs an API path and resolves to the answer's body; a refusal is an AuditError naming it. */
export type RegisterGet = (path: string) => Promise<unknown>

type PublicJwk = { kty?: string; crv?: string; x?: string } & Record<string, unknown>

export interface FetchedRegister<N extends string = string> {
  entries: VerifiedEntry<N>[]
  checkpoints: VerifiedCheckpoint<N>[]
  publicKey: PublicJwk
}

/** What an auditor keeps between runs: the last head it verified, and of which collector. */
export interface KeptHead<N extends string = string> {
  version: 1
  collector: string
  register: N
  key_id: string
  head: Pick<VerifiedCheckpoint<N>, 'register' | 'size' | 'root' | 'ts' | 'signature'>
  verified_at: string
}

export interface AuditOptions<N extends string = string> {
  /** The register key as the auditor keeps it (a JWK); without it, the key the collector gives. */
  publicKey?: { kty?: string; crv?: string; x?: string } | undefined
  /** Checkpoints the auditor kept elsewhere, checked alongside the collector's. */
  keptCheckpoints?: VerifiedCheckpoint<N>[] | undefined
  /** The head this auditor verified last time: the new head must extend it. */
  keptHead?: KeptHead<N> | undefined
}

export interface AuditResult<N extends string = string> {
  report: Report<N>
  entries: number
  checkpoints: number
  /** Where the key came from, and whether the collector still serves the pinned one. */
  key: { source: 'pinned' | 'collector'; key_id: string; collector_key_id: string }
  fetched: FetchedRegister<N>
  /** The latest signed head the collector serves (the one to keep when the report is OK). */
  head: VerifiedCheckpoint<N> | undefined
  /** Entries stored after that head (no checkpoint covers them yet). */
  unsigned: number
}

const base = (register: string) => `/v1/register/${encodeURIComponent(register)}`
const excerpt = (value: unknown) => String(JSON.stringify(value)).slice(0, 200)

/** Every entry and checkpoint of the register, and the public key the collector serves. */
export async function fetchRegister<N extends string>(
  get: RegisterGet,
  register: N,
): Promise<FetchedRegister<N>> {
  const publicKey = (await get('/v1/register/public-key')) as PublicJwk | null
  if (typeof publicKey?.x !== 'string') {
    throw new AuditError('the collector answered no Ed25519 public key for the register')
  }
  const { checkpoints } = ((await get(`${base(register)}/checkpoints`)) ?? {}) as {
    checkpoints?: unknown
  }
  const entries: VerifiedEntry<N>[] = []
  let from = 1
  for (;;) {
    const page = (await get(`${base(register)}/entries?from=${from}&limit=10000`)) as {
      entries?: unknown
      next_from?: unknown
    } | null
    if (!Array.isArray(page?.entries)) {
      throw new AuditError('the collector answered no entries list')
    }
    for (const e of page.entries as unknown[]) {
      if (!looksLikeEntry(e)) {
        throw new AuditError(
          `the collector answered something that is not a register entry: ${excerpt(e)}`,
        )
      }
      entries.push(e as VerifiedEntry<N>)
    }
    if (page.next_from === null || page.next_from === undefined) break
    if (typeof page.next_from !== 'number' || page.next_from <= from) {
      throw new AuditError(
        `the collector's paging went backwards (next_from ${String(page.next_from)})`,
      )
    }
    from = page.next_from
  }
  return {
    entries,
    checkpoints: parseCheckpoints(checkpoints, 'the collector') as VerifiedCheckpoint<N>[],
    publicKey,
  }
}

/** Signed checkpoints from a list, one checkpoint, or {checkpoints: [...]}; `source` names it. */
export function parseCheckpoints(value: unknown, source: string): VerifiedCheckpoint[] {
  const list = Array.isArray(value)
    ? value
    : typeof value === 'object' && value !== null && 'checkpoints' in value
      ? (value as { checkpoints: unknown }).checkpoints
      : [value]
  if (!Array.isArray(list)) throw new AuditError(`${source}: no list of checkpoints`)
  return list.map((cp: unknown) => {
    const c = cp as Partial<VerifiedCheckpoint> | null
    if (
      c === null ||
      typeof c !== 'object' ||
      typeof c.register !== 'string' ||
      typeof c.size !== 'number' ||
      typeof c.root !== 'string' ||
      typeof c.ts !== 'string' ||
      typeof c.signature !== 'string'
    ) {
      throw new AuditError(`${source}: not a signed checkpoint: ${excerpt(cp)}`)
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

/** The latest checkpoint whose signature verifies with `key`. */
async function latestSigned<N extends string>(
  keys: KeyRing,
  checkpoints: readonly VerifiedCheckpoint<N>[],
  register: N,
  key: VerifierKeyInput,
): Promise<VerifiedCheckpoint<N> | undefined> {
  let latest: VerifiedCheckpoint<N> | undefined
  for (const cp of checkpoints) {
    if (cp.register !== register || (latest !== undefined && cp.size <= latest.size)) continue
    if (await checkpointSignatureValid(keys, cp, cp.signature, key)) latest = cp
  }
  return latest
}

interface Head {
  register: string
  size: number
  root: string
  ts: string
  signature: string
}

/**
 * Whether `next` is a head signed by `key` that extends `kept` (a head verified earlier), as
 * `proof` (RFC 6962 PROOF(kept.size, next)) shows: undefined when it does, else the problem.
 * Without a kept head (an agent's first poll, which pins the key), only the signature.
 */
export async function headExtends(
  keys: KeyRing,
  kept: Omit<Head, 'signature'> | undefined,
  next: Head,
  proof: readonly string[],
  key: VerifierKeyInput,
): Promise<{ kind: ProblemKind; message: string } | undefined> {
  if (!(await checkpointSignatureValid(keys, next, next.signature, key))) {
    return {
      kind: 'bad-signature',
      message: `the head at size ${next.size} is not signed by the register key`,
    }
  }
  if (kept === undefined) return undefined
  if (kept.register !== next.register) {
    return {
      kind: 'inconsistent',
      message: `the kept head is of register ${kept.register}, not ${next.register}`,
    }
  }
  if (next.size < kept.size) {
    return {
      kind: 'rolled-back',
      message:
        `the register has ${next.size} entries, fewer than the ${kept.size} of the head kept ` +
        `from ${kept.ts}: entries were removed`,
    }
  }
  if (!(await verifyConsistency(kept.size, next.size, kept.root, next.root, proof))) {
    return {
      kind: 'inconsistent',
      message:
        `no valid consistency proof from the head kept at size ${kept.size} (${kept.ts}) to ` +
        `the head at size ${next.size}: the first ${kept.size} entries were rewritten or removed`,
    }
  }
  return undefined
}

/** The consistency proof the collector gives from `from` to `to`; an AuditError when none. */
async function consistencyProof(
  get: RegisterGet,
  register: string,
  from: number,
  to: number,
): Promise<string[]> {
  const answer = (await get(`${base(register)}/consistency?from=${from}&to=${to}`)) as {
    proof?: unknown
  } | null
  if (!Array.isArray(answer?.proof) || !answer.proof.every((p) => typeof p === 'string')) {
    throw new AuditError('the answer holds no proof')
  }
  return answer.proof as string[]
}

/**
 * The kept head against the collector's current one: signed by the key in use, not larger,
 * and extended by the consistency proof the collector gives (checked here).
 */
async function checkKeptHead<N extends string>(
  get: RegisterGet,
  keys: KeyRing,
  register: N,
  kept: KeptHead<N>,
  head: VerifiedCheckpoint<N> | undefined,
  key: VerifierKeyInput,
): Promise<Problem[]> {
  const at = `the head you kept (size ${kept.head.size}, ${kept.head.ts})`
  if (!(await checkpointSignatureValid(keys, kept.head, kept.head.signature, key))) {
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
    proof = await consistencyProof(get, register, kept.head.size, head.size)
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
  const check = await headExtends(keys, kept.head, head, proof, key)
  return check === undefined ? [] : [{ seq: kept.head.size, ...check }]
}

/** The collector's checkpoints, those the auditor kept elsewhere, and the kept head's. */
function checkpointsToCheck<N extends string>(
  fetched: FetchedRegister<N>,
  register: N,
  options: AuditOptions<N>,
): VerifiedCheckpoint<N>[] {
  const checkpoints = [...fetched.checkpoints]
  for (const kept of options.keptCheckpoints ?? []) {
    const same = checkpoints.some(
      (c) => c.register === kept.register && c.size === kept.size && c.signature === kept.signature,
    )
    if (!same) checkpoints.push(kept)
  }
  const kept = options.keptHead
  if (kept !== undefined) {
    if (kept.register !== register) {
      throw new AuditError(`the kept head is of register ${kept.register}, not ${register}`)
    }
    // The entries downloaded must give the kept root too (besides the proof).
    if (
      !checkpoints.some((c) => c.size === kept.head.size && c.signature === kept.head.signature)
    ) {
      checkpoints.push({ ...kept.head, key_id: kept.key_id, countersignatures: [] })
    }
  }
  return checkpoints
}

/** Fetches the register and verifies it here. */
export async function auditRegister<N extends string>(
  get: RegisterGet,
  register: N,
  options: AuditOptions<N> = {},
): Promise<AuditResult<N>> {
  const fetched = await fetchRegister(get, register)
  const collectorKeyId = await jwkThumbprint(fetched.publicKey)
  const pinned = options.publicKey
  const keyId = pinned === undefined ? collectorKeyId : await jwkThumbprint(pinned)
  const checkpoints = checkpointsToCheck(fetched, register, options)
  const key = pinned ?? fetched.publicKey
  const keys = new KeyRing()
  const entriesReport = await verifyEntries(fetched.entries, checkpoints, key, register, keys)
  const head = await latestSigned(keys, fetched.checkpoints, register, key)
  const kept = options.keptHead
  const headProblems =
    kept === undefined ? [] : await checkKeptHead(get, keys, register, kept, head, key)
  const problems = [...entriesReport.problems, ...headProblems].sort((a, b) => a.seq - b.seq)
  const report: Report<N> = { ...entriesReport, ok: problems.length === 0, problems }
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

/** The verdict's line: the register, what was checked, and OK or how many problems. */
export function summaryLine(result: AuditResult): string {
  const { report } = result
  const head =
    `register ${report.register}: ${result.entries} entries, ${result.checkpoints} checkpoints, ` +
    `root ${report.root.slice(0, 16)}…`
  if (report.ok) return `${head}: OK`
  const n = report.problems.length
  return `${head}: ${n} problem${n === 1 ? '' : 's'}`
}

/** The verdict as `tally register verify` prints it: the summary line, then each problem. */
export function formatAudit(result: AuditResult): string {
  const lines = result.report.problems.map(
    (p) => `  seq ${String(p.seq).padStart(6)}  ${p.kind.padEnd(19)}  ${p.message}`,
  )
  return [summaryLine(result), ...lines].join('\n')
}
