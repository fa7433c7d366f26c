/**
 * /v1/cases/...: the investigation workflow over HTTP, each route served with its contract
 * (protocol/api/cases.ts): the body parsed by the contract, the case service called, its answer
 * returned. Refusals are DomainErrors, answered by app.onError. The rules live in
 * cases/transitions.ts (who, when) and cases/workflow.ts (the steps).
 */
import * as api from '../../protocol/api/cases.ts'
import { AgentGrants } from '../../protocol/grants.ts'
import { AgentGrantsPoll } from '../../protocol/v1.ts'
import type { CaseService } from '../cases/workflow.ts'
import { ContractRoutes, queryRefusal } from '../contract.ts'
import { agentRegisterHead } from '../register/agent-head.ts'
import type { Register } from '../register/register.ts'
import type { Store } from '../store/client.ts'

export function caseRoutes(store: Store, cases: CaseService, register?: Register) {
  return (
    new ContractRoutes(store)
      .serve(api.fileCase, async ({ user, body }) => cases.file(user, await body()))
      .serve(api.recordEmergency, async ({ user, body }) =>
        cases.recordEmergency(user, await body()),
      )
      .serve(api.openTechnicalCase, async ({ user, body }) =>
        cases.openTechnical(user, await body()),
      )
      .serve(api.openOiosCase, async ({ user, body }) => cases.openOios(user, await body()))
      .serve(api.listCases, async ({ user }) => ({ cases: await cases.list(user) }))
      .serve(api.getCase, ({ user, params }) => cases.get(user, params.id))
      .serve(api.fileWrittenRequest, async ({ user, params, body }) =>
        cases.writtenRequest(user, params.id, await body()),
      )
      .serve(api.recordConsultation, async ({ user, params, body }) =>
        cases.consult(user, params.id, await body()),
      )
      .serve(api.confirmEmergency, async ({ user, params, body }) =>
        cases.confirmEmergency(user, params.id, await body()),
      )
      .serve(api.approveCase, async ({ user, params, body }) =>
        cases.approve(user, params.id, await body()),
      )
      .serve(api.denyCase, async ({ user, params, body }) =>
        cases.deny(user, params.id, await body()),
      )
      .serve(api.recordNotice, async ({ user, params, body }) =>
        cases.notice(user, params.id, await body()),
      )
      .serve(api.extendCase, async ({ user, params, body }) =>
        cases.extend(user, params.id, await body()),
      )
      .serve(api.closeCase, async ({ user, params, body }) =>
        cases.close(user, params.id, await body()),
      )
      .serve(api.getAccessGrant, ({ user, params }) => cases.accessGrant(user, params.id))
      // Read back through the contract's schema: the store holds the position as a string.
      .serve(api.designateForOios, async ({ user, body }) =>
        api.Designations.parse(await cases.designate(user, await body())),
      )
      // The agent's side: which grants to run now. Anything not listed must stop. With
      // `register_size`, also ITSD's register head and the proof that it extends the one the
      // agent kept (collector/register/agent-head.ts); without it, the grants alone.
      .serve(
        api.agentGrants,
        async ({ c, agent, query }) => {
          const keptSize = query().register_size
          const list = await cases.grantsForAgent(agent.agent_id)
          if (keptSize === undefined || register === undefined) {
            return AgentGrants.parse({ grants: list })
          }
          const head = await agentRegisterHead(register, keptSize, c.get('log'))
          return AgentGrantsPoll.parse({ grants: list, ...(head ? { register: head } : {}) })
        },
        {
          refuseQuery: queryRefusal(
            'invalid_request',
            'query parameter: register_size (the size of the register head the agent kept, an integer >= 0)',
            { issues: false },
          ),
        },
      ).app
  )
}
