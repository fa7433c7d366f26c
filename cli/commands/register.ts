/**
 * `tally register verify | checkpoint | countersign`: the auditor's commands. They talk to a
 * running collector over its API and verify here (collector/register/audit.ts); the modules
 * that do the work load only when a command runs.
 */
import type { AuditResult, KeptHead, RegisterApi } from '../../collector/register/audit.ts'
import type { RegisterName } from '../../protocol/api/names.ts'
import { API_OPTIONS, type ApiOptions, api, contracts } from '../api-options.ts'
import type { CommandSpec, OptionSpec } from '../command-table.ts'

interface RegisterOptions extends ApiOptions {
  register: RegisterName
}

interface VerifyOptions extends RegisterOptions {
  publicKey?: string
  checkpoints?: string
  /** The kept-head file; false with --no-state. */
  state?: string | false
}

/** Which register, then the options of every command that calls a collector. */
const REGISTER_API_OPTIONS: readonly OptionSpec[] = [
  {
    flags: '--register <name>',
    description: 'which register',
    choices: ['itsd', 'oios'],
    default: 'itsd',
  },
  ...API_OPTIONS,
]

const TRUST_OPTIONS: readonly OptionSpec[] = [
  {
    flags: '--public-key <file>',
    description:
      "the register's public key as you keep it (JWK or PEM); without it, the key the collector serves",
  },
  {
    flags: '--checkpoints <file>',
    description:
      'checkpoints you kept elsewhere (JSON, or JSON lines), checked with those the collector has',
  },
]

/**
 * The audit reads the collector as a party it does not trust: it takes the answers raw, by
 * path, and judges their shape itself (collector/register/audit.ts), so a malformed answer is
 * a finding of the audit rather than a client error.
 */
async function connect(options: RegisterOptions): Promise<RegisterApi> {
  const { callPath, readTokenFile } = await import('../../protocol/client.ts')
  const token = options.token ?? readTokenFile(options.tokenFile)
  const target = { collectorUrl: options.collector, token }
  return {
    get: <T>(path: string) => callPath(target, 'GET', path) as Promise<T>,
    post: <T>(path: string, body?: unknown) => callPath(target, 'POST', path, body) as Promise<T>,
  }
}

async function trust(options: VerifyOptions) {
  const { readCheckpointsFile, readPublicKeyFile } = await import(
    '../../collector/register/audit.ts'
  )
  return {
    publicKey: options.publicKey === undefined ? undefined : readPublicKeyFile(options.publicKey),
    keptCheckpoints:
      options.checkpoints === undefined ? undefined : readCheckpointsFile(options.checkpoints),
  }
}

const out = (text: string) => process.stdout.write(`${text}\n`)
const note = (text: string) => process.stderr.write(`${text}\n`)

/** The head kept from the last verification, if any, refused when it is another collector's. */
async function keptHeadOf(options: VerifyOptions) {
  const { defaultStatePath, readKeptHead, AuditError } = await import(
    '../../collector/register/audit.ts'
  )
  const stateFile =
    options.state === false
      ? undefined
      : (options.state ?? defaultStatePath(options.register, options.collector))
  const keptHead = stateFile === undefined ? undefined : readKeptHead(stateFile)
  if (keptHead !== undefined && keptHead.collector !== options.collector) {
    throw new AuditError(
      `${stateFile} keeps the head of ${keptHead.collector}, not ${options.collector}: ` +
        'give each collector its own --state',
    )
  }
  return { stateFile, keptHead }
}

/** What the auditor reads besides the report: which key checked it, and what is not signed yet. */
function noteTrust(result: AuditResult): void {
  if (result.key.source === 'collector') {
    note(
      `note: checked with the public key the collector serves (key id ${result.key.key_id}); ` +
        'keep your own copy and pass it with --public-key',
    )
  } else if (result.key.key_id !== result.key.collector_key_id) {
    note(
      `warning: the collector now serves another key (${result.key.collector_key_id}) than ` +
        `yours (${result.key.key_id})`,
    )
  }
  if (result.unsigned > 0) {
    note(
      `warning: ${result.unsigned} entries after the latest signed head are not covered by ` +
        'a checkpoint yet; `tally register checkpoint` signs them',
    )
  }
}

function printAudit(
  options: VerifyOptions,
  result: AuditResult,
  keptHead: KeptHead | undefined,
  formatted: string,
): void {
  if (options.json) {
    out(
      JSON.stringify(
        {
          ...result.report,
          entries: result.entries,
          checkpoints: result.checkpoints,
          key: result.key,
          head: result.head ?? null,
          kept_head: keptHead?.head ?? null,
        },
        null,
        2,
      ),
    )
    return
  }
  out(formatted)
  noteTrust(result)
}

