// The auditor's verification of a register, in the browser: the twin of
// collector/register/verify.ts (verifyEntries) and collector/register/audit.ts (auditRegister),
// check for check and message for message, so that the page and `tally register verify` give
// the same verdict and the same problems on the same register. The collector is trusted for
// nothing here: every hash, root, signature and proof is recomputed with WebCrypto.
import {
  canonicalJson,
  ed25519Key,
  ed25519Valid,
  fromHex,
  jwkThumbprint,
  leafHashOfBytes,
  MerkleTree,
  sha256,
  toHex,
  utf8,
  verifyConsistency,
} from './crypto.js'

export const GENESIS_HASH = '0'.repeat(64)
const HEX64 = /^[0-9a-f]{64}$/
const ENTRY_SIGNATURE_CONTEXT = 'tally-register-entry:v1\n'

/** The entry as hashed and signed: everything but its own signature. */
function entryBody(entry) {
  const { signature: _signature, ...body } = entry
  return body
}

/** SHA-256(prev_hash bytes || canonical entry without `hash` and `signature`), hex. */
export async function entryHash(entry) {
  const { hash: _hash, signature: _signature, ...unsigned } = entry
  const prev = HEX64.test(entry.prev_hash) ? fromHex(entry.prev_hash) : utf8(entry.prev_hash)
  return toHex(await sha256(prev, utf8(canonicalJson(unsigned))))
}

export const leafHash = (entry) => leafHashOfBytes(utf8(canonicalJson(entryBody(entry))))

const entrySignedBytes = (entry) =>
  utf8(`${ENTRY_SIGNATURE_CONTEXT}${canonicalJson(entryBody(entry))}`)

const checkpointBytes = ({ register, size, root, ts }) =>
  utf8(canonicalJson({ register, size, root, ts }))

