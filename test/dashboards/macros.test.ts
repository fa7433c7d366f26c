// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Grafana variables, not JS placeholders
/** The expander does what Grafana and the ClickHouse plugin (v4) do to a panel's SQL. */
import { describe, expect, it } from 'vitest'
import {
  ALL,
  applyConditionalAll,
  applyMacros,
  expandQuery,
  panelInterval,
  type QueryContext,
  replaceVariables,
} from './macros.ts'

const FROM = Date.UTC(2025, 0, 2, 3, 4, 5, 678)
const TO = FROM + 3_600_000
const ctx = (variables: QueryContext['variables'] = [], intervalMs = 20_000): QueryContext => ({
  fromMs: FROM,
  toMs: TO,
  intervalMs,
  variables,
})
const f = Math.floor(FROM / 1000)
const t = Math.floor(TO / 1000)

describe('backend macros', () => {
  it('expands the time macros to seconds, as pkg/macros does', () => {
    expect(applyMacros('WHERE $__timeFilter(ts)', ctx())).toBe(
      `WHERE ts >= toDateTime(${f}) AND ts <= toDateTime(${t})`,
    )
    expect(applyMacros('$__fromTime, $__toTime', ctx())).toBe(`toDateTime(${f}), toDateTime(${t})`)
    expect(applyMacros('$__fromTime_ms', ctx())).toBe(`fromUnixTimestamp64Milli(${FROM})`)
    expect(applyMacros('$__timeFilter_ms( ts )', ctx())).toBe(
      `ts >= fromUnixTimestamp64Milli(${FROM}) AND ts <= fromUnixTimestamp64Milli(${TO})`,
    )
    expect(applyMacros('$__dateFilter(d)', ctx())).toBe(
      "d >= toDate('2025-01-02') AND d <= toDate('2025-01-02')",
    )
  })

  it('expands the interval macros to whole seconds, at least one', () => {
    expect(applyMacros('$__timeInterval(ts) AS time, x / $__interval_s', ctx())).toBe(
      'toStartOfInterval(toDateTime(ts), INTERVAL 20 second) AS time, x / 20',
    )
    expect(applyMacros('$__interval_s', ctx([], 500))).toBe('1')
    expect(applyMacros('$__timeInterval_ms(ts)', ctx([], 1500))).toBe(
      'toStartOfInterval(toDateTime64(ts, 3), INTERVAL 1500 millisecond)',
    )
  })

  it('reads arguments in balanced brackets and refuses a wrong count', () => {
    expect(applyMacros('$__timeFilter(toDateTime(a, b))', ctx())).toBe(
      `toDateTime(a, b) >= toDateTime(${f}) AND toDateTime(a, b) <= toDateTime(${t})`,
    )
    expect(() => applyMacros('$__timeFilter(a, b)', ctx())).toThrow(/expected 1/)
    expect(() => applyMacros('$__timeFilter(a', ctx())).toThrow(/close bracket/)
  })
})

describe('template variables', () => {
  const site = { name: 'site', value: 'geneva', options: ['geneva', "n'bo"], allValue: "''" }

  it('formats a single value as the plugin does, and by an explicit format', () => {
    const c = ctx([{ ...site, value: "n'bo" }])
    expect(replaceVariables('$site ${site} [[site]]', c)).toBe("n'bo n'bo n'bo")
    expect(replaceVariables('${site:singlequote}', c)).toBe("'n\\'bo'")
    expect(replaceVariables('${site:sqlstring}', c)).toBe("'n''bo'")
    expect(replaceVariables('${site:doublequote}', c)).toBe('"n\'bo"')
  })

  it('quotes a multi-value without a format, as the plugin format() does', () => {
    const c = ctx([{ name: 'host', value: ['a', 'b'] }])
    expect(replaceVariables('host IN ($host)', c)).toBe("host IN ('a','b')")
    expect(replaceVariables('${host:csv}|${host:pipe}', c)).toBe('a,b|a|b')
  })

  it('puts a custom all value in raw, else every option', () => {
    expect(replaceVariables('site = ${site:singlequote}', ctx([{ ...site, value: ALL }]))).toBe(
      "site = ''",
    )
    const noCustom = { name: 'site', value: ALL, options: ['a', 'b'] }
    expect(replaceVariables('${site:singlequote}', ctx([noCustom]))).toBe("'a','b'")
  })

  it('leaves unknown names and the plugin macros alone, replaces the built-ins', () => {
    const c = ctx()
    expect(replaceVariables('$nope $__timeFilter(ts) $__interval_s $__fromTime', c)).toBe(
      '$nope $__timeFilter(ts) $__interval_s $__fromTime',
    )
    expect(replaceVariables('$__from ${__to} $__interval $__interval_ms', c)).toBe(
      `${FROM} ${TO} 20s 20000`,
    )
  })
})

describe('$__conditionalAll', () => {
  it('is 1=1 when the variable is All or empty, else the condition', () => {
    const q = 'WHERE $__conditionalAll(site IN (${site:singlequote}), $site) AND x'
    expect(applyConditionalAll(q, [{ name: 'site', value: ALL }])).toBe('WHERE 1=1 AND x')
    expect(applyConditionalAll(q, [{ name: 'site', value: '' }])).toBe('WHERE 1=1 AND x')
    expect(applyConditionalAll(q, [{ name: 'site', value: [ALL] }])).toBe('WHERE 1=1 AND x')
    expect(applyConditionalAll(q, [{ name: 'site', value: 'gva' }])).toBe(
      'WHERE site IN (${site:singlequote}) AND x',
    )
    expect(
      applyConditionalAll('$__conditionalAll(a = 1, ${v}) OR $__conditionalAll(b = 2, $w)', [
        { name: 'v', value: ALL },
        { name: 'w', value: 'x' },
      ]),
    ).toBe('1=1 OR b = 2')
  })

  it('runs before the variables, then the backend macros', () => {
    const sql = expandQuery(
      'SELECT 1 WHERE $__conditionalAll(site = ${site:singlequote}, $site) AND $__timeFilter(ts)',
      ctx([{ name: 'site', value: 'gva', allValue: "''" }]),
    )
    expect(sql).toBe(
      `SELECT 1 WHERE site = 'gva' AND ts >= toDateTime(${f}) AND ts <= toDateTime(${t})`,
    )
  })
})

describe('panel interval', () => {
  it('rounds range / points as Grafana does and keeps the minimum interval', () => {
    expect(panelInterval(3_600_000, 1000)).toBe(5_000)
    expect(panelInterval(3_600_000, 1000, '1m')).toBe(60_000)
    expect(panelInterval(7 * 86_400_000, 1000, '1m')).toBe(600_000)
    expect(panelInterval(90 * 86_400_000, 1000, '10s')).toBe(7_200_000)
  })
})
