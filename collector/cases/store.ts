/** Case documents in `tally.cases`: one row per version, read with FINAL. */
import { randomBytes } from 'node:crypto'
import type { Store } from '../store/client.ts'
import { insertRows, selectRows } from '../store/rows.ts'
import type { Case, CaseKind } from './model.ts'

export const newCaseId = (): string => `c-${randomBytes(8).toString('hex')}`

let lastVersion = 0
/** Strictly increasing in this process, and never behind the clock. */
const nextVersion = (): number => {
  lastVersion = Math.max(Date.now(), lastVersion + 1)
  return lastVersion
}

export async function loadCase(store: Store, caseId: string): Promise<Case | undefined> {
  const [row] = await selectRows<{ doc: string; version: number }>(
    store,
    'SELECT doc, version FROM tally.cases FINAL WHERE case_id = {id:String}',
    { id: caseId },
  )
  if (row === undefined) return undefined
  lastVersion = Math.max(lastVersion, Number(row.version))
  return JSON.parse(row.doc) as Case
}

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

export async function listCases(store: Store, kinds: readonly CaseKind[]): Promise<Case[]> {
  const rows = await selectRows<{ doc: string }>(
    store,
    'SELECT doc FROM tally.cases FINAL WHERE kind IN {kinds:Array(String)} ORDER BY updated_at DESC',
    { kinds: [...kinds] },
  )
  return rows.map((r) => JSON.parse(r.doc) as Case)
}