/** Keeps the head just verified, for the next run to check the register against. */
async function keepHead(
  options: VerifyOptions,
  stateFile: string,
  head: NonNullable<AuditResult['head']>,
  keyId: string,
  previous: KeptHead | undefined,
): Promise<void> {
  const { writeKeptHead } = await import('../../collector/register/audit.ts')
  const { register: name, size, root, ts, signature } = head
  writeKeptHead(stateFile, {
    version: 1,
    collector: options.collector,
    register: options.register,
    key_id: keyId,
    head: { register: name, size, root, ts, signature },
    verified_at: new Date().toISOString(),
  })
  if (!options.json) {
    note(
      `kept the head at size ${size} in ${stateFile}` +
        (previous === undefined ? '' : ` (it extends the one kept at size ${previous.head.size})`),
    )
  }
}

const VERIFY: CommandSpec<VerifyOptions> = {
  name: 'verify',
  description:
    'Fetch every entry and checkpoint over the API and verify them on this machine: hash ' +
    'chain, Merkle roots at each signed checkpoint, signatures; and that the head ' +
    'verified last time (kept in --state) is extended by the current one, by an RFC ' +
    '6962 consistency proof checked here. Exits 1 on any problem.',
  options: [
    {
      flags: '--state <file>',
      description:
        'where the last verified head is kept (default: $XDG_STATE_HOME or ~/.local/state, ' +
        'tally/register-<register>-<collector host_port>.json); keep a copy elsewhere too',
    },
    { flags: '--no-state', description: 'neither read nor keep a head (a one-off check)' },
    ...REGISTER_API_OPTIONS,
    ...TRUST_OPTIONS,
  ],
  run: async (options) => {
    const { auditRegister, formatAudit } = await import('../../collector/register/audit.ts')
    const { stateFile, keptHead } = await keptHeadOf(options)
    const result = await auditRegister(await connect(options), options.register, {
      ...(await trust(options)),
      keptHead,
    })
    printAudit(options, result, keptHead, formatAudit(result))
    if (!result.report.ok) {
      // The kept head stays as it was: the next run checks against it again.
      process.exitCode = 1
      return
    }
    if (stateFile !== undefined && result.head !== undefined) {
      await keepHead(options, stateFile, result.head, result.key.key_id, keptHead)
    }
  },
}

const CHECKPOINT: CommandSpec<RegisterOptions> = {
  name: 'checkpoint',
  description:
    'Have the collector sign its current tree head now, and print it (JSON) to keep elsewhere',
  options: REGISTER_API_OPTIONS,
  run: async (options) => {
    const { register } = await contracts()
    const checkpoint = await api(options, register.signCheckpoint, {
      params: { register: options.register },
    })
    if (!options.json) {
      note(
        `register ${options.register}: checkpoint at size ${checkpoint.size}, root ` +
          `${checkpoint.root.slice(0, 16)}…, signed ${checkpoint.ts}; keep a copy elsewhere`,
      )
    }
    out(JSON.stringify(checkpoint))
  },
}

const COUNTERSIGN: CommandSpec<VerifyOptions & { size: number; keyFile: string; by: string }> = {
  name: 'countersign',
  description:
    'Verify the register here, then sign the checkpoint at --size with your own Ed25519 key and post the countersignature',
  options: [
    {
      flags: '--size <n>',
      description: 'the size of the checkpoint to countersign',
      parse: Number,
      required: true,
    },
    { flags: '--key-file <file>', description: 'your Ed25519 private key (PEM)', required: true },
    {
      flags: '--by <name>',
      description: 'who countersigns, as it will be recorded',
      required: true,
    },
    ...REGISTER_API_OPTIONS,
    ...TRUST_OPTIONS,
  ],
  run: async (options) => {
    const { countersignCheckpoint, readPrivateKeyFile } = await import(
      '../../collector/register/audit.ts'
    )
    const key = readPrivateKeyFile(options.keyFile)
    const { checkpoint } = await countersignCheckpoint(
      await connect(options),
      options.register,
      options.size,
      options.by,
      key,
      await trust(options),
    )
    if (!options.json) {
      note(
        `register ${options.register}: checkpoint at size ${checkpoint.size} countersigned by ` +
          `${options.by} (${checkpoint.countersignatures.length} countersignature(s))`,
      )
    }
    out(JSON.stringify(checkpoint))
  },
}

export const registerCommands: CommandSpec = {
  name: 'register',
  description:
    'The tamper-evident register (bulletin 8.5d; OIOS record 9.2d): verify it here, sign a ' +
    'checkpoint, countersign one with your own key',
  commands: [VERIFY, CHECKPOINT, COUNTERSIGN],
}
