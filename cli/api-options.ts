/** What the commands that call a running collector share: their options and the call. */
import type { AnswerOf, CallOf, RouteContract } from '../protocol/api/contract.ts'
import type { ApiTarget } from '../protocol/client.ts'
import type { OptionSpec } from './command-table.ts'

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

/** The options of every command that calls a collector, after its own. */
export const API_OPTIONS: readonly OptionSpec[] = [
  {
    flags: '--collector <url>',
    description: 'collector URL, with its scheme (http:// or https://)',
    env: 'TALLY_COLLECTOR_URL',
    default: DEFAULT_COLLECTOR_URL,
  },
  {
    flags: '--token <token>',
    description: 'bearer token (instead of --token-file)',
    env: 'TALLY_TOKEN',
  },
  {
    flags: '--token-file <file>',
    description: 'file holding a bearer token',
    default: DEFAULT_TOKEN_FILE,
  },
  { flags: '--json', description: 'print the JSON answer, for scripts' },
]

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
  const { callRoute } = await import('../protocol/client.ts')
  return callRoute(await targetOf(options), contract, input)
}

/**
 * Calls a route whose body is a document the operator wrote (a case file), sent as written: the
 * collector checks it and names each problem in its 400.
 */
export async function apiWithDocument<R extends RouteContract>(
  options: ApiOptions,
  contract: R,
  input: Omit<CallOf<R>, 'body'>,
  document: unknown,
): Promise<AnswerOf<R>> {
  const { callWithDocument } = await import('../protocol/client.ts')
  return callWithDocument(await targetOf(options), contract, input, document)
}

/** The contract table, loaded with the client when a command calls. */
export const contracts = () => import('../protocol/api/index.ts')

export function print(options: ApiOptions, answer: unknown, human: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(answer, null, 2)}\n` : `${human()}\n`)
}
