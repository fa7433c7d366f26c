/**
 * Tier I work beside the case service: agents' ingest under a capture grant, investigators'
 * drill-down and exports under an access grant, the receiving official's downloads and receipt.
 * Every check and every register entry is here; the HTTP routes (routes/restricted.ts) only parse,
 * call and map. Every access is registered before it is answered (fail closed).
 */
import type { Logger } from 'pino'
import { KeyedMutex } from '../../common/mutex.ts'
import type { ExportList, Receipt, ReceiptSigned } from '../../protocol/api/restricted.ts'
import type { RestrictedBatch } from '../../protocol/grants.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import type { User } from '../auth/users.ts'
import type { GrantIssuer } from '../cases/grants.ts'
import { GrantsRepository } from '../cases/grants-repository.ts'
import type { Case } from '../cases/model.ts'
import {
  CaseNotOnRecord,
  type CaseService,
  type Purger,
  type RegisterWriter,
} from '../cases/workflow.ts'
import { DomainError } from '../errors.ts'
import type { Store } from '../store/client.ts'
import { type Access, checkAccess } from './access.ts'
import { record, registerOf, sha256Hex } from './common.ts'
import { queryRecords } from './drilldown.ts'
import {
  buildBundle,
  EXPORT_ID,
  ExportTooLarge,
  FILE_NAME,
  listBundles,
  MANIFEST,
  type Manifest,
  newExportId,
  readBundleFile,
  receiptMismatches,
  storeBundle,
} from './export.ts'
import { ExportsRepository } from './exports-repository.ts'
import { type IngestAccepted, ingestRefused, ingestRestricted } from './ingest.ts'
import { CaseKeys, loadOrCreateMasterKey, masterKeyPath } from './keys.ts'
import { type DrillCategory, describeNarrowing, OutsideScope, parseNarrowing } from './narrowing.ts'
import { TierIRecordsRepository } from './records-repository.ts'

export interface TierIServiceDeps {
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
  logger?: Logger | undefined
  /** Set on a cluster: bundles are dropped from the `_local` tables ON CLUSTER. */
  cluster?: string | undefined
}

/** What a drill-down answers: the JSON body exactly as registered (its digest is on record). */
export interface DrillAnswer {
  body: string
}

export interface ExportMade {
  export_id: string
  manifest: Manifest
  manifest_sha256: string
}

export class TierIService {
  readonly #deps: TierIServiceDeps
  readonly #keys: CaseKeys
  readonly #records: TierIRecordsRepository
  readonly #exports: ExportsRepository
  readonly #grantsOnRecord: GrantsRepository
  /** One batch per agent at a time, so a retry racing its original cannot write twice. */
  readonly #perAgent = new KeyedMutex()

  constructor(deps: TierIServiceDeps) {
    this.#deps = deps
    // Loaded on first use: building the service touches no file.
    const masterFile = masterKeyPath(deps.dataDir, deps.masterKeyFile)
    this.#keys = new CaseKeys(deps.store, () => loadOrCreateMasterKey(masterFile))
    this.#records = new TierIRecordsRepository(deps.store)
    this.#exports = new ExportsRepository(deps.store, deps.cluster)
    this.#grantsOnRecord = new GrantsRepository(deps.store)
    if (deps.masterKeyFile === undefined) {
      deps.logger?.warn(
        { master_key_file: masterFile },
        'cases.master_key_file is not set: the case master key is kept in the data directory, so ' +
          'whoever holds the data directory can read the tier I records of active cases. This is ' +
          'for single-machine demos only; set cases.master_key_file to a path outside data_dir',
      )
    }
  }

