/**
 * Verification of a register from its entries in stored order and its checkpoints. The check
 * itself is common/register-verify/ (the one the auditor's CLI and the console's auditor page
 * run too); here the collector's names and key forms, and what only the store can show.
 */
import { KeyObject } from 'node:crypto'
import { ed25519PublicKey, type PublicKeyInput } from '../../common/register-head.ts'
import { verifyEntries as verifyRegisterEntries } from '../../common/register-verify/entries.ts'
import type { VerifierKeyInput } from '../../common/register-verify/keys.ts'
import type {
  RegisterEntry,
  RegisterName,
  SignedCheckpoint,
  VerifyProblem,
  VerifyReport,
} from './model.ts'
import type { StoredEntry } from './repository.ts'

/**
 * The key in a form WebCrypto imports: a KeyObject (or a PEM Node reads and WebCrypto may not,
 * a private key's, say) goes as its public JWK; one that is no Ed25519 key verifies nothing.
 */
export function verifierKey(key: PublicKeyInput): VerifierKeyInput {
  if (!(key instanceof KeyObject) && typeof key !== 'string') return key as VerifierKeyInput
  try {
    const { kty, crv, x } = ed25519PublicKey(key).export({ format: 'jwk' })
    return { kty: String(kty), crv: String(crv), x: String(x) }
  } catch {
    return { kty: 'OKP', crv: 'Ed25519', x: '' }
  }
}

/**
 * Verifies a register from its entries in stored order and its checkpoints (see
 * common/register-verify/entries.ts for what it recomputes and how problems are named).
 */
export function verifyEntries(
  entries: RegisterEntry[],
  checkpoints: SignedCheckpoint[],
  publicKeyJwk: PublicKeyInput,
  register?: RegisterName,
): Promise<VerifyReport> {
  const name: RegisterName = register ?? entries[0]?.register ?? checkpoints[0]?.register ?? 'itsd'
  return verifyRegisterEntries(entries, checkpoints, verifierKey(publicKeyJwk), name)
}

/**
 * What verifyEntries cannot see from the entries alone: whether each row's index columns still
 * say what its entry says (a case hidden from a case_id search, an entry moved to another seq).
 */
export function columnProblems(stored: StoredEntry[]): VerifyProblem[] {
  const problems: VerifyProblem[] = []
  for (const row of stored) {
    const e = row.entry
    const differ = differingColumns(row)
    if (differ.length > 0) {
      problems.push({
        seq: e.seq,
        kind: 'changed',
        message: `entry ${e.seq}: the stored ${differ.join(', ')} column(s) no longer say what the entry says`,
      })
    }
    if (row.seq !== e.seq) {
      problems.push({
        seq: e.seq,
        kind: 'reordered',
        message: `entry ${e.seq} is stored under seq ${row.seq}`,
      })
    }
  }
  return problems
}

function differingColumns(row: StoredEntry): string[] {
  const e = row.entry
  const columns: [string, boolean][] = [
    ['register', row.register === e.register],
    ['kind', row.kind === e.kind],
    ['actor', row.actor === e.actor],
    ['case_id', row.case_id === (e.case_id ?? '')],
    ['prev_hash', row.prev_hash === e.prev_hash],
    ['hash', row.hash === e.hash],
    ['ts', row.ts_ms === Date.parse(e.ts)],
  ]
  return columns.filter(([, same]) => !same).map(([name]) => name)
}
