/**
 * The CSV files of an export bundle (RFC 4180), made safe to open in a spreadsheet: a subject's
 * DNS name or site name is whatever their traffic said, so a cell that a spreadsheet would run as
 * a formula is escaped (OWASP, CSV injection). The JSON files keep every value as captured.
 */
import type { DrillRow } from './drilldown.ts'
import type { DrillCategory } from './narrowing.ts'

const CSV_COLUMNS: Record<DrillCategory, string[]> = {
  flows: [
    'agent_id',
    'start',
    'end',
    'ip_version',
    'protocol',
    'src',
    'dst',
    'src_port',
    'dst_port',
    'bytes',
    'packets',
    'tcp_flags',
    'community_id',
  ],
  dns: ['agent_id', 'ts', 'client', 'server', 'query', 'qtype', 'rcode'],
  web: ['agent_id', 'ts', 'client', 'server', 'server_port', 'kind', 'name'],
}

/**
 * A cell a spreadsheet would take for a formula (OWASP, CSV injection): one starting with = + - @,
 * a tab or a carriage return. A subject's DNS name or site name is whatever their traffic said.
 */
const FORMULA_START = /^[=+\-@\t\r]/

/**
 * RFC 4180: a field with a comma, quote, CR or LF is quoted, quotes doubled; CRLF line ends.
 * A text cell that a spreadsheet would run as a formula is prefixed with a single quote, which
 * makes it text; numbers are written as they are (a negative number is no formula).
 */
export function csvField(value: string | number | undefined): string {
  let text = value === undefined ? '' : String(value)
  if (typeof value === 'string' && FORMULA_START.test(text)) text = `'${text}`
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

export function toCsv(category: DrillCategory, rows: DrillRow[]): string {
  const columns = CSV_COLUMNS[category]
  const lines = [columns.join(',')]
  for (const row of rows) lines.push(columns.map((c) => csvField(row[c])).join(','))
  return `${lines.join('\r\n')}\r\n`
}
