/** Whether the register's signed entries bear a stored case document out. */
import type { CaseOnRecord } from '../register/model.ts'
import type { Case } from './model.ts'

/**
 * Why the register's record does not bear the case document out, or undefined when it does.
 * Every workflow entry records the state it leaves the case in, so the latest one is the state;
 * an active case's latest grants name its agents and its window's end.
 */
export function recordMismatch(doc: Case, record: CaseOnRecord | undefined): string | undefined {
  if (record === undefined) return 'no signed register entry records the case'
  if (record.state !== doc.state) {
    return `the register records it ${record.state}, the stored document ${doc.state}`
  }
  if (doc.state !== 'active') return undefined
  const grants = record.grants
  if (grants === undefined) return 'the register records no grants issued for it'
  const agents = (list: string[]) => [...new Set(list)].sort().join('\n')
  if (agents(grants.agents) !== agents(doc.subjects.map((s) => s.agent_id))) {
    return 'its agents differ from those its grants were issued for'
  }
  if (Date.parse(grants.end) !== Date.parse(doc.window.end)) {
    return 'its window differs from the one its grants were issued for'
  }
  return undefined
}
