/**
 * `tally case flows | dns | web | export | download | receipt`: the investigator's drill-down
 * into a case's tier I records and the export bundle that leaves with the receiving official.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { API_OPTIONS, type ApiOptions, api, contracts, print, targetOf } from '../api-options.ts'
import type { ArgumentSpec, CommandSpec, OptionSpec } from '../command-table.ts'
import { CASE_ID } from './case-id.ts'

const GRANT: OptionSpec = {
  flags: '--grant <token>',
  description: 'the access grant (default: fetched with your token)',
}
const EXPORT_ID: ArgumentSpec = {
  name: '<export-id>',
  description: 'the export id `tally case export` printed',
}

/** The access grant of a case, fetched with the investigator's own token, for drill-down calls. */
async function accessGrant(
  options: ApiOptions & { grant?: string },
  caseId: string,
): Promise<string> {
  if (options.grant !== undefined) return options.grant
  const { cases } = await contracts()
  const answer = await api(options, cases.getAccessGrant, { params: { id: caseId } })
  return answer.token
}

interface DrillOptions extends ApiOptions {
  grant?: string
  from?: string
  to?: string
  address?: string
  port?: string
  limit?: string
}

const drill = (
  category: 'flows' | 'dns' | 'web',
): CommandSpec<DrillOptions, readonly [string]> => ({
  name: category,
  description: `Retrieve the case's ${category} records (investigator; every call is registered)`,
  arguments: [CASE_ID],
  options: [
    GRANT,
    {
      flags: '--from <time>',
      description: 'records from this time (ISO 8601), inside the case window',
    },
    { flags: '--to <time>', description: 'records until this time (ISO 8601)' },
    { flags: '--address <ip>', description: 'only records with this address at either end' },
    { flags: '--port <n>', description: 'only records with this port at either end' },
    { flags: '--limit <n>', description: 'at most this many records' },
    ...API_OPTIONS,
  ],
  run: async (options, [caseId]) => {
    const { from, to, address, port, limit } = options
    const grant = await accessGrant(options, caseId)
    const { restricted } = await contracts()
    const route = {
      flows: restricted.drillFlows,
      dns: restricted.drillDns,
      web: restricted.drillWeb,
    }[category]
    const answer = await api(options, route, {
      params: { id: caseId },
      query: { from, to, address, port, limit },
      headers: { 'x-tally-grant': grant },
    })
    print(
      options,
      answer,
      () => answer.rows.map((r) => JSON.stringify(r)).join('\n') || 'no records',
    )
  },
})

const EXPORT: CommandSpec<ApiOptions & { grant?: string }, readonly [string]> = {
  name: 'export',
  description: 'Make an export bundle (investigator)',
  arguments: [CASE_ID],
  options: [GRANT, ...API_OPTIONS],
  run: async (options, [caseId]) => {
    const grant = await accessGrant(options, caseId)
    const { restricted } = await contracts()
    const answer = await api(options, restricted.createExport, {
      // The body may be left out (or be `{}`): the bundle holds what the grant covers.
      params: { id: caseId },
      headers: { 'x-tally-grant': grant },
    })
    print(
      options,
      answer,
      () => `export ${answer.export_id}\n${JSON.stringify(answer.manifest, null, 2)}`,
    )
  },
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

/** A bundle's manifest.json, read by the contract's schema of it. */
async function manifestOf(bytes: Buffer, where: string) {
  const { restricted } = await contracts()
  const manifest = restricted.ExportManifest.safeParse(JSON.parse(bytes.toString('utf8')))
  if (!manifest.success) throw new Error(`${where} is not the manifest of an export bundle`)
  return manifest.data
}

const DOWNLOAD: CommandSpec<ApiOptions & { out: string }, readonly [string, string]> = {
  name: 'download',
  description: 'Download an export bundle into a folder (investigator or receiving official)',
  arguments: [CASE_ID, EXPORT_ID],
  options: [
    {
      flags: '--out <dir>',
      description:
        'a private folder for the bundle (made 0700; files 0600); not inside a git checkout',
      required: true,
    },
    ...API_OPTIONS,
  ],
  run: async (options, [caseId, exportId]) => {
    const { download } = await import('../../protocol/client.ts')
    const { pathOf } = await import('../../protocol/api/contract.ts')
    const { restricted } = await contracts()
    const target = await targetOf(options)
    const params = { id: caseId, export_id: exportId }
    const manifestBytes = await download(target, pathOf(restricted.exportManifest, params))
    const manifest = await manifestOf(manifestBytes, 'the collector answered what')
    mkdirSync(options.out, { recursive: true, mode: 0o700 })
    writeFileSync(join(options.out, 'manifest.json'), manifestBytes, { mode: 0o600 })
    for (const file of manifest.files) {
      const path = pathOf(restricted.exportFile, { ...params, name: file.name })
      const bytes = await download(target, path)
      const digest = sha256(bytes)
      if (digest !== file.sha256)
        throw new Error(
          `${file.name}: SHA-256 ${digest} does not match the manifest's ${file.sha256}`,
        )
      writeFileSync(join(options.out, file.name), bytes, { mode: 0o600 })
    }
    print(
      options,
      manifest,
      () =>
        `${manifest.files.length} files in ${options.out}, digests checked against the manifest`,
    )
  },
}

const RECEIPT: CommandSpec<ApiOptions & { dir: string }, readonly [string, string]> = {
  name: 'receipt',
  description:
    "Acknowledge a downloaded bundle (8.5c; the receiving official named in the case): the case's tier I data is then purged",
  arguments: [CASE_ID, EXPORT_ID],
  options: [
    { flags: '--dir <dir>', description: 'the folder `tally case download` wrote', required: true },
    ...API_OPTIONS,
  ],
  run: async (options, [caseId, exportId]) => {
    const manifestFile = join(options.dir, 'manifest.json')
    const manifestBytes = readFileSync(manifestFile)
    const manifest = await manifestOf(manifestBytes, manifestFile)
    const body = {
      manifest_sha256: sha256(manifestBytes),
      files: manifest.files.map((f) => ({
        name: f.name,
        sha256: sha256(readFileSync(join(options.dir, f.name))),
      })),
    }
    const { restricted } = await contracts()
    const answer = await api(options, restricted.signReceipt, {
      params: { id: caseId, export_id: exportId },
      body,
    })
    print(
      options,
      answer,
      () => `receipt recorded for ${exportId}; the case's tier I data is purged`,
    )
  },
}

export const caseRecordCommands = [
  drill('flows'),
  drill('dns'),
  drill('web'),
  EXPORT,
  DOWNLOAD,
  RECEIPT,
]
