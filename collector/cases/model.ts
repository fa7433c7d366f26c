/**
 * An investigation case and the requests that move it, step for step as bulletin sections 8 and
 * 9 describe them. The schemas are the API's request bodies; `Case` is the stored document.
 */

/**
 * The stored case document: the API's Case schema (protocol/api/cases.ts) is its one definition,
 * so the document the workflow writes is the one the repository reads back and the API answers.
 */
export type { Case } from '../../protocol/api/cases.ts'
export {
  Approval,
  CaseRequest,
  CaseSubject,
  Closing,
  Consultation,
  Denial,
  Designation,
  EmergencyConfirmation,
  EmergencyRequest,
  Extension,
  Notice,
  OiosOpening,
  Person,
  TechnicalOpening,
} from '../../protocol/api/cases.ts'
export {
  CASE_KINDS,
  CASE_STATES,
  type CaseKind,
  type CaseState,
} from '../../protocol/api/names.ts'
