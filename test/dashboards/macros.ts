/**
 * What Grafana and the ClickHouse data source (grafana-clickhouse-datasource v4) do to a panel's
 * `rawSql` before ClickHouse sees it, in the same order, so the dashboards' queries can be run on
 * the embedded engine exactly as Grafana would send them:
 *
 * 1. the plugin's frontend replaces `$__conditionalAll(condition, $var)` by `1=1` when the
 *    variable is "All" (or empty), else by the condition (Datasource.applyConditionalAll);
 * 2. Grafana's template service replaces variables, `$var`, `${var}`, `${var:format}`,
 *    `[[var]]`, and the built-ins (`$__from`, `$__interval`, ...), formatting a multi-value
 *    without an explicit format as the plugin's `format` does (`'a','b'`); a custom "All" value
 *    goes in raw;
 * 3. the plugin's backend expands its macros (pkg/macros, through sqlds): `$__timeFilter(col)`,
 *    `$__fromTime`, `$__toTime`, `$__interval_s`, `$__timeInterval(col)`, ... with the arguments
 *    in balanced brackets, split at top-level commas and trimmed.
 */

export const ALL = '$__all'

export interface TemplateVariable {
  name: string
  /** The selection: a value, several (multi-value), or ALL. */
  value: string | string[]
  /** Every option's value: what "All" stands for when there is no custom all value. */
  options?: string[]
  /** A custom all value (the variable's `allValue`), put in raw. */
  allValue?: string
}

export interface QueryContext {
  fromMs: number
  toMs: number
  /** The panel's interval (Grafana's `intervalMs`). */
  intervalMs: number
  variables: TemplateVariable[]
}

export function expandQuery(rawSql: string, ctx: QueryContext): string {
  const conditional = applyConditionalAll(rawSql, ctx.variables)
  const templated = replaceVariables(conditional, ctx)
  return applyMacros(templated, ctx)
}

// 1. $__conditionalAll, as the plugin's frontend does it ------------------------------------

/** Arguments of the call whose `(` is at `argsIndex`, as the plugin's getMacroArgs reads them. */
function getMacroArgs(query: string, argsIndex: number): string[] {
  const args: string[] = []
  const re = /\(|\)|,/g
  let depth = 0
  let lastArgEnd = 1
  const rest = query.substring(argsIndex)
  for (let m = re.exec(rest); m !== null; m = re.exec(rest)) {
    const found = m[0]
    if (found === '(') depth++
    else if (found === ')') depth--
    if (found === ',' && depth === 1) {
      args.push(rest.substring(lastArgEnd, re.lastIndex - 1))
      lastArgEnd = re.lastIndex
    }
    if (depth === 0) {
      args.push(rest.substring(lastArgEnd, re.lastIndex - 1))
      return args
    }
  }
  return []
}

export function applyConditionalAll(rawSql: string, variables: TemplateVariable[]): string {
  const macro = '$__conditionalAll('
  let sql = rawSql
  let index = sql.lastIndexOf(macro)
  while (index !== -1) {
    const params = getMacroArgs(sql, index + macro.length - 1)
    if (params.length !== 2) return sql
    const [condition = '', variableParam = ''] = params
    const name = /(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+/.exec(variableParam.trim())
    let phrase = condition
    if (name !== null) {
      const variable = variables.find((v) => v.name === name[0])
      const value = variable === undefined ? undefined : String(variable.value)
      if (value === '' || value === ALL) phrase = '1=1'
    }
    sql = sql.replace(`${macro}${condition},${variableParam})`, phrase)
    index = sql.lastIndexOf(macro)
  }
  return sql
}

// 2. Template variables, as Grafana's template service does it -----------------------------

const VARIABLE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g

const escapeSingle = (v: string) => `'${v.replace(/'/g, "\\'")}'`
const escapeDouble = (v: string) => `"${v.replace(/"/g, '\\"')}"`
const sqlString = (v: string) => `'${v.replace(/'/g, "''")}'`

function formatValue(value: string | string[], format: string | undefined): string {
  const list = Array.isArray(value) ? value : [value]
  switch (format) {
    // No format: the data source's own, which quotes the values of a multi-value only.
    case undefined:
      return Array.isArray(value) ? `'${value.join("','")}'` : value
    case 'singlequote':
      return list.map(escapeSingle).join(',')
    case 'doublequote':
      return list.map(escapeDouble).join(',')
    case 'sqlstring':
      return list.map(sqlString).join(',')
    case 'csv':
    case 'raw':
    case 'text':
      return list.join(',')
    case 'pipe':
      return list.join('|')
    case 'json':
      return JSON.stringify(value)
    default:
      throw new Error(`variable format ${format} is not supported by this expander`)
  }
}

/** Grafana's text for an interval, as `$__interval` shows it (kbn.secondsToHms). */
export function intervalText(ms: number): string {
  const units: Array<[number, string]> = [
    [31_536_000_000, 'y'],
    [604_800_000, 'w'],
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1_000, 's'],
  ]
  for (const [size, unit] of units) if (ms >= size) return `${Math.floor(ms / size)}${unit}`
  return `${ms}ms`
}

