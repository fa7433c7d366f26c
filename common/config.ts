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
import type { z } from 'zod'

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Tree = { [key: string]: unknown }

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Every leaf path of the defaults, as the environment variable that overrides it. */
function overridesFromEnv(defaults: Tree, env: NodeJS.ProcessEnv, prefix: string[] = []): Tree {
  const out: Tree = {}
  for (const [key, value] of Object.entries(defaults)) {
    const path = [...prefix, key]
    if (isTree(value)) {
      const nested = overridesFromEnv(value, env, path)
      if (Object.keys(nested).length > 0) out[key] = nested
      continue
    }
    const raw = env[envName(path)]
    if (raw !== undefined) out[key] = raw === '' ? undefined : parseYaml(raw)
  }
  return out
}

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

/** `path.to.field: message` lines, one per problem, for an operator to fix the file. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)'
    return `${where}: ${issue.message}`
  })
}

export interface LoadOptions {
  /** A YAML file; absent means defaults and environment only. */
  file?: string
  env?: NodeJS.ProcessEnv
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
  const merged = merge(withoutNulls(fromFile as Tree), overridesFromEnv(defaults, env))
  const result = schema.safeParse(merged)
  if (!result.success) {
    const source = options.file ?? 'configuration'
    throw new ConfigError(`${source} is invalid:\n  ${describeIssues(result.error).join('\n  ')}`)
  }
  return result.data
}
