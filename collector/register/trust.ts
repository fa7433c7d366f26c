/**
 * Which stored entries the collector wrote: what anything that decides from the register (role
 * reconciliation, guard settings, a case's state) may read. An entry stands when its own
 * signature verifies with the register key, or, stored before entries were signed (migration
 * 013), when a checkpoint signed with that key covers it.
 */
import { MerkleTree } from '../../common/merkle.ts'
import { checkpointSignatureValid } from '../../common/register-head.ts'
import { MAX_PAGE } from '../../protocol/api/names.ts'
import { linkProblem } from './chain.ts'
import { type CaseOnRecord, GENESIS_HASH, type RegisterEntry, type RegisterName } from './model.ts'
import type { RegisterRepository, StoredEntry } from './repository.ts'
import { entryHash, entrySignatureValid, leafHashOfText, type RegisterKey } from './signing.ts'

/** The workflow's entry that issues a case's grants (collector/cases/workflow.ts). */
const GRANTS_ISSUED = 'grants_issued'

export class TrustedEntries {
  readonly #repository: RegisterRepository
  readonly #key: RegisterKey
  /** Entries from before entries were signed that a signed checkpoint covers: seq -> hash. */
  readonly #legacy = new Map<RegisterName, Promise<Map<number, string>>>()
  /** What the register says of a case, per register; emptied by every append to it. */
  readonly #caseRecords = new Map<RegisterName, Map<string, Promise<CaseOnRecord | undefined>>>()

  constructor(repository: RegisterRepository, key: RegisterKey) {
    this.#repository = repository
    this.#key = key
  }

  /** What the register says of its cases may have changed (an append, even a failed one). */
  forgetCases(register: RegisterName): void {
    this.#caseRecords.delete(register)
  }

  /**
   * The entries of these rows that the collector wrote, each where it was written: an entry
   * copied into a row of another seq, register or case is not taken.
   */
  async of(register: RegisterName, stored: StoredEntry[]): Promise<RegisterEntry[]> {
    const legacy = stored.some((s) => s.signature === '')
      ? await this.#legacyCovered(register)
      : null
    const out: RegisterEntry[] = []
    for (const s of stored) {
      const e = s.entry
      if (e.register !== register || e.seq !== s.seq) continue
      if ((e.case_id ?? '') !== s.case_id) continue
      const written = e.signature
        ? entrySignatureValid(e, this.#key.public)
        : legacy?.get(e.seq) === e.hash && entryHash(e) === e.hash
      if (written) out.push(e)
    }
    return out
  }

  /**
   * What the register's signed entries say of a case. One read of the case's entries (a skip
   * index on case_id), kept until the next append to this register.
   */
  caseOnRecord(register: RegisterName, caseId: string): Promise<CaseOnRecord | undefined> {
    let cache = this.#caseRecords.get(register)
    if (cache === undefined) {
      cache = new Map()
      this.#caseRecords.set(register, cache)
    }
    const cached = cache.get(caseId)
    if (cached !== undefined) return cached
    const read = this.#readCaseOnRecord(register, caseId)
    cache.set(caseId, read)
    // A failed read is not kept: the next call reads again.
    read.catch(() => this.#caseRecords.get(register)?.delete(caseId))
    return read
  }

  async #readCaseOnRecord(
    register: RegisterName,
    caseId: string,
  ): Promise<CaseOnRecord | undefined> {
    const stored = await this.#repository.entries(register, { from: 0, caseId })
    const entries = (await this.of(register, stored)).filter((e) => e.case_id === caseId)
    let record: CaseOnRecord | undefined
    for (const entry of entries) {
      const state = entry.details.state
      if (typeof state !== 'string') continue
      record = { ...record, state, seq: entry.seq, kind: entry.kind }
      if (entry.kind === GRANTS_ISSUED) record.grants = grantsOf(entry)
    }
    return record
  }

  /**
   * The entries stored before entries were signed (migration 013) that a checkpoint signed with
   * this key covers, seq -> hash: the chain from the first entry, one entry per seq chosen by its
   * link, must give the checkpoint's root. Worked out once per process: no unsigned entry is
   * ever written again, so the set cannot grow.
   */
  #legacyCovered(register: RegisterName): Promise<Map<number, string>> {
    let found = this.#legacy.get(register)
    if (found === undefined) {
      found = this.#readLegacyCovered(register)
      this.#legacy.set(register, found)
      found.catch(() => this.#legacy.delete(register))
    }
    return found
  }

  async #readLegacyCovered(register: RegisterName): Promise<Map<number, string>> {
    const covered = new Map<number, string>()
    if ((await this.#repository.unsignedCount(register)) === 0) return covered
    const own = (await this.#repository.checkpoints(register))
      .filter(
        (cp) =>
          cp.key_id === this.#key.id &&
          checkpointSignatureValid(cp, cp.signature, this.#key.public),
      )
      .sort((a, b) => b.size - a.size)
    const largest = own[0]?.size ?? 0
    if (largest === 0) return covered
    const { tree, unsigned } = await this.#chainUpTo(register, largest)
    const head = own.find((cp) => cp.size <= tree.size && tree.root(cp.size) === cp.root)
    if (head === undefined) return covered
    for (const [at, hash] of unsigned) if (at <= head.size) covered.set(at, hash)
    return covered
  }

  /**
   * The chain from entry 1 up to `largest`, one entry per seq chosen by its link, as far as it
   * goes unbroken: its tree, and its unsigned entries (seq -> hash).
   */
  async #chainUpTo(
    register: RegisterName,
    largest: number,
  ): Promise<{ tree: MerkleTree; unsigned: Map<number, string> }> {
    const tree = new MerkleTree()
    const unsigned = new Map<number, string>()
    let lastHash = GENESIS_HASH
    while (tree.size < largest) {
      const from = tree.size + 1
      const page = await this.#repository.entries(register, { from, to: largest, limit: MAX_PAGE })
      for (const [seq, rows] of bySeq(page)) {
        if (seq !== tree.size + 1) return { tree, unsigned }
        const chosen = rows.find((s) => linkProblem(s, register, seq, lastHash) === undefined)
        if (chosen === undefined) return { tree, unsigned }
        tree.push(leafHashOfText(chosen.text))
        if (chosen.signature === '') unsigned.set(seq, chosen.entry.hash)
        lastHash = chosen.entry.hash
      }
      if (page.length < MAX_PAGE) break
    }
    return { tree, unsigned }
  }
}

/** Rows grouped by seq, in the order read (seq order). */
function bySeq(rows: StoredEntry[]): Map<number, StoredEntry[]> {
  const groups = new Map<number, StoredEntry[]>()
  for (const row of rows) {
    const group = groups.get(row.seq)
    if (group === undefined) groups.set(row.seq, [row])
    else group.push(row)
  }
  return groups
}

/** The window (ISO) and agents a grants_issued entry records. */
function grantsOf(entry: RegisterEntry): NonNullable<CaseOnRecord['grants']> {
  const window = entry.details.window as { start?: unknown; end?: unknown } | undefined
  const agents = entry.details.agents
  return {
    start: typeof window?.start === 'string' ? window.start : '',
    end: typeof window?.end === 'string' ? window.end : '',
    agents: Array.isArray(agents) ? agents.map(String) : [],
  }
}
