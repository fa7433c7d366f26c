/** The case workflow's refusals that a caller must tell apart from the others. */
import { DomainError } from '../errors.ts'

/**
 * The stored case document is not what the register's signed entries record. The grants poll
 * leaves such a case out instead of failing, and tier I refuses it: both branch on this class.
 */
export class CaseNotOnRecord extends DomainError {
  override name = 'CaseNotOnRecord'
  constructor(reason: string) {
    super(
      'conflict',
      'case_not_on_record',
      `the case document does not match the register (${reason}); nothing of the case is served: run \`tally register verify\``,
    )
  }
}