  /**
   * An agent's batch of tier I records under its capture grant. A failure that is no refusal
   * (the store's, mostly) is logged and answered as the store's, for the agent to retry.
   */
  ingest(agent: AgentIdentity, batch: RestrictedBatch, log: Logger): Promise<IngestAccepted> {
    const { cases, register } = this.#deps
    const deps = {
      records: this.#records,
      grants: this.#grantsOnRecord,
      cases,
      register,
      keys: this.#keys,
    }
    return this.#perAgent.run(agent.agent_id, async () => {
      try {
        await this.#ingestOnRecord(batch)
        return await ingestRestricted(deps, agent, batch)
      } catch (err) {
        if (err instanceof DomainError) throw err
        log.error(
          { err, agent_id: agent.agent_id, seq: batch.seq },
          'restricted store write failed',
        )
        throw new DomainError(
          'unavailable',
          'store_unavailable',
          'the store could not take the batch; retry later',
          { cause: err },
        )
      }
    })
  }

  /**
   * A batch for an active case that the register's signed record does not bear out is refused
   * before anything is stored: the grant and the case document are the store's, writable by
   * whoever holds the data directory.
   */
  async #ingestOnRecord(batch: RestrictedBatch): Promise<void> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(batch.grant_id)) return
    const grant = await this.#grantsOnRecord.find(batch.grant_id)
    const doc = grant === undefined ? undefined : await this.#deps.cases.current(grant.case_id)
    if (doc?.state !== 'active') return
    try {
      await this.#deps.cases.onRecord(doc)
    } catch (err) {
      if (!(err instanceof CaseNotOnRecord)) throw err
      throw ingestRefused('case_not_on_record', err.message)
    }
  }

  async #access(user: User, grantToken: string | undefined, caseId: string): Promise<Access> {
    const { cases, grants } = this.#deps
    const access = await checkAccess(
      { onRecord: this.#grantsOnRecord, cases, grants },
      user,
      grantToken,
      caseId,
    )
    // The register's record must bear the case document out (CaseNotOnRecord, 409).
    await this.#deps.cases.onRecord(access.doc)
    return access
  }

  /** The investigator's drill-down into one category, narrowed by `params`, inside the grant. */
  async drill(
    user: User,
    grantToken: string | undefined,
    caseId: string,
    category: DrillCategory,
    params: Record<string, string[]>,
  ): Promise<DrillAnswer> {
    const { register } = this.#deps
    const { doc, grant } = await this.#access(user, grantToken, caseId)
    let narrowing: ReturnType<typeof parseNarrowing>
    try {
      narrowing = parseNarrowing(category, grant, params)
    } catch (err) {
      if (err instanceof OutsideScope) {
        // An attempt to read beyond the grant is worth an entry (a refusal either way).
        await record(register, {
          register: registerOf(doc),
          kind: 'drilldown_refused',
          actor: user.user_id,
          case_id: doc.case_id,
          details: {
            category,
            reason: err.code,
            params: Object.keys(params)
              .slice(0, 20)
              .map((name) => name.slice(0, 40)),
          },
        }).catch(() => undefined)
      }
      throw err
    }
    const { rows, truncated } = await queryRecords(
      this.#records,
      this.#keys,
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
    return { body }
  }

  /** An export bundle of everything the grant covers; without its register entry it is dropped. */
  async createExport(
    user: User,
    grantToken: string | undefined,
    caseId: string,
    log: Logger,
  ): Promise<ExportMade> {
    const { register } = this.#deps
    const access = await this.#access(user, grantToken, caseId)
    const exportId = newExportId()
    const caseIdValue = access.doc.case_id
    // One time for the manifest and the stored rows: the listing's time is the manifest's.
    const now = Date.now()
    let bundle: Awaited<ReturnType<typeof buildBundle>>
    try {
      bundle = await buildBundle(this.#records, this.#keys, access, exportId, now)
    } catch (err) {
      if (err instanceof ExportTooLarge)
        throw new DomainError('too_large', 'export_too_large', err.message)
      throw err
    }
    await storeBundle(
      this.#exports,
      this.#keys,
      caseIdValue,
      exportId,
      user.user_id,
      bundle.files,
      bundle.manifestBytes,
      now,
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
      await this.#exports
        .drop(caseIdValue, exportId)
        .catch((dropErr: unknown) =>
          log.error({ err: dropErr, export_id: exportId }, 'unregistered export not dropped'),
        )
      throw err
    }
    return { export_id: exportId, manifest: bundle.manifest, manifest_sha256: manifestSha256 }
  }

  /** The receiving official of the case (their own token), or the investigator with the grant. */
  async #readerAccess(
    user: User,
    grantToken: string | undefined,
    caseId: string,
  ): Promise<{ doc: Case; as: 'receiving_official' | 'investigator' }> {
    const doc = await this.#deps.cases.current(caseId)
    if (doc !== undefined && doc.receiving_official === user.user_id) {
      await this.#deps.cases.onRecord(doc)
      return { doc, as: 'receiving_official' }
    }
    const access = await this.#access(user, grantToken, caseId)
    return { doc: access.doc, as: 'investigator' }
  }

  /**
   * The case's bundles awaiting receipt, for its receiving official or its investigator (with
   * the grant), as a download is. To anyone else the case does not exist, the same 404 as a case
   * that does not: an OIOS case to ITSD roles, another official's case to an official. Registered
   * before it is answered, as reading a manifest is.
   */
  async listExports(
    user: User,
    grantToken: string | undefined,
    caseId: string,
  ): Promise<ExportList> {
    const found = await this.#deps.cases.current(caseId)
    if (
      found === undefined ||
      (found.receiving_official !== user.user_id && found.investigator !== user.user_id)
    ) {
      throw new DomainError('not_found', 'not_found', `no case ${caseId}`)
    }
    const { doc, as } = await this.#readerAccess(user, grantToken, caseId)
    const exports = await listBundles(this.#exports, doc.case_id)
    await record(this.#deps.register, {
      register: registerOf(doc),
      kind: 'exports_listed',
      actor: user.user_id,
      case_id: doc.case_id,
      details: { export_ids: exports.map((e) => e.export_id), as },
    })
    return { case_id: doc.case_id, exports }
  }

  /** One file of a bundle (its manifest or a data file), registered before it is handed out. */
  async download(
    user: User,
    grantToken: string | undefined,
    caseId: string,
    exportId: string,
    name: string,
  ): Promise<Uint8Array> {
    const { doc, as } = await this.#readerAccess(user, grantToken, caseId)
    if (!EXPORT_ID.test(exportId) || !FILE_NAME.test(name)) {
      throw new DomainError('not_found', 'no_such_export', 'no such export file')
    }
    const bytes = await readBundleFile(this.#exports, this.#keys, doc.case_id, exportId, name)
    if (bytes === undefined)
      throw new DomainError('not_found', 'no_such_export', 'no such export file')
    await record(this.#deps.register, {
      register: registerOf(doc),
      kind: 'export_downloaded',
      actor: user.user_id,
      case_id: doc.case_id,
      details: { export_id: exportId, name, bytes: bytes.length, sha256: sha256Hex(bytes), as },
    })
    return bytes
  }

  /**
   * The case whose receipt `user` may sign: only its receiving official (8.5c). Asked before the
   * receipt's body is read, so anyone else learns nothing from a body's errors.
   */
  async mayReceive(user: User, caseId: string): Promise<Case> {
    const doc = await this.#deps.cases.current(caseId)
    if (doc === undefined || doc.receiving_official !== user.user_id) {
      throw new DomainError(
        'forbidden',
        'forbidden',
        "only the case's receiving official signs the receipt (8.5c)",
      )
    }
    return doc
  }

  /** A receipt that matches the bundle, on record; then the case's tier I data goes (8.5e). */
  async signReceipt(
    user: User,
    doc: Case,
    exportId: string,
    receipt: Receipt,
  ): Promise<ReceiptSigned> {
    const manifest = EXPORT_ID.test(exportId)
      ? await readBundleFile(this.#exports, this.#keys, doc.case_id, exportId, MANIFEST)
      : undefined
    if (manifest === undefined)
      throw new DomainError('not_found', 'no_such_export', `no export ${exportId}`)
    const mismatches = receiptMismatches(manifest, receipt)
    if (mismatches.length > 0) {
      throw new DomainError('invalid', 'digest_mismatch', 'the receipt does not match the bundle', {
        issues: mismatches.map((message) => ({ path: 'files', message })),
      })
    }
    await record(this.#deps.register, {
      register: registerOf(doc),
      kind: 'receipt_signed',
      actor: user.user_id,
      case_id: doc.case_id,
      details: {
        export_id: exportId,
        manifest_sha256: receipt.manifest_sha256,
        files: receipt.files.map((f) => ({ ...f })),
      },
    })
    // 8.5e: delivered, so not retained.
    await this.#purgeAfterReceipt(doc, user, exportId)
    return { case_id: doc.case_id, export_id: exportId, receipt: 'signed', purged: true }
  }

  /**
   * Through the workflow (its 'tier_i_purged' entry and `purged_at`) the first time; a later
   * receipt (a second export after a first purge) purges again with an entry of its own, since
   * CaseService.purge does nothing for a case already marked purged.
   */
  async #purgeAfterReceipt(doc: Case, user: User, exportId: string): Promise<void> {
    const { cases, register } = this.#deps
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
    await this.#deps.purge(doc.case_id)
  }
}
