/**
 * /v1/cases/...: the investigation workflow over HTTP: parse, call the case service, answer.
 * Refusals are DomainErrors, answered by app.onError. The rules live in cases/transitions.ts
 * (who, when) and cases/workflow.ts (the steps).
 */
import { type Context, Hono } from 'hono'
import type { z } from 'zod'
import { AgentGrants } from '../../protocol/grants.ts'
import { AgentGrantsPoll, GrantsPollQuery } from '../../protocol/v1.ts'
import { requireAgent, requireUser } from '../auth/middleware.ts'
import { ROLES } from '../auth/roles.ts'
import {
  Approval,
  CaseRequest,
  Closing,
  Consultation,
  Denial,
  Designation,
  EmergencyConfirmation,
  EmergencyRequest,
  Extension,
  Notice,
  OiosOpening,
  TechnicalOpening,
} from '../cases/model.ts'
import type { CaseService } from '../cases/workflow.ts'
import { DomainError } from '../errors.ts'
import { type CollectorEnv, jsonBody } from '../http.ts'
import { agentRegisterHead } from '../register/agent-head.ts'
import type { Register } from '../register/register.ts'
import type { Store } from '../store/client.ts'

export function caseRoutes(store: Store, cases: CaseService, register?: Register) {
  const anyone = requireUser(store, ROLES)
  const app = new Hono<CollectorEnv>()
  const step =
    <S extends z.ZodType>(
      schema: S,
      run: (c: Context<CollectorEnv>, body: z.output<S>) => Promise<unknown>,
      status: 200 | 201 = 200,
    ) =>
    async (c: Context<CollectorEnv>) =>
      c.json(await run(c, await jsonBody(c, schema)), status)

  app.use('/v1/cases', anyone)
  app.use('/v1/cases/*', anyone)
  app.use('/v1/oios/*', anyone)
  app.post(
    '/v1/cases',
    step(CaseRequest, (c, body) => cases.file(c.get('user'), body), 201),
  )
  app.post(
    '/v1/cases/emergency',
    step(EmergencyRequest, (c, body) => cases.recordEmergency(c.get('user'), body), 201),
  )
  app.post(
    '/v1/cases/technical',
    step(TechnicalOpening, (c, body) => cases.openTechnical(c.get('user'), body), 201),
  )
  app.post(
    '/v1/cases/oios',
    step(OiosOpening, (c, body) => cases.openOios(c.get('user'), body), 201),
  )
  app.get('/v1/cases', async (c) => c.json({ cases: await cases.list(c.get('user')) }))
  app.get('/v1/cases/:id', async (c) => c.json(await cases.get(c.get('user'), c.req.param('id'))))
  const id = (c: Context) => c.req.param('id') ?? ''
  app.post(
    '/v1/cases/:id/written-request',
    step(CaseRequest, (c, body) => cases.writtenRequest(c.get('user'), id(c), body)),
  )
  app.post(
    '/v1/cases/:id/consultation',
    step(Consultation, (c, body) => cases.consult(c.get('user'), id(c), body)),
  )
  app.post(
    '/v1/cases/:id/emergency-confirmation',
    step(EmergencyConfirmation, (c, body) => cases.confirmEmergency(c.get('user'), id(c), body)),
  )
  app.post(
    '/v1/cases/:id/approval',
    step(Approval, (c, body) => cases.approve(c.get('user'), id(c), body)),
  )
  app.post(
    '/v1/cases/:id/denial',
    step(Denial, (c, body) => cases.deny(c.get('user'), id(c), body)),
  )
  app.post(
    '/v1/cases/:id/notice',
    step(Notice, (c, body) => cases.notice(c.get('user'), id(c), body)),
  )
  app.post(
    '/v1/cases/:id/extension',
    step(Extension, (c, body) => cases.extend(c.get('user'), id(c), body)),
  )
  app.post(
    '/v1/cases/:id/closing',
    step(Closing, (c, body) => cases.close(c.get('user'), id(c), body)),
  )
  app.get('/v1/cases/:id/access-grant', async (c) =>
    c.json(await cases.accessGrant(c.get('user'), id(c))),
  )
  app.post(
    '/v1/oios/designations',
    step(Designation, (c, body) => cases.designate(c.get('user'), body), 201),
  )

  // The agent's side: which grants to run now. Anything not listed must stop.
  // With `register_size`, also ITSD's register head and the proof that it extends the one the
  // agent kept (collector/register/agent-head.ts); without it, the grants alone.
  app.get('/v1/agents/grants', requireAgent(store), async (c) => {
    const query = GrantsPollQuery.safeParse(c.req.query())
    if (!query.success) {
      throw new DomainError(
        'invalid',
        'invalid_request',
        'query parameter: register_size (the size of the register head the agent kept, an integer >= 0)',
      )
    }
    const agent = c.get('agent')
    const list = await cases.grantsForAgent(agent.agent_id)
    const keptSize = query.data.register_size
    if (keptSize === undefined || register === undefined) {
      return c.json(AgentGrants.parse({ grants: list }))
    }
    const head = await agentRegisterHead(register, keptSize, c.get('log'))
    return c.json(AgentGrantsPoll.parse({ grants: list, ...(head ? { register: head } : {}) }))
  })
  return app
}
