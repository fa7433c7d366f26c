/**
 * An investigation case and the requests that move it, step for step as bulletin sections 8 and
 * 9 describe them. The schemas are the API's request bodies; `Case` is the stored document.
 */

import type { CaseSubject, Person } from '../../protocol/api/cases.ts'
import type { CaseKind, CaseState } from '../../protocol/api/names.ts'
import type { Category } from '../../protocol/grants.ts'

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

export interface NoticeRecord {
  method: 'outbox' | 'in_person'
  by: string
  at: string
  to: string[]
  given_by?: string
  witness?: string
  message_ids?: string[]
}

export interface Case {
  case_id: string
  kind: CaseKind
  state: CaseState
  created_at: string
  /** Who filed it (standard), opened it (technical, OIOS) or asked verbally (emergency). */
  requester: string
  recorded_by: string
  emergency: boolean
  written_request_due?: string
  written_request_at?: string
  description: string
  categories: Category[]
  staff_member?: Person
  supervisor?: Person
  receiving_official?: string
  requesting_office?: string
  justification?: string
  subjects: CaseSubject[]
  window: { start: string; end: string }
  consultation?: { by: string; at: string; summary: string }
  /** 8.4b: an emergency confirmed by someone other than who recorded it. */
  emergency_confirmation?: { by: string; at: string; statement: string }
  approvals: {
    by: string
    at: string
    until: string
    comment?: string
    kind: 'approval' | 'extension'
  }[]
  denial?: { by: string; at: string; reason: string }
  investigator?: string
  notice?: NoticeRecord
  closing?: { by: string; at: string; outcome: string }
  purged_at?: string
  notify?: Person[]
}