/** Keys imported once per verification (a countersigner's key recurs on every checkpoint). */
class Keys {
  #cache = new Map()
  of(input) {
    const id = typeof input === 'string' ? input : canonicalJson(input ?? null)
    if (!this.#cache.has(id)) this.#cache.set(id, ed25519Key(input))
    return this.#cache.get(id)
  }
}

const checkpointSignatureValid = async (keys, cp, signature, key) =>
  ed25519Valid(await keys.of(key), signature, checkpointBytes(cp))

/** The problems found so far; the report lists each once, by seq (verify.ts's Problems). */
class Problems {
  list = []
  add(seq, kind, message) {
    this.list.push({ seq, kind, message })
  }
  unique() {
    const seen = new Set()
    const unique = this.list.filter((p) => {
      const key = `${p.seq}\u0000${p.kind}\u0000${p.message}`
      if (seen.has(key)) return false
      seen.add(key)
      return true
    })
    return unique.sort((a, b) => a.seq - b.seq)
  }
}

/** verify.ts's verifyEntries: the chain, each checkpoint's signatures and root, each entry's signature. */
export async function verifyEntries(entries, checkpoints, publicKeyJwk, register) {
  const name = register ?? entries[0]?.register ?? checkpoints[0]?.register ?? 'itsd'
  const problems = new Problems()
  const keys = new Keys()
  const usable = await usableEntries(entries, name, problems)
  for (const moved of outOfOrder(usable.map((x) => x.entry.seq))) {
    const x = usable[moved]
    problems.add(
      x.entry.seq,
      'reordered',
      `entry ${x.entry.seq} is stored out of seq order (row ${x.index + 1})`,
    )
  }
  const { chain, maxSeq } = rebuildChain(usable, problems)
  const heads = await checkCheckpoints(
    chain,
    checkpoints,
    keys,
    publicKeyJwk,
    name,
    maxSeq,
    problems,
  )
  await checkEntrySignatures(chain, await keys.of(publicKeyJwk), heads.lastGood, problems)
  if (heads.beyond !== undefined) {
    const { size, ts } = heads.beyond
    problems.add(
      maxSeq + 1,
      'removed',
      `checkpoint at size ${size} (${ts}) covers ${size} entries but only ` +
        `${maxSeq} are stored: entries ${maxSeq + 1} to ${size} are missing`,
    )
  }
  const unique = problems.unique()
  return {
    register: name,
    ok: unique.length === 0,
    size: chain.length,
    root: await heads.tree.root(),
    checked_checkpoints: heads.checked,
    problems: unique,
  }
}

async function usableEntries(entries, name, problems) {
  const usable = []
  for (const [index, entry] of entries.entries()) {
    if (entry.register !== name) {
      problems.add(
        entry.seq,
        'inserted',
        `entry ${entry.seq} belongs to register ${entry.register}, not ${name}`,
      )
    } else if (!Number.isSafeInteger(entry.seq) || entry.seq < 1) {
      problems.add(
        Number(entry.seq) || 0,
        'inserted',
        `an entry has an invalid seq ${String(entry.seq)}`,
      )
    } else {
      const why = await hashProblem(entry)
      usable.push({ entry, index, valid: why === '', why })
    }
  }
  return usable
}

async function hashProblem(entry) {
  try {
    return (await entryHash(entry)) === entry.hash
      ? ''
      : 'does not give its recorded hash (content changed)'
  } catch (err) {
    return `cannot be hashed: ${err.message}`
  }
}

function rebuildChain(usable, problems) {
  const bySeq = new Map()
  for (const x of usable) {
    const list = bySeq.get(x.entry.seq)
    if (list === undefined) bySeq.set(x.entry.seq, [x])
    else list.push(x)
  }
  const maxSeq = usable.reduce((m, x) => Math.max(m, x.entry.seq), 0)
  const hashOwners = new Map()
  for (const x of usable)
    if (!hashOwners.has(x.entry.hash)) hashOwners.set(x.entry.hash, x.entry.seq)
  const chain = []
  let previous
  let gapStart
  for (let seq = 1; seq <= maxSeq; seq++) {
    const candidates = bySeq.get(seq)
    if (candidates === undefined) {
      gapStart ??= seq
      previous = undefined
      continue
    }
    if (gapStart !== undefined) reportGap(gapStart, seq - 1, problems)
    gapStart = undefined
    const expectedPrev = seq === 1 ? GENESIS_HASH : previous?.hash
    const chosen = chooseEntry(candidates, expectedPrev, bySeq.get(seq + 1) ?? [])
    for (const x of candidates) {
      if (x === chosen) continue
      problems.add(
        seq,
        'inserted',
        `a second entry ${seq} is stored (hash ${x.entry.hash.slice(0, 12)}…) that is not in the chain`,
      )
    }
    checkLink(chosen, previous, hashOwners, problems)
    chain.push(chosen.entry)
    previous = chosen.entry
  }
  return { chain, maxSeq }
}

function reportGap(start, end, problems) {
  problems.add(
    start,
    'removed',
    start === end
      ? `entry ${start} is missing`
      : `entries ${start} to ${end} are missing (${end - start + 1})`,
  )
}

function chooseEntry(candidates, expectedPrev, next) {
  const score = (x) =>
    (x.valid ? 4 : 0) +
    (x.entry.prev_hash === expectedPrev ? 2 : 0) +
    (next.some((n) => n.entry.prev_hash === x.entry.hash) ? 1 : 0)
  const ordered = [...candidates].sort((a, b) =>
    String(a.entry.ts).localeCompare(String(b.entry.ts)),
  )
  let chosen = ordered[0]
  for (const x of ordered) if (score(x) > score(chosen)) chosen = x
  return chosen
}

function checkLink(chosen, previous, hashOwners, problems) {
  const entry = chosen.entry
  const seq = entry.seq
  if (!chosen.valid) {
    problems.add(seq, 'changed', `entry ${seq} ${chosen.why}`)
  } else if (seq === 1 && entry.prev_hash !== GENESIS_HASH) {
    problems.add(
      1,
      'changed',
      'entry 1 does not start the chain (its prev_hash is not the genesis hash)',
    )
  } else if (previous !== undefined && entry.prev_hash !== previous.hash) {
    brokenLink(entry, previous, hashOwners.get(entry.prev_hash), problems)
  }
}

function brokenLink(entry, previous, owner, problems) {
  const seq = entry.seq
  if (entry.prev_hash === previous.prev_hash) {
    problems.add(
      previous.seq,
      'inserted',
      `entries ${previous.seq} and ${seq} follow the same predecessor: entry ${previous.seq} was inserted`,
    )
  } else if (owner !== undefined && owner < seq - 1) {
    problems.add(
      owner + 1,
      'inserted',
      `entry ${seq} follows entry ${owner}: entries ${owner + 1} to ${seq - 1} were inserted`,
    )
  } else if (owner !== undefined) {
    problems.add(seq, 'reordered', `entry ${seq} follows entry ${owner}, not entry ${seq - 1}`)
  } else {
    problems.add(
      previous.seq,
      'changed',
      `entry ${previous.seq} is not the entry that entry ${seq} follows: it was rewritten ` +
        `with a recomputed hash, or entries before ${seq} were removed and renumbered`,
    )
  }
}

async function checkCheckpoints(chain, checkpoints, keys, key, name, maxSeq, problems) {
  const leaves = []
  for (const entry of chain) leaves.push(await leafHash(entry))
  const tree = await MerkleTree.of(leaves)
  const seqAt = chain.map((e) => e.seq)
  const heads = { tree, checked: 0, lastGood: 0, beyond: undefined }
  let firstMismatch
  let laterMismatches = 0
  for (const cp of [...checkpoints].sort((a, b) => a.size - b.size)) {
    if (!(await checkpointSigned(cp, keys, key, name, problems))) continue
    heads.checked++
    if (cp.size > maxSeq) {
      heads.beyond = cp
      continue
    }
    const root = await tree.root(countUpTo(seqAt, cp.size))
    if (root !== cp.root) {
      if (firstMismatch === undefined) firstMismatch = { cp, root, after: heads.lastGood }
      else laterMismatches++
    } else if (firstMismatch === undefined) {
      heads.lastGood = cp.size
    }
  }
  if (firstMismatch !== undefined) {
    const { cp, root, after } = firstMismatch
    problems.add(
      cp.size,
      'checkpoint-mismatch',
      `checkpoint at size ${cp.size} (${cp.ts}) signed root ${cp.root.slice(0, 16)}…, the ` +
        `entries give ${root.slice(0, 16)}…: entries ${after + 1} to ${cp.size} were rewritten` +
        (laterMismatches > 0 ? ` (and ${laterMismatches} later checkpoints do not match)` : ''),
    )
  }
  return heads
}

async function checkpointSigned(cp, keys, key, name, problems) {
  const at = `checkpoint at size ${cp.size} (${cp.ts})`
  if (cp.register !== name) {
    problems.add(
      cp.size,
      'checkpoint-mismatch',
      `${at} is for register ${cp.register}, not ${name}`,
    )
    return false
  }
  if (!(await checkpointSignatureValid(keys, cp, cp.signature, key))) {
    problems.add(cp.size, 'bad-signature', `${at}: the register key's signature does not verify`)
    return false
  }
  for (const cs of cp.countersignatures ?? []) {
    if (!(await checkpointSignatureValid(keys, cp, cs.signature, cs.key))) {
      problems.add(
        cp.size,
        'bad-signature',
        `${at}: the countersignature by ${cs.by} does not verify`,
      )
    }
  }
  return true
}

function countUpTo(seqAt, size) {
  let lo = 0
  let hi = seqAt.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (seqAt[mid] <= size) lo = mid + 1
    else hi = mid
  }
  return lo
}

