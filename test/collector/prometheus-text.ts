/**
 * Reads the Prometheus exposition text (0.0.4) that GET /metrics serves, for tests that compare
 * what it shows. The collector itself never parses it: its own rows come from a metric reader.
 */

/** One line of the Prometheus text format: a sample with its labels. */
export interface PromSample {
  name: string
  labels: Record<string, string>
  value: number
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/

/** Parses the exposition text (0.0.4): comments skipped, label values unescaped. */
export function parsePrometheusText(text: string): PromSample[] {
  const samples: PromSample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = SAMPLE_LINE.exec(line)
    if (match === null) continue
    const [, name = '', labelText = '', valueText = ''] = match
    const value = parsePromValue(valueText)
    if (value === undefined) continue
    samples.push({ name, labels: parseLabels(labelText), value })
  }
  return samples
}

function parsePromValue(text: string): number | undefined {
  if (text === '+Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  const n = Number(text)
  return Number.isNaN(n) ? undefined : n
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    if (eq < 0 || text[eq + 1] !== '"') break
    const name = text.slice(i, eq).trim()
    let value = ''
    let j = eq + 2
    for (; j < text.length && text[j] !== '"'; j++) {
      const c = text[j]
      if (c === '\\' && j + 1 < text.length) {
        j++
        const e = text[j]
        value += e === 'n' ? '\n' : (e ?? '')
      } else {
        value += c
      }
    }
    labels[name] = value
    i = j + 1
    while (i < text.length && (text[i] === ',' || text[i] === ' ')) i++
  }
  return labels
}
