/** What the commands that call a running collector share: their options and the call. */
import { type Command, Option } from 'commander'
import type { AnswerOf, CallOf, RouteContract } from '../protocol/api/contract.ts'
import type { ApiTarget } from '../protocol/client.ts'

export interface ApiOptions {
  collector: string
  tokenFile: string
  token?: string
  json?: boolean
}

/** Where the API commands go without --collector: the demo's and a default collector's address. */
export const DEFAULT_COLLECTOR_URL = 'http://127.0.0.1:8080'
/** The token file they read without --token-file: the demo's admin token. */
export const DEFAULT_TOKEN_FILE = './data/admin.token'

export const apiOptions = (command: Command): Command =>
  command
    .addOption(
      new Option('--collector <url>', 'collector URL, with its scheme (http:// or https://)')
        .env('TALLY_COLLECTOR_URL')
        .default(DEFAULT_COLLECTOR_URL),
    )
    .addOption(
      new Option('--token <token>', 'bearer token (instead of --token-file)').env('TALLY_TOKEN'),
    )
    .addOption(
      new Option('--token-file <file>', 'file holding a bearer token').default(DEFAULT_TOKEN_FILE),
    )
    .option('--json', 'print the JSON answer, for scripts')

/** The collector and token the options name. */
export async function targetOf(options: ApiOptions): Promise<ApiTarget> {
  const { readTokenFile } = await import('../protocol/client.ts')
  return {
    collectorUrl: options.collector,
    token: options.token ?? readTokenFile(options.tokenFile),
  }
}

/**
 * Calls a route of the collector's API as the options say. The client (and the schema library
 * it uses) loads only when a command calls, so `tally` starts fast for the commands that do not.
 */
export async function api<R extends RouteContract>(
  options: ApiOptions,
  contract: R,
  input?: CallOf<R>,
): Promise<AnswerOf<R>> {
  const { call } = await import('../protocol/client.ts')
  const target = await targetOf(options)
  return (call as (t: ApiTarget, c: R, i?: CallOf<R>) => Promise<AnswerOf<R>>)(
    target,
    contract,
    input,
  )
}

/** The contract table, loaded with the client when a command calls. */
export const contracts = () => import('../protocol/api/index.ts')

export function print(options: ApiOptions, answer: unknown, human: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(answer, null, 2)}\n` : `${human()}\n`)
}
