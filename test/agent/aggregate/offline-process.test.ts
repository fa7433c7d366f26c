/**
 * `tally agent aggregate FILE` as a process: it loads the agent's modules and nothing of the
 * collector (the collector's command modules and the schema library they import once took a
 * sixth of a million-packet run), and it reads a full-size-frame capture as it reads a cut one.
 * Which modules were loaded is seen through Node's own module hooks, in the child process.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FULL_FRAME_SNAPLEN, generatePcap } from '../../../bench/generate-pcap.ts'

const ROOT = new URL('../../../', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'tally-offline-'))
const files = { cut: join(dir, 'cut.pcap'), full: join(dir, 'full.pcap') }
const hooks = join(dir, 'log-loads.mjs')
const PACKETS = 3000

interface Report {
  stats: { packets: number; bytes: number; decoded: number; non_ip: number }
  usage: { bytes: number; packets: number; flows: number }[]
}

/** Runs `node [--import hooks] bin/tally.ts agent aggregate FILE --json`; returns the report and the modules loaded. */
async function aggregate(file: string): Promise<{ report: Report; loaded: string[] }> {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ['--import', hooks, 'bin/tally.ts', 'agent', 'aggregate', file, '--json'],
    { cwd: ROOT, timeout: 45_000, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
  )
  const loaded = stderr
    .split('\n')
    .filter((line) => line.startsWith('LOADED '))
    .map((line) => line.slice('LOADED '.length))
  return { report: JSON.parse(stdout) as Report, loaded }
}

beforeAll(() => {
  generatePcap({ packets: PACKETS, out: files.cut })
  generatePcap({ packets: PACKETS, out: files.full, snaplen: FULL_FRAME_SNAPLEN })
  writeFileSync(
    hooks,
    "import { registerHooks } from 'node:module'\n" +
      "import { writeSync } from 'node:fs'\n" +
      'registerHooks({ load(url, context, next) {\n' +
      "  writeSync(2, 'LOADED ' + url + '\\n')\n" +
      '  return next(url, context)\n' +
      '} })\n',
  )
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('tally agent aggregate, the whole process', () => {
  it('loads the agent and nothing of the collector, the full command line or the schema library', async () => {
    const { report, loaded } = await aggregate(files.cut)
    expect(report.stats.packets).toBe(PACKETS)
    const repository = loaded.filter((url) => url.startsWith(`file://${ROOT}`))
    // The hooks see the modules: without this, an empty list would pass the checks below.
    expect(repository).toContain(`file://${ROOT}agent/aggregate/offline.ts`)
    expect(repository).toContain(`file://${ROOT}common/pcap/pcap-reader.ts`)
    const unwanted = repository.filter((url) =>
      /\/(collector\/|cli\/main\.ts|node_modules\/(zod|pino|yaml|systeminformation|@opentelemetry|@clickhouse|chdb|hono)\/)/.test(
        url,
      ),
    )
    expect(unwanted).toEqual([])
  })

  it('counts a full-size-frame capture exactly as the same traffic cut at 128 bytes', async () => {
    const [cut, full] = await Promise.all([aggregate(files.cut), aggregate(files.full)])
    expect(full.report.stats).toMatchObject({ packets: PACKETS, decoded: cut.report.stats.decoded })
    expect(full.report.stats.bytes).toBe(cut.report.stats.bytes)
    expect(full.report.usage).toEqual(cut.report.usage)
  })
})