function builtIn(name: string, ctx: QueryContext): string | undefined {
  switch (name) {
    case '__from':
      return String(ctx.fromMs)
    case '__to':
      return String(ctx.toMs)
    case '__interval':
      return intervalText(ctx.intervalMs)
    case '__interval_ms':
      return String(ctx.intervalMs)
    case '__range_ms':
      return String(ctx.toMs - ctx.fromMs)
    case '__range_s':
      return String(Math.round((ctx.toMs - ctx.fromMs) / 1000))
    default:
      return undefined
  }
}

export function replaceVariables(sql: string, ctx: QueryContext): string {
  return sql.replace(
    VARIABLE,
    (
      match: string,
      bare: string | undefined,
      bracketed: string | undefined,
      bracketedFormat: string | undefined,
      braced: string | undefined,
      _fieldPath: string | undefined,
      bracedFormat: string | undefined,
    ) => {
      const name = bare ?? bracketed ?? braced ?? ''
      const format = bracketedFormat ?? bracedFormat
      const variable = ctx.variables.find((v) => v.name === name)
      if (variable === undefined) {
        const value = builtIn(name, ctx)
        return value === undefined ? match : formatValue(value, format)
      }
      const selected = variable.value
      const isAll = Array.isArray(selected) ? selected.includes(ALL) : selected === ALL
      if (isAll) {
        // A custom all value goes in as it is, unless the format is text or percentencode.
        if (variable.allValue !== undefined && format !== 'text' && format !== 'percentencode') {
          return replaceVariables(variable.allValue, ctx)
        }
        return formatValue(variable.options ?? [], format)
      }
      return formatValue(selected, format)
    },
  )
}

// 3. The plugin's backend macros -----------------------------------------------------------

const seconds = (ms: number) => Math.floor(ms / 1000)
const toDateTime = (ms: number) => `toDateTime(${seconds(ms)})`
const toDateTime64 = (ms: number) => `fromUnixTimestamp64Milli(${Math.trunc(ms)})`
const toDate = (ms: number) => `toDate('${new Date(ms).toISOString().slice(0, 10)}')`

type Macro = (args: string[], ctx: QueryContext) => string

const arity = (name: string, args: string[], n: number) => {
  if (args.length !== n) {
    throw new Error(`$__${name}: expected ${n} argument(s), received ${args.length}`)
  }
}

const MACROS: Record<string, Macro> = {
  fromTime: (_, c) => toDateTime(c.fromMs),
  toTime: (_, c) => toDateTime(c.toMs),
  fromTime_ms: (_, c) => toDateTime64(c.fromMs),
  toTime_ms: (_, c) => toDateTime64(c.toMs),
  timeFilter: (a, c) => {
    arity('timeFilter', a, 1)
    return `${a[0]} >= ${toDateTime(c.fromMs)} AND ${a[0]} <= ${toDateTime(c.toMs)}`
  },
  timeFilter_ms: (a, c) => {
    arity('timeFilter_ms', a, 1)
    return `${a[0]} >= ${toDateTime64(c.fromMs)} AND ${a[0]} <= ${toDateTime64(c.toMs)}`
  },
  dateFilter: (a, c) => {
    arity('dateFilter', a, 1)
    return `${a[0]} >= ${toDate(c.fromMs)} AND ${a[0]} <= ${toDate(c.toMs)}`
  },
  dateTimeFilter: (a, c) => {
    arity('dateTimeFilter', a, 2)
    return (
      `(${a[0]} >= ${toDate(c.fromMs)} AND ${a[0]} <= ${toDate(c.toMs)}) AND ` +
      `(${a[1]} >= ${toDateTime(c.fromMs)} AND ${a[1]} <= ${toDateTime(c.toMs)})`
    )
  },
  timeInterval: (a, c) => {
    arity('timeInterval', a, 1)
    return `toStartOfInterval(toDateTime(${a[0]}), INTERVAL ${intervalSeconds(c)} second)`
  },
  timeInterval_ms: (a, c) => {
    arity('timeInterval_ms', a, 1)
    const ms = Math.max(Math.trunc(c.intervalMs), 1)
    return `toStartOfInterval(toDateTime64(${a[0]}, 3), INTERVAL ${ms} millisecond)`
  },
  interval_s: (_, c) => String(intervalSeconds(c)),
}
MACROS.dt = MACROS.dateTimeFilter as Macro

