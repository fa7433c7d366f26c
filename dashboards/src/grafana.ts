/**
 * Builders for the dashboards' JSON: Grafana dashboard model (schemaVersion 39) with panels and
 * variables for the official ClickHouse data source, `grafana-clickhouse-datasource` v4.
 *
 * Every target is a raw SQL query (`editorType: 'sql'`) with a numeric `format` (0 time series,
 * 1 table) and the plugin version; every panel and target names the data source through the
 * `datasource` variable, whose default is the provisioned data source (uid `tally-clickhouse`).
 * Panels are laid out left to right on the 24-column grid, ids in order.
 */

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json }
export type JsonObject = { [key: string]: Json }

export const PLUGIN_ID = 'grafana-clickhouse-datasource'
export const PLUGIN_VERSION = '4.10.1'
export const DATASOURCE_UID = 'tally-clickhouse'
export const DATASOURCE_NAME = 'Tally ClickHouse'
/** Panels and targets name the data source through the variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable, not a JS placeholder
export const DATASOURCE: JsonObject = { type: PLUGIN_ID, uid: '${datasource}' }

/** The plugin's query formats (sqlutil.FormatQueryOption). */
export const FORMAT = { timeSeries: 0, table: 1 } as const

/** Grafana template references, kept in one place so the SQL reads plainly. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable, not a JS placeholder
export const SITE = '${site:singlequote}'
// biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable, not a JS placeholder
export const HOST = '${host:singlequote}'
/** Rows of the selected site, or of every site when the variable is "All". */
export const SITE_FILTER = `$__conditionalAll(site = ${SITE}, $site)`

export type PanelType = 'timeseries' | 'stat' | 'table' | 'barchart' | 'piechart' | 'text' | 'row'

export interface PanelSpec {
  type: PanelType
  title: string
  description?: string
  /** Width (of 24) and height in grid units; rows are always full width. */
  w?: number
  h?: number
  /** One query per target; a time series panel's queries are in the time series format. */
  sql?: string | string[]
  /** Grafana's minimum interval for the panel (`$__interval_s` is never below it). */
  minInterval?: string
  unit?: string
  decimals?: number
  min?: number
  max?: number
  /** A label column that names each series (long format: time, label, value). */
  seriesLabel?: string
  stack?: boolean
  bars?: boolean
  /** Stat and table colouring: [value, colour] steps after the base colour. */
  thresholds?: Array<[number, string]>
  baseColor?: string
  mappings?: Json[]
  overrides?: Json[]
  options?: JsonObject
  /** Text panels: markdown. */
  content?: string
}

const thresholdSteps = (spec: PanelSpec): Json => ({
  mode: 'absolute',
  steps: [
    { color: spec.baseColor ?? 'green', value: null },
    ...(spec.thresholds ?? []).map(([value, color]) => ({ color, value })),
  ],
})

function fieldConfig(spec: PanelSpec): JsonObject {
  const defaults: JsonObject = { thresholds: thresholdSteps(spec) }
  if (spec.unit !== undefined) defaults.unit = spec.unit
  if (spec.decimals !== undefined) defaults.decimals = spec.decimals
  if (spec.min !== undefined) defaults.min = spec.min
  if (spec.max !== undefined) defaults.max = spec.max
  if (spec.mappings !== undefined) defaults.mappings = spec.mappings
  if (spec.seriesLabel !== undefined)
    defaults.displayName = `\${__field.labels.${spec.seriesLabel}}`
  if (spec.type === 'timeseries') {
    defaults.color = { mode: 'palette-classic' }
    defaults.custom = {
      drawStyle: spec.bars ? 'bars' : 'line',
      lineWidth: 1,
      fillOpacity: spec.stack || spec.bars ? 60 : 10,
      showPoints: 'never',
      spanNulls: false,
      stacking: { mode: spec.stack ? 'normal' : 'none', group: 'A' },
      axisSoftMin: 0,
    }
  } else if (spec.type === 'stat' || spec.type === 'table') {
    defaults.color = { mode: 'thresholds' }
  } else {
    defaults.color = { mode: 'palette-classic' }
  }
  return { defaults, overrides: spec.overrides ?? [] }
}

function panelOptions(spec: PanelSpec): JsonObject {
  const legend = { displayMode: 'list', placement: 'bottom', showLegend: true, calcs: [] }
  const base = ((): JsonObject => {
    switch (spec.type) {
      case 'timeseries':
        return { legend, tooltip: { mode: 'multi', sort: 'desc' } }
      case 'stat':
        return {
          reduceOptions: { values: false, calcs: ['lastNotNull'], fields: '' },
          colorMode: 'value',
          graphMode: 'none',
          justifyMode: 'auto',
          textMode: 'auto',
          orientation: 'auto',
        }
      case 'table':
        return { showHeader: true, cellHeight: 'sm', footer: { show: false } }
      case 'barchart':
        return {
          orientation: 'auto',
          stacking: 'normal',
          showValue: 'auto',
          groupWidth: 0.7,
          barWidth: 0.9,
          legend,
          tooltip: { mode: 'multi', sort: 'none' },
        }
      case 'piechart':
        return {
          reduceOptions: { values: true, calcs: ['lastNotNull'], fields: '' },
          pieType: 'donut',
          displayLabels: ['name', 'value'],
          legend: { displayMode: 'table', placement: 'right', showLegend: true, values: ['value'] },
          tooltip: { mode: 'single', sort: 'none' },
        }
      case 'text':
        return { mode: 'markdown', content: spec.content ?? '' }
      case 'row':
        return {}
    }
  })()
  return { ...base, ...spec.options }
}