async function checkEntrySignatures(chain, entryKey, lastGood, problems) {
  for (const entry of chain) {
    if (typeof entry.signature === 'string' && entry.signature !== '') {
      if (!(await ed25519Valid(entryKey, entry.signature, entrySignedBytes(entry)))) {
        problems.add(
          entry.seq,
          'bad-signature',
          `entry ${entry.seq}: its signature does not verify with the register key (the collector did not write it)`,
        )
      }
    } else if (entry.seq > lastGood) {
      problems.add(
        entry.seq,
        'bad-signature',
        `entry ${entry.seq} carries no signature and no signed checkpoint covers it (the collector did not write it)`,
      )
    }
  }
}

/** Indexes of the values outside one longest non-decreasing subsequence (patience sorting). */
function outOfOrder(values) {
  const tails = []
  const parent = new Array(values.length).fill(-1)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    let lo = 0
    let hi = tails.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (values[tails[mid]] <= v) lo = mid + 1
      else hi = mid
    }
    if (lo > 0) parent[i] = tails[lo - 1]
    tails[lo] = i
  }
  const keep = new Set()
  for (let i = tails[tails.length - 1]; i !== undefined && i >= 0; i = parent[i]) keep.add(i)
  const moved = []
  for (let i = 0; i < values.length; i++) if (!keep.has(i)) moved.push(i)
  return moved
}

// --- The audit: fetch over the API, verify here (audit.ts) --------------------------------------

export class AuditError extends Error {
  name = 'AuditError'
}

function looksLikeEntry(v) {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  return (
    typeof v.register === 'string' &&
    typeof v.seq === 'number' &&
    typeof v.ts === 'string' &&
    typeof v.kind === 'string' &&
    typeof v.actor === 'string' &&
    (v.case_id === undefined || typeof v.case_id === 'string') &&
    typeof v.details === 'object' &&
    v.details !== null &&
    !Array.isArray(v.details) &&
    typeof v.prev_hash === 'string' &&
    typeof v.hash === 'string' &&
    (v.signature === undefined || typeof v.signature === 'string')
  )
}