/** `int(math.Max(interval.Seconds(), 1))`. */
const intervalSeconds = (c: QueryContext) => Math.trunc(Math.max(c.intervalMs / 1000, 1))

/**
 * A bracketed argument list at the start of `text`, as sqlds' parseArgs reads it: the arguments
 * (split at commas outside brackets, trimmed) and the length of the list; none when `text` does
 * not start with `(`.
 */
function parseArgs(text: string): { args: string[]; length: number } {
  if (!text.startsWith('(')) return { args: [], length: 0 }
  const args: string[] = []
  let depth = 0
  let arg = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '(') {
      depth++
      if (depth === 1) continue
    } else if (c === ')') {
      depth--
      if (depth === 0) {
        args.push(arg.trim())
        return { args, length: i + 1 }
      }
    } else if (c === ',' && depth === 1) {
      args.push(arg.trim())
      arg = ''
      continue
    }
    arg += c
  }
  throw new Error('failed to parse macro arguments (missing close bracket?)')
}

export function applyMacros(sql: string, ctx: QueryContext): string {
  let out = sql
  for (const [name, macro] of Object.entries(MACROS)) {
    const pattern = new RegExp(`\\$__${name}\\b`, 'g')
    for (;;) {
      pattern.lastIndex = 0
      const match = pattern.exec(out)
      if (match === null) break
      const start = match.index
      const end = start + match[0].length
      const { args, length } = parseArgs(out.slice(end))
      out = out.slice(0, start) + macro(args, ctx) + out.slice(end + length)
    }
  }
  return out
}

// Grafana's choice of a panel's interval ----------------------------------------------------

/** `10s`, `1m`, `2h`, `1d`, `500ms` in milliseconds. */
export function parseInterval(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$/.exec(text.trim())
  if (match === null) throw new Error(`not an interval: ${text}`)
  const unit: Record<string, number> = {
    ms: 1,
    s: 1_000,
    m: 60_000,
    h: 3_600_000,
    d: 86_400_000,
    w: 604_800_000,
    y: 31_536_000_000,
  }
  return Number(match[1]) * (unit[match[2] ?? ''] ?? Number.NaN)
}

/** Grafana's rounding of range / resolution to a readable interval (rangeutil.roundInterval). */
export function roundInterval(ms: number): number {
  const steps: Array<[number, number]> = [
    [10, 1],
    [15, 10],
    [35, 20],
    [75, 50],
    [150, 100],
    [350, 200],
    [750, 500],
    [1_500, 1_000],
    [3_500, 2_000],
    [7_500, 5_000],
    [12_500, 10_000],
    [17_500, 15_000],
    [25_000, 20_000],
    [45_000, 30_000],
    [90_000, 60_000],
    [210_000, 120_000],
    [450_000, 300_000],
    [750_000, 600_000],
    [1_050_000, 900_000],
    [1_500_000, 1_200_000],
    [2_700_000, 1_800_000],
    [5_400_000, 3_600_000],
    [9_000_000, 7_200_000],
    [16_200_000, 10_800_000],
    [32_400_000, 21_600_000],
    [86_400_000, 43_200_000],
    [604_800_000, 86_400_000],
    [1_814_400_000, 604_800_000],
    [3_628_800_000, 2_592_000_000],
  ]
  for (const [limit, interval] of steps) if (ms <= limit) return interval
  return 31_536_000_000
}

/** The interval Grafana gives a panel: range over its data points, rounded, at least `min`. */
export function panelInterval(rangeMs: number, maxDataPoints: number, min?: string): number {
  const auto = roundInterval(rangeMs / maxDataPoints)
  return min === undefined ? auto : Math.max(auto, parseInterval(min))
}
