/**
 * Tier I over HTTP: agents' ingest under a capture grant, investigators' drill-down and exports
 * under an access grant, the receiving official's downloads and receipt. The rules live in
 * collector/restricted/*; every access is registered before it is answered (fail closed: 503).
 */
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { Logger } from 'pino'
import { z } from 'zod'
import { RestrictedBatch } from '../../protocol/grants.ts'
import { requireAgent, requireUser } from '../auth/middleware.ts'
import type { Role } from '../auth/roles.ts'
import type { User } from '../auth/users.ts'
import type { GrantIssuer } from '../cases/grants.ts'
import type { Case } from '../cases/model.ts'
import type { CaseService, Purger, RegisterWriter } from '../cases/workflow.ts'
import { type CollectorEnv, problem, readJson, zodIssues } from '../http.ts'
import { AccessDenied, checkAccess, GRANT_HEADER } from '../restricted/access.ts'
import { type BodyLimits, RESTRICTED_BODY_LIMITS, readAgentJson } from '../restricted/body.ts'
import { record, registerOf, sha256Hex } from '../restricted/common.ts'
import {
  DRILL_CATEGORIES,
  type DrillCategory,
  describeNarrowing,
  parseNarrowing,
  queryRecords,
  ScopeError,
} from '../restricted/drilldown.ts'
import {
  buildBundle,
  dropBundle,
  EXPORT_ID,
  ExportTooLarge,
  FILE_NAME,
  MANIFEST,
  newExportId,
  Receipt,
  readBundleFile,
  receiptMismatches,
  storeBundle,
} from '../restricted/export.ts'
import { ingestRestricted } from '../restricted/ingest.ts'
import { CaseKeys, loadOrCreateMasterKey, masterKeyPath } from '../restricted/keys.ts'
import type { ReceiptSigned, RestrictedIngestAck } from '../restricted/openapi.ts'
import type { Store } from '../store/client.ts'
import { Mutex } from '../store/rows.ts'

export interface RestrictedRoutesDeps {
  store: Store
  cases: CaseService
  grants: GrantIssuer
  register: RegisterWriter
  /** The same purge CaseServiceDeps.purge gets (createPurger). */
  purge: Purger
  /** Holds `case-master.key` when `masterKeyFile` is not given. */
  dataDir: string
  /** cases.master_key_file: the master key outside the data directory. */
  masterKeyFile?: string | undefined
  /** Told, once, when the master key is the data directory's (a demo's). */
  logger?: Logger
  /** Set on a cluster: bundles are dropped from the `_local` tables ON CLUSTER. */
  cluster?: string | undefined
  limits?: BodyLimits
  retryAfterSeconds?: number
}

const INVESTIGATORS: Role[] = ['itsd_investigator', 'oios_investigator']

const isRegisterDown = (err: unknown) => err instanceof Error && err.name === 'RegisterUnavailable'