function parseCheckpoints(list, source) {
  if (!Array.isArray(list)) throw new AuditError(`${source}: no list of checkpoints`)
  return list.map((c) => {
    if (
      c === null ||
      typeof c !== 'object' ||
      typeof c.register !== 'string' ||
      typeof c.size !== 'number' ||
      typeof c.root !== 'string' ||
      typeof c.ts !== 'string' ||
      typeof c.signature !== 'string'
    ) {
      throw new AuditError(`${source}: not a signed checkpoint: ${JSON.stringify(c).slice(0, 200)}`)
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

/** `get(path)` resolves to the answer's body or throws an AuditError naming the refusal. */
const base = (register) => `/v1/register/${encodeURIComponent(register)}`

/** Every entry and checkpoint of the register, and the public key the collector serves. */
export async function fetchRegister(get, register) {
  const publicKey = await get('/v1/register/public-key')
  if (typeof publicKey?.x !== 'string')
    throw new AuditError('the collector answered no Ed25519 public key for the register')
  const { checkpoints } = await get(`${base(register)}/checkpoints`)
  const entries = []
  let from = 1
  for (;;) {
    const page = await get(`${base(register)}/entries?from=${from}&limit=10000`)
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

async function latestSigned(keys, checkpoints, register, key) {
  let latest
  for (const cp of checkpoints) {
    if (cp.register !== register || (latest !== undefined && cp.size <= latest.size)) continue
    if (await checkpointSignatureValid(keys, cp, cp.signature, key)) latest = cp
  }
  return latest
}

/** The kept head against the collector's current one (audit.ts's checkKeptHead). */
async function checkKeptHead(get, keys, register, kept, head, key) {
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
  let proof
  try {
    const answer = await get(`${base(register)}/consistency?from=${kept.head.size}&to=${head.size}`)
    if (!Array.isArray(answer?.proof) || !answer.proof.every((p) => typeof p === 'string'))
      throw new AuditError('the answer holds no proof')
    proof = answer.proof
  } catch (err) {
    return [
      {
        seq: kept.head.size,
        kind: 'inconsistent',
        message:
          `the collector gives no consistency proof from ${at} to its head at size ` +
          `${head.size}: ${err.message}`,
      },
    ]
  }
  const check = await headExtends(keys, kept.head, head, proof, key)
  return check === undefined ? [] : [{ seq: kept.head.size, ...check }]
}

/** common/register-head.ts's checkHeadExtends: undefined when `next` extends `kept`. */
async function headExtends(keys, kept, next, proof, key) {
  if (!(await checkpointSignatureValid(keys, next, next.signature, key))) {
    return {
      kind: 'bad-signature',
      message: `the head at size ${next.size} is not signed by the register key`,
    }
  }
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

/**
 * Fetches the register and verifies it here, from the head this browser kept (if any): the
 * result has the report `tally register verify --json` prints, the head to keep next, and the
 * entries and checkpoints fetched (for the page to show).
 */
export async function auditRegister(get, register, keptHead) {
  const fetched = await fetchRegister(get, register)
  const keyId = await jwkThumbprint(fetched.publicKey)
  const keys = new Keys()
  const key = fetched.publicKey
  const checkpoints = [...fetched.checkpoints]
  if (keptHead !== undefined) {
    if (keptHead.register !== register)
      throw new AuditError(`the kept head is of register ${keptHead.register}, not ${register}`)
    if (
      !checkpoints.some(
        (c) => c.size === keptHead.head.size && c.signature === keptHead.head.signature,
      )
    )
      checkpoints.push({ ...keptHead.head, key_id: keptHead.key_id, countersignatures: [] })
  }
  const entriesReport = await verifyEntries(fetched.entries, checkpoints, key, register)
  const head = await latestSigned(keys, fetched.checkpoints, register, key)
  const headProblems =
    keptHead === undefined ? [] : await checkKeptHead(get, keys, register, keptHead, head, key)
  const problems = [...entriesReport.problems, ...headProblems].sort((a, b) => a.seq - b.seq)
  const report = { ...entriesReport, ok: problems.length === 0, problems }
  return {
    report,
    head,
    unsigned: Math.max(0, report.size - (head?.size ?? 0)),
    entries: fetched.entries.length,
    checkpoints: checkpoints.length,
    key_id: keyId,
    fetched,
  }
}

/** The CLI's summary line (audit.ts formatAudit's first line). */
export function summaryLine(result) {
  const { report } = result
  const head =
    `register ${report.register}: ${result.entries} entries, ${result.checkpoints} checkpoints, ` +
    `root ${report.root.slice(0, 16)}…`
  if (report.ok) return `${head}: OK`
  const n = report.problems.length
  return `${head}: ${n} problem${n === 1 ? '' : 's'}`
}
