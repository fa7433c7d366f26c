/**
 * `tally.cases`: the case documents, one row per version, read with FINAL. The document is
 * stored as JSON and read back through the API's Case schema, so a document that does not have
 * the shape the workflow relies on fails here instead of travelling on.
 */
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import { Case as CaseSchema } from '../../protocol/api/cases.ts'
import type { CaseKind } from '../../protocol/api/names.ts'
import type { Store } from '../store/client.ts'
import { insertRows, selectParsed } from '../store/rows.ts'
import type { Case } from './model.ts'

export const newCaseId = (): string => `c-${randomBytes(8).toString('hex')}`

const CaseDocument = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown
    } catch {
      ctx.addIssue({ code: 'custom', message: 'the stored case document is not JSON' })
      return z.NEVER
    }
  })
  .pipe(CaseSchema)

const CaseRow = z.object({ doc: CaseDocument, version: z.number() })

let lastVersion = 0
/** Strictly increasing in this process, and never behind the clock or a version already read. */
const nextVersion = (): number => {
  lastVersion = Math.max(Date.now(), lastVersion + 1)
  return lastVersion
}

export class CaseRepository {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  async find(caseId: string): Promise<Case | undefined> {
    const [row] = await selectParsed(
      this.#store,
      CaseRow,
      'SELECT doc, version FROM tally.cases FINAL WHERE case_id = {id:String}',
      { id: caseId },
    )
    if (row === undefined) return undefined
    lastVersion = Math.max(lastVersion, row.version)
    return row.doc
  }

  /** Writes the document as the case's newest version. */
  async save(doc: Case): Promise<void> {
    await saveCase(this.#store, doc)
  }

  /** The cases of these kinds, the most recently changed first. */
  async list(kinds: readonly CaseKind[]): Promise<Case[]> {
    const rows = await selectParsed(
      this.#store,
      CaseRow.pick({ doc: true }),
      'SELECT doc FROM tally.cases FINAL WHERE kind IN {kinds:Array(String)} ORDER BY updated_at DESC',
      { kinds: [...kinds] },
    )
    return rows.map((r) => r.doc)
  }
}

/**
 * Writes a case document as its newest version, with no workflow step around it: the
 * repository's write, and what a holder of the data directory can do (the security tests).
 */
export async function saveCase(store: Store, doc: Case): Promise<void> {
  await insertRows(store, 'tally.cases', [
    {
      case_id: doc.case_id,
      kind: doc.kind,
      state: doc.state,
      doc: JSON.stringify(doc),
      updated_at: Date.now(),
      version: nextVersion(),
    },
  ])
}