export function restrictedRoutes(deps: RestrictedRoutesDeps) {
  const { store, cases, register } = deps
  // Loaded on first use: building the app touches no file.
  const masterFile = masterKeyPath(deps.dataDir, deps.masterKeyFile)
  const keys = new CaseKeys(store, () => loadOrCreateMasterKey(masterFile))
  if (deps.masterKeyFile === undefined) {
    deps.logger?.warn(
      { master_key_file: masterFile },
      'cases.master_key_file is not set: the case master key is kept in the data directory, so ' +
        'whoever holds the data directory can read the tier I records of active cases. This is ' +
        'for single-machine demos only; set cases.master_key_file to a path outside data_dir',
    )
  }
  const limits = deps.limits ?? RESTRICTED_BODY_LIMITS
  const retryAfter = String(deps.retryAfterSeconds ?? 5)
  const investigator = requireUser(store, INVESTIGATORS)
  const reader = requireUser(store, [...INVESTIGATORS, 'receiving_official'])
  const official = requireUser(store, ['receiving_official'])
  const app = new Hono<CollectorEnv>()

  const registerDown = (c: Context) => {
    c.header('Retry-After', retryAfter)
    return problem(
      c,
      503,
      'register_unavailable',
      'the register could not be written, so nothing was done; retry later',
    )
  }
  const denied = (c: Context, err: unknown): Response => {
    if (err instanceof AccessDenied || err instanceof ScopeError) {
      return problem(c, err.status, err.code, err.message)
    }
    if (isRegisterDown(err)) return registerDown(c)
    throw err
  }

  // One batch per agent at a time, so a retry racing its original cannot write twice.
  const perAgent = new Map<string, Mutex>()
  const lockFor = (agentId: string): Mutex => {
    let lock = perAgent.get(agentId)
    if (lock === undefined) {
      lock = new Mutex()
      perAgent.set(agentId, lock)
    }
    return lock
  }

  app.post(
    '/v1/restricted/ingest',
    bodyLimit({
      maxSize: limits.maxBodyBytes,
      onError: (c) =>
        problem(c, 413, 'body_too_large', `request body exceeds ${limits.maxBodyBytes} bytes`),
    }),
    requireAgent(store),
    async (c) => {
      const agent = c.get('agent')
      const body = await readAgentJson(c, limits)
      if (!body.ok) return body.response
      const parsed = RestrictedBatch.safeParse(body.value)
      if (!parsed.success) {
        return problem(
          c,
          400,
          'invalid_batch',
          'batch does not match the restricted batch schema',
          zodIssues(parsed.error),
        )
      }
      const batch = parsed.data
      try {
        const outcome = await lockFor(agent.agent_id).run(() =>
          ingestRestricted({ store, cases, register, keys }, agent, batch),
        )
        if (outcome.kind === 'rejected') return problem(c, 403, outcome.code, outcome.message)
        if (outcome.kind === 'invalid') return problem(c, 400, outcome.code, outcome.message)
        const ack: RestrictedIngestAck = {
          agent_id: agent.agent_id,
          grant_id: batch.grant_id,
          seq: batch.seq,
          status: outcome.kind,
          counts: outcome.counts,
        }
        return c.json(ack)
      } catch (err) {
        if (isRegisterDown(err)) return registerDown(c)
        c.get('log').error(
          { err, agent_id: agent.agent_id, seq: batch.seq },
          'restricted store write failed',
        )
        c.header('Retry-After', retryAfter)
        return problem(
          c,
          503,
          'store_unavailable',
          'the store could not take the batch; retry later',
        )
      }
    },
  )

  const caseId = (c: Context) => c.req.param('id') ?? ''

  const drill = (category: DrillCategory) => async (c: Context<CollectorEnv>) => {
    const user = c.get('user')
    try {
      const access = await checkAccess(deps, user, c.req.header(GRANT_HEADER), caseId(c))
      const { doc, grant } = access
      let narrowing: ReturnType<typeof parseNarrowing>
      try {
        narrowing = parseNarrowing(category, grant, c.req.queries())
      } catch (err) {
        if (err instanceof ScopeError && err.status === 403) {
          // An attempt to read beyond the grant is worth an entry (a refusal either way).
          await record(register, {
            register: registerOf(doc),
            kind: 'drilldown_refused',
            actor: user.user_id,
            case_id: doc.case_id,
            details: {
              category,
              reason: err.code,
              params: Object.keys(c.req.queries())
                .slice(0, 20)
                .map((name) => name.slice(0, 40)),
            },
          }).catch(() => undefined)
        }
        throw err
      }
      const { rows, truncated } = await queryRecords(
        store,
        keys,
        category,
        doc.case_id,
        grant,
        narrowing,
        narrowing.limit,
      )
      const body = JSON.stringify({
        case_id: doc.case_id,
        category,
        grant_id: grant.grant_id,
        count: rows.length,
        truncated,
        rows,
      })
      // Registered before it is answered; no entry, no answer.
      await record(register, {
        register: registerOf(doc),
        kind: 'drilldown',
        actor: user.user_id,
        case_id: doc.case_id,
        details: {
          category,
          grant_id: grant.grant_id,
          params: describeNarrowing(narrowing),
          rows: rows.length,
          truncated,
          sha256: sha256Hex(body),
        },
      })
      return c.body(body, 200, {
        'content-type': 'application/json; charset=UTF-8',
        'cache-control': 'no-store',
      })
    } catch (err) {
      return denied(c, err)
    }
  }
  for (const category of DRILL_CATEGORIES) {
    app.get(`/v1/cases/:id/${category}`, investigator, drill(category))
  }

  app.post('/v1/cases/:id/exports', investigator, async (c) => {
    const user = c.get('user')
    const text = await c.req.text()
    if (text.trim() !== '') {
      const body = await readJson(c, z.strictObject({}))
      if (!body.ok) return body.response
    }
    try {
      const access = await checkAccess(deps, user, c.req.header(GRANT_HEADER), caseId(c))
      const exportId = newExportId()
      const caseIdValue = access.doc.case_id
      let bundle: Awaited<ReturnType<typeof buildBundle>>
      try {
        bundle = await buildBundle(store, keys, access, exportId)
      } catch (err) {
        if (err instanceof ExportTooLarge) return problem(c, 413, 'export_too_large', err.message)
        throw err
      }
      await storeBundle(
        store,
        keys,
        caseIdValue,
        exportId,
        user.user_id,
        bundle.files,
        bundle.manifestBytes,
      )
      const manifestSha256 = sha256Hex(bundle.manifestBytes)
      try {
        await record(register, {
          register: registerOf(access.doc),
          kind: 'export_created',
          actor: user.user_id,
          case_id: caseIdValue,
          details: {
            export_id: exportId,
            grant_id: access.grant.grant_id,
            manifest_sha256: manifestSha256,
            files: bundle.manifest.files.map((f) => ({ ...f })),
          },
        })
      } catch (err) {
        // Without its entry the bundle must not exist.
        await dropBundle(store, caseIdValue, exportId, deps.cluster).catch((dropErr: unknown) =>
          c
            .get('log')
            .error({ err: dropErr, export_id: exportId }, 'unregistered export not dropped'),
        )
        throw err
      }
      return c.json(
        { export_id: exportId, manifest: bundle.manifest, manifest_sha256: manifestSha256 },
        201,
      )
    } catch (err) {
      return denied(c, err)
    }
  })

  /** The receiving official of the case (their own token), or the investigator with the grant. */
  const readerAccess = async (
    c: Context<CollectorEnv>,
  ): Promise<{ doc: Case; as: 'receiving_official' | 'investigator' }> => {
    const user: User = c.get('user')
    const doc = await cases.current(caseId(c))
    if (doc !== undefined && doc.receiving_official === user.user_id) {
      return { doc, as: 'receiving_official' }
    }
    const access = await checkAccess(deps, user, c.req.header(GRANT_HEADER), caseId(c))
    return { doc: access.doc, as: 'investigator' }
  }

  const download = (pick: (c: Context) => string) => async (c: Context<CollectorEnv>) => {
    try {
      const { doc, as } = await readerAccess(c)
      const exportId = c.req.param('export_id') ?? ''
      const name = pick(c)
      if (!EXPORT_ID.test(exportId) || !FILE_NAME.test(name)) {
        return problem(c, 404, 'no_such_export', 'no such export file')
      }
      const bytes = await readBundleFile(store, keys, doc.case_id, exportId, name)
      if (bytes === undefined) return problem(c, 404, 'no_such_export', 'no such export file')
      await record(register, {
        register: registerOf(doc),
        kind: 'export_downloaded',
        actor: c.get('user').user_id,
        case_id: doc.case_id,
        details: { export_id: exportId, name, bytes: bytes.length, sha256: sha256Hex(bytes), as },
      })
      return c.body(new Uint8Array(bytes), 200, {
        'content-type': contentType(name),
        'content-disposition': `attachment; filename="${name}"`,
        'cache-control': 'no-store',
      })
    } catch (err) {
      return denied(c, err)
    }
  }
  app.get(
    '/v1/cases/:id/exports/:export_id/manifest',
    reader,
    download(() => MANIFEST),
  )
  app.get(
    '/v1/cases/:id/exports/:export_id/files/:name',
    reader,
    download((c) => c.req.param('name') ?? ''),
  )

  app.post('/v1/cases/:id/exports/:export_id/receipt', official, async (c) => {
    const user = c.get('user')
    const doc = await cases.current(caseId(c))
    if (doc === undefined || doc.receiving_official !== user.user_id) {
      return problem(
        c,
        403,
        'forbidden',
        "only the case's receiving official signs the receipt (8.5c)",
      )
    }
    const receipt = await readJson(c, Receipt)
    if (!receipt.ok) return receipt.response
    const exportId = c.req.param('export_id') ?? ''
    try {
      const manifest = EXPORT_ID.test(exportId)
        ? await readBundleFile(store, keys, doc.case_id, exportId, MANIFEST)
        : undefined
      if (manifest === undefined) return problem(c, 404, 'no_such_export', `no export ${exportId}`)
      const mismatches = receiptMismatches(manifest, receipt.value)
      if (mismatches.length > 0) {
        return problem(
          c,
          400,
          'digest_mismatch',
          'the receipt does not match the bundle',
          mismatches.map((message) => ({ path: 'files', message })),
        )
      }
      await record(register, {
        register: registerOf(doc),
        kind: 'receipt_signed',
        actor: user.user_id,
        case_id: doc.case_id,
        details: {
          export_id: exportId,
          manifest_sha256: receipt.value.manifest_sha256,
          files: receipt.value.files.map((f) => ({ ...f })),
        },
      })
      // 8.5e: delivered, so not retained.
      await purgeAfterReceipt(doc, user, exportId)
      const signed: ReceiptSigned = {
        case_id: doc.case_id,
        export_id: exportId,
        receipt: 'signed',
        purged: true,
      }
      return c.json(signed)
    } catch (err) {
      return denied(c, err)
    }
  })

  /**
   * Through the workflow (its 'tier_i_purged' entry and `purged_at`) the first time; a later
   * receipt (a second export after a first purge) purges again with an entry of its own, since
   * CaseService.purge does nothing for a case already marked purged.
   */
  async function purgeAfterReceipt(doc: Case, user: User, exportId: string): Promise<void> {
    if (doc.purged_at === undefined) {
      await cases.purge(doc, user)
      if ((await cases.current(doc.case_id))?.purged_at !== undefined) return
    }
    await record(register, {
      register: registerOf(doc),
      kind: 'tier_i_purged',
      actor: user.user_id,
      case_id: doc.case_id,
      details: { state: doc.state, reason: 'receipt', export_id: exportId },
    })
    await deps.purge(doc.case_id)
  }

  return app
}

function contentType(name: string): string {
  if (name.endsWith('.json')) return 'application/json; charset=UTF-8'
  if (name.endsWith('.csv')) return 'text/csv; charset=UTF-8'
  if (name.endsWith('.pcap')) return 'application/vnd.tcpdump.pcap'
  return 'application/octet-stream'
}