function target(sql: string, index: number, spec: PanelSpec): JsonObject {
  const timeSeries = spec.type === 'timeseries'
  return {
    refId: String.fromCharCode(65 + index),
    datasource: DATASOURCE,
    editorType: 'sql',
    format: timeSeries ? FORMAT.timeSeries : FORMAT.table,
    queryType: timeSeries ? 'timeseries' : 'table',
    pluginVersion: PLUGIN_VERSION,
    rawSql: sql.trim(),
  }
}

/** Places panels left to right, wrapping at 24 columns; rows start a new line. */
export function layout(specs: PanelSpec[]): JsonObject[] {
  const panels: JsonObject[] = []
  let x = 0
  let y = 0
  let lineHeight = 0
  specs.forEach((spec, i) => {
    const id = i + 1
    if (spec.type === 'row') {
      y += lineHeight
      x = 0
      lineHeight = 0
      panels.push({
        id,
        type: 'row',
        title: spec.title,
        collapsed: false,
        gridPos: { x: 0, y, w: 24, h: 1 },
        panels: [],
      })
      y += 1
      return
    }
    const w = spec.w ?? 12
    const h = spec.h ?? 8
    if (x + w > 24) {
      y += lineHeight
      x = 0
      lineHeight = 0
    }
    const panel: JsonObject = {
      id,
      type: spec.type,
      title: spec.title,
      gridPos: { x, y, w, h },
    }
    if (spec.description !== undefined) panel.description = spec.description
    if (spec.type !== 'text') {
      panel.datasource = DATASOURCE
      const queries = typeof spec.sql === 'string' ? [spec.sql] : (spec.sql ?? [])
      if (queries.length === 0) throw new Error(`panel ${spec.title} has no query`)
      panel.targets = queries.map((sql, n) => target(sql, n, spec))
      if (spec.minInterval !== undefined) panel.interval = spec.minInterval
      panel.fieldConfig = fieldConfig(spec)
    }
    panel.options = panelOptions(spec)
    panels.push(panel)
    x += w
    lineHeight = Math.max(lineHeight, h)
  })
  return panels
}

// Template variables ----------------------------------------------------------------------

export const datasourceVariable: JsonObject = {
  name: 'datasource',
  label: 'Data source',
  type: 'datasource',
  query: PLUGIN_ID,
  current: { selected: true, text: DATASOURCE_NAME, value: DATASOURCE_UID },
  hide: 0,
  refresh: 1,
  regex: '',
  options: [],
  skipUrlSync: false,
}

/**
 * The site, or "All". "All" stands for the empty string (`allValue` `''`, put in raw by
 * Grafana): what the usage views take for every site, and `$__conditionalAll` turns the
 * filter into `1=1`. So queries name the site as `${site:singlequote}`, never `'${site}'`.
 */
export const siteVariable: JsonObject = {
  name: 'site',
  label: 'Site',
  description: 'A site, or All: every site (passed to the usage views as the empty string).',
  type: 'query',
  datasource: DATASOURCE,
  query: 'SELECT DISTINCT site FROM tally.agents ORDER BY site',
  definition: 'SELECT DISTINCT site FROM tally.agents ORDER BY site',
  includeAll: true,
  allValue: "''",
  multi: false,
  current: { selected: true, text: 'All', value: '$__all' },
  options: [],
  refresh: 1,
  regex: '',
  sort: 1,
  hide: 0,
  skipUrlSync: false,
}

const HOST_QUERY = `SELECT DISTINCT host FROM tally.agents FINAL WHERE revoked_at IS NULL AND ${SITE_FILTER} ORDER BY host`

/** One host of the selected site(s). */
export const hostVariable: JsonObject = {
  name: 'host',
  label: 'Host',
  type: 'query',
  datasource: DATASOURCE,
  query: HOST_QUERY,
  definition: HOST_QUERY,
  includeAll: false,
  multi: false,
  current: {},
  options: [],
  refresh: 1,
  regex: '',
  sort: 1,
  hide: 0,
  skipUrlSync: false,
}

export interface DashboardSpec {
  uid: string
  title: string
  description: string
  variables: JsonObject[]
  panels: PanelSpec[]
  time?: string
  refresh?: string
}

export function dashboard(spec: DashboardSpec): JsonObject {
  return {
    id: null,
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['tally'],
    timezone: 'utc',
    editable: true,
    graphTooltip: 1,
    fiscalYearStartMonth: 0,
    liveNow: false,
    schemaVersion: 39,
    version: 1,
    refresh: spec.refresh ?? '1m',
    time: { from: spec.time ?? 'now-6h', to: 'now' },
    timepicker: {},
    weekStart: '',
    links: [
      {
        type: 'dashboards',
        tags: ['tally'],
        asDropdown: true,
        title: 'Tally',
        includeVars: true,
        keepTime: true,
        icon: 'external link',
        targetBlank: false,
        tooltip: '',
        url: '',
      },
    ],
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    templating: { list: spec.variables },
    panels: layout(spec.panels),
  }
}
