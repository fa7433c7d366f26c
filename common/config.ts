/**
 * Configuration files for the agent and the collector: YAML, validated by a zod schema whose
 * defaults make an empty file valid, with environment overrides.
 *
 * An override names a setting by its path: `clickhouse.url` is `TALLY_CLICKHOUSE_URL`. Its value
 * is read as YAML, so `TALLY_LISTEN_PORT=9000` is the number 9000. This lives outside agent/
 * and collector/ because both use it and the agent must not import the collector.
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Tree = { [key: string]: unknown }

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Every leaf path of the defaults, as the environment variable that overrides it. `fromEnv`
 * collects the paths actually set, so that a value that does not validate names its variable.
 */
function overridesFromEnv(
  defaults: Tree,
  env: NodeJS.ProcessEnv,
  fromEnv: Map<string, string>,
  prefix: string[] = [],
): Tree {
  const out: Tree = {}
  for (const [key, value] of Object.entries(defaults)) {
    const path = [...prefix, key]
    if (isTree(value)) {
      const nested = overridesFromEnv(value, env, fromEnv, path)
      if (Object.keys(nested).length > 0) out[key] = nested
      continue
    }
    const name = envName(path)
    const raw = env[name]
    if (raw === undefined) continue
    fromEnv.set(path.join('.'), name)
    try {
      out[key] = raw === '' ? undefined : parseYaml(raw)
    } catch (err) {
      // The value itself is not repeated: it may be a password.
      throw new ConfigError(
        `${name} (the environment override of ${path.join('.')}) is not valid YAML: ${firstLine((err as Error).message)}`,
      )
    }
  }
  return out
}

const firstLine = (text: string): string => text.split('\n')[0] ?? text

export const envName = (path: string[]): string => `TALLY_${path.join('_').toUpperCase()}`

/** A key written with no value (`enrollment:` with every line under it commented) means "default". */
function withoutNulls(tree: Tree): Tree {
  const out: Tree = {}
  for (const [key, value] of Object.entries(tree)) {
    if (value === null) continue
    out[key] = isTree(value) ? withoutNulls(value) : value
  }
  return out
}

function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base }
  for (const [key, value] of Object.entries(over)) {
    const current = out[key]
    out[key] = isTree(value) && isTree(current) ? merge(current, value) : value
  }
  return out
}

/**
 * `path.to.field: message` lines, one per problem, for an operator to fix the file; a setting
 * that came from the environment is named by its variable, since the file is not where it is.
 */
export function describeIssues(
  error: z.ZodError,
  fromEnv: ReadonlyMap<string, string> = new Map(),
): string[] {
  return error.issues.map((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)'
    const variable = envVariableOf(issue.path, fromEnv)
    return variable === undefined
      ? `${where}: ${issue.message}`
      : `${variable} (environment, sets ${where}): ${issue.message}`
  })
}

/** The variable that set this path or one of its parents (an array's element, say). */
function envVariableOf(
  path: readonly PropertyKey[],
  fromEnv: ReadonlyMap<string, string>,
): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const name = fromEnv.get(path.slice(0, n).map(String).join('.'))
    if (name !== undefined) return name
  }
  return undefined
}

/**
 * An http:// or https:// URL: what both programs can actually call. `127.0.0.1:8080` is refused
 * with the scheme it lacks, not as a URL with the scheme "127.0.0.1".
 */
export const httpUrl = (): z.ZodString =>
  z.string().superRefine((text, ctx) => {
    const problem = httpUrlProblem(text)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem })
  })

/** Why `text` is not an http(s) URL, or undefined when it is one. */
export function httpUrlProblem(text: string): string | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    return `must be an http:// or https:// URL; the scheme is missing (http://${text} ?)`
  }
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'is not a valid URL'
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `must be an http:// or https:// URL, not ${url.protocol}//`
  }
  return undefined
}

const SECRET_KEY = /(^|_)(password|pass|secret|token|key|credential)$/i
const SHOWN = '(set, not shown)'

/**
 * The settings as `check` prints them: secret values replaced, and so are the credentials and
 * the path of URLs (a webhook URL's path is often its secret). Names and numbers stay.
 */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key))
  if (isTree(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]))
  }
  if (typeof value !== 'string' || value === '') return value
  if (SECRET_KEY.test(key)) return SHOWN
  if (/(^|_)url$/i.test(key)) return maskUrl(value, /webhook/i.test(key))
  return value
}

function maskUrl(text: string, pathIsSecret: boolean): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return text
  }
  if (url.password !== '') url.password = 'hidden'
  if (url.search !== '') url.search = '?hidden'
  if (pathIsSecret && url.pathname !== '/') url.pathname = '/hidden'
  return url.toString()
}

export interface LoadOptions {
  /** A YAML file; absent means defaults and environment only. */
  file?: string | undefined
  /** Absent means the process's environment. */
  env?: NodeJS.ProcessEnv | undefined
}

/**
 * Reads, overrides and validates. `defaults` is the schema's parse of `{}`: its leaf paths are the
 * settings an environment variable may override (optional settings without a default are listed
 * in `extraLeaves` so they can be set from the environment too).
 */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  options: LoadOptions & { extraLeaves?: string[] } = {},
): z.output<S> {
  const env = options.env ?? process.env
  let fromFile: unknown = {}
  if (options.file !== undefined) {
    let text: string
    try {
      text = readFileSync(options.file, 'utf8')
    } catch (err) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(err as Error).message}`)
    }
    try {
      fromFile = parseYaml(text) ?? {}
    } catch (err) {
      throw new ConfigError(`${options.file} is not valid YAML: ${(err as Error).message}`)
    }
    if (!isTree(fromFile)) throw new ConfigError(`${options.file}: the top level must be a mapping`)
  }
  const defaults = schema.parse({}) as Tree
  for (const leaf of options.extraLeaves ?? []) {
    const path = leaf.split('.')
    let node = defaults
    for (const part of path.slice(0, -1)) {
      node[part] ??= {}
      node = node[part] as Tree
    }
    node[path.at(-1) as string] ??= null
  }
  const fromEnv = new Map<string, string>()
  const merged = merge(withoutNulls(fromFile as Tree), overridesFromEnv(defaults, env, fromEnv))
  const result = schema.safeParse(merged)
  if (!result.success) {
    const blamed = result.error.issues.map((issue) => envVariableOf(issue.path, fromEnv))
    const variables = [...new Set(blamed.filter((name) => name !== undefined))]
    // Blame the file only for what it set; an override that does not parse is the environment's.
    const sources = [
      ...(blamed.includes(undefined) ? [options.file ?? 'the configuration'] : []),
      ...(variables.length > 0 ? [`the environment (${variables.join(', ')})`] : []),
    ]
    throw new ConfigError(
      `${sources.join(' and ')} ${sources.length > 1 ? 'are' : 'is'} invalid:\n  ${describeIssues(result.error, fromEnv).join('\n  ')}`,
    )
  }
  return result.data
}
