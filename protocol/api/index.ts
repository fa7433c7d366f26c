/**
 * The collector's public API, route by route (the contract table), and the schemas the OpenAPI
 * document names as components. A route here and a route the app serves are the same set
 * (test/collector/contract.test.ts).
 */
import { ErrorBody } from '../v1.ts'
import * as admin from './admin.ts'
import * as agents from './agents.ts'
import * as cases from './cases.ts'
import type { RouteContract } from './contract.ts'
import * as health from './health.ts'
import * as register from './register.ts'
import * as restricted from './restricted.ts'
import * as usage from './usage.ts'

export { admin, agents, cases, health, register, restricted, usage }

/** Every route, in the order the document lists them. */
export const ROUTES: readonly RouteContract[] = [
  agents.enrollAgent,
  agents.ingest,
  usage.fleet,
  usage.usage,
  admin.createEnrollToken,
  admin.listUsers,
  admin.proposeUser,
  admin.proposeRoles,
  admin.revokeRole,
  admin.revokeUser,
  admin.listProposals,
  admin.confirmProposal,
  admin.rejectProposal,
  admin.replaceOwnToken,
  admin.revokeAgent,
  cases.listCases,
  cases.fileCase,
  cases.recordEmergency,
  cases.openTechnicalCase,
  cases.openOiosCase,
  cases.getCase,
  cases.fileWrittenRequest,
  cases.recordConsultation,
  cases.confirmEmergency,
  cases.approveCase,
  cases.denyCase,
  cases.recordNotice,
  cases.extendCase,
  cases.closeCase,
  cases.getAccessGrant,
  cases.designateForOios,
  cases.agentGrants,
  register.registerPublicKey,
  register.registerEntries,
  register.registerCheckpoints,
  register.signCheckpoint,
  register.countersignCheckpoint,
  register.registerConsistency,
  register.verifyRegister,
  ...restricted.RESTRICTED_ROUTES,
  health.healthz,
  health.readyz,
  health.metrics,
  health.openapi,
]

/** What clients send, by component name (JSON Schema of the input a client may send). */
export const REQUEST_COMPONENTS = {
  ...agents.AGENT_REQUESTS,
  ...admin.ADMIN_REQUESTS,
  ...cases.CASE_REQUESTS,
  ...register.REGISTER_REQUESTS,
  ...restricted.RESTRICTED_REQUESTS,
}

/** What the collector answers, by component name (JSON Schema of the output it writes). */
export const RESPONSE_COMPONENTS = {
  ErrorBody,
  ...agents.AGENT_RESPONSES,
  ...admin.ADMIN_RESPONSES,
  ...usage.USAGE_RESPONSES,
  ...cases.CASE_RESPONSES,
  ...register.REGISTER_RESPONSES,
  ...restricted.RESTRICTED_RESPONSES,
  ...health.HEALTH_RESPONSES,
}
