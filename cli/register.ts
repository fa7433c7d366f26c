/**
 * `tally register verify | checkpoint | countersign`: the auditor's commands. They talk to a
 * running collector over its API and verify here (collector/register/audit.ts); the modules
 * that do the work load only when a command runs.
 */
import { Command, Option } from 'commander'
import type { RegisterApi } from '../collector/register/audit.ts'
import type { RegisterName } from '../protocol/api/names.ts'
import { type ApiOptions, apiOptions as collectorOptions } from './api-options.ts'

interface RegisterOptions extends ApiOptions {
  register: RegisterName
}

interface VerifyOptions extends RegisterOptions {
  publicKey?: string
  checkpoints?: string
  /** The kept-head file; false with --no-state. */
  state?: string | false
}

/** The options of every command that calls a collector, and which register. */
const apiOptions = (command: Command): Command =>
  collectorOptions(
    command.addOption(
      new Option('--register <name>', 'which register').choices(['itsd', 'oios']).default('itsd'),
    ),
  )

const trustOptions = (command: Command): Command =>
  command
    .option(
      '--public-key <file>',
      "the register's public key as you keep it (JWK or PEM); without it, the key the collector serves",
    )
    .option(
      '--checkpoints <file>',
      'checkpoints you kept elsewhere (JSON, or JSON lines), checked with those the collector has',
    )

async function connect(options: RegisterOptions): Promise<RegisterApi> {
  const { callPath, readTokenFile } = await import('../protocol/client.ts')
  const token = options.token ?? readTokenFile(options.tokenFile)
  const target = { collectorUrl: options.collector, token }
  // The audit parses what it reads itself (collector/register/audit.ts).
  return {
    get: <T>(path: string) => callPath(target, 'GET', path) as Promise<T>,
    post: <T>(path: string, body?: unknown) => callPath(target, 'POST', path, body) as Promise<T>,
  }
}

async function trust(options: VerifyOptions) {
  const { readCheckpointsFile, readPublicKeyFile } = await import('../collector/register/audit.ts')
  return {
    publicKey: options.publicKey === undefined ? undefined : readPublicKeyFile(options.publicKey),
    keptCheckpoints:
      options.checkpoints === undefined ? undefined : readCheckpointsFile(options.checkpoints),
  }
}

const out = (text: string) => process.stdout.write(`${text}\n`)
const note = (text: string) => process.stderr.write(`${text}\n`)

export function registerCommand(): Command {
  const register = new Command('register').description(
    'The tamper-evident register (bulletin 8.5d; OIOS record 9.2d): verify it here, sign a ' +
      'checkpoint, countersign one with your own key',
  )

  trustOptions(
    apiOptions(
      register
        .command('verify')
        .description(
          'Fetch every entry and checkpoint over the API and verify them on this machine: hash ' +
            'chain, Merkle roots at each signed checkpoint, signatures; and that the head ' +
            'verified last time (kept in --state) is extended by the current one, by an RFC ' +
            '6962 consistency proof checked here. Exits 1 on any problem.',
        )
        .option(
          '--state <file>',
          'where the last verified head is kept (default: $XDG_STATE_HOME or ~/.local/state, ' +
            'tally/register-<register>-<collector host_port>.json); keep a copy elsewhere too',
        )
        .option('--no-state', 'neither read nor keep a head (a one-off check)'),
    ),
  ).action(async (options: VerifyOptions) => {
    const {
      auditRegister,
      defaultStatePath,
      formatAudit,
      readKeptHead,
      writeKeptHead,
      AuditError,
    } = await import('../collector/register/audit.ts')
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
    const result = await auditRegister(await connect(options), options.register, {
      ...(await trust(options)),
      keptHead,
    })
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
    } else {
      out(formatAudit(result))
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
    if (!result.report.ok) {
      // The kept head stays as it was: the next run checks against it again.
      process.exitCode = 1
      return
    }
    if (stateFile !== undefined && result.head !== undefined) {
      const { register: name, size, root, ts, signature } = result.head
      writeKeptHead(stateFile, {
        version: 1,
        collector: options.collector,
        register: options.register,
        key_id: result.key.key_id,
        head: { register: name, size, root, ts, signature },
        verified_at: new Date().toISOString(),
      })
      if (!options.json) {
        note(
          `kept the head at size ${size} in ${stateFile}` +
            (keptHead === undefined
              ? ''
              : ` (it extends the one kept at size ${keptHead.head.size})`),
        )
      }
    }
  })

  apiOptions(
    register
      .command('checkpoint')
      .description(
        'Have the collector sign its current tree head now, and print it (JSON) to keep elsewhere',
      ),
  ).action(async (options: RegisterOptions) => {
    const api = await connect(options)
    const checkpoint = await api.post<{ size: number; root: string; ts: string }>(
      `/v1/register/${options.register}/checkpoints`,
    )
    if (!options.json) {
      note(
        `register ${options.register}: checkpoint at size ${checkpoint.size}, root ` +
          `${checkpoint.root.slice(0, 16)}…, signed ${checkpoint.ts}; keep a copy elsewhere`,
      )
    }
    out(JSON.stringify(checkpoint))
  })

  trustOptions(
    apiOptions(
      register
        .command('countersign')
        .description(
          'Verify the register here, then sign the checkpoint at --size with your own Ed25519 key and post the countersignature',
        )
        .requiredOption('--size <n>', 'the size of the checkpoint to countersign', Number)
        .requiredOption('--key-file <file>', 'your Ed25519 private key (PEM)')
        .requiredOption('--by <name>', 'who countersigns, as it will be recorded'),
    ),
  ).action(async (options: VerifyOptions & { size: number; keyFile: string; by: string }) => {
    const { countersignCheckpoint, readPrivateKeyFile } = await import(
      '../collector/register/audit.ts'
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
  })
  return register
}
