/**
 * Searching what Tally produced for values that must not be in it (addresses, ports, names).
 *
 * Strings are searched case-insensitively as substrings. Numbers (a port, an address as an
 * integer) are searched as values: a number equal to one, or a string holding one as a whole
 * number (not part of a longer run of digits, nor of a decimal fraction such as 0.47913), so
 * that "10.99.2.3:47913", "port=47913" and "47913" are found while 1479130 or 0.47913 are not.
 * A number under the key `pid` is a process id, not data, and is not compared: process ids
 * could equal a port by chance.
 */

export interface Needles {
  /** Case-insensitive substrings. */
  strings: readonly string[]
  /** Whole numbers, compared as values (see the module comment). */
  numbers: readonly number[]
}

export interface Leak {
  /** What was searched: "proxy POST /v1/ingest #3", "table tally.host_metrics", ... */
  where: string
  /** The JSON path of the value within it. */
  path: string
  needle: string
  /** The value (cut to 200 characters). */
  value: string
}

const wholeNumber = (n: number) => new RegExp(`(?<!\\d)(?<!\\d\\.)${n}(?!\\d)(?!\\.\\d)`)

function stringLeaks(text: string, needles: Needles, where: string, path: string): Leak[] {
  const leaks: Leak[] = []
  const lower = text.toLowerCase()
  const value = text.length > 200 ? `${text.slice(0, 200)}...` : text
  for (const needle of needles.strings) {
    if (lower.includes(needle.toLowerCase())) leaks.push({ where, path, needle, value })
  }
  for (const n of needles.numbers) {
    if (wholeNumber(n).test(text)) leaks.push({ where, path, needle: String(n), value })
  }
  return leaks
}

/** Every needle in a structured value (parsed JSON): in its strings, numbers and keys. */
export function findLeaks(value: unknown, needles: Needles, where: string, path = '$'): Leak[] {
  if (typeof value === 'string') return stringLeaks(value, needles, where, path)
  if (typeof value === 'number' || typeof value === 'bigint') {
    const key = path.slice(path.lastIndexOf('.') + 1)
    if (key === 'pid') return []
    return needles.numbers
      .filter((n) => Number(value) === n)
      .map((n) => ({ where, path, needle: String(n), value: String(value) }))
  }
  if (Array.isArray(value)) {
    return value.flatMap((item, i) => findLeaks(item, needles, where, `${path}[${i}]`))
  }
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([key, item]) => [
      ...stringLeaks(key, needles, where, `${path} (key ${JSON.stringify(key)})`),
      ...findLeaks(item, needles, where, `${path}.${key}`),
    ])
  }
  return []
}

/** Every needle in plain text (a capture's decoded text, a log line that is not JSON). */
export function findLeaksInText(text: string, needles: Needles, where: string): Leak[] {
  return text.split('\n').flatMap((line, i) => stringLeaks(line, needles, where, `line ${i + 1}`))
}

/** Text that may be JSON: searched as structured values when it parses, as text otherwise. */
export function findLeaksInBody(text: string, needles: Needles, where: string): Leak[] {
  try {
    return findLeaks(JSON.parse(text) as unknown, needles, where)
  } catch {
    return findLeaksInText(text, needles, where)
  }
}

/** A log (one JSON object a line, as pino writes): each line searched as structured values. */
export function findLeaksInLog(log: string, needles: Needles, where: string): Leak[] {
  return log
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line, i) => findLeaksInBody(line, needles, `${where} line ${i + 1}`))
}

/**
 * Prometheus text exposition: comments and series (name and labels) searched as text, sample
 * values as numbers.
 */
export function findLeaksInPrometheus(text: string, needles: Needles, where: string): Leak[] {
  return text.split('\n').flatMap((line, i) => {
    const path = `line ${i + 1}`
    if (line.startsWith('#') || line.trim() === '') return stringLeaks(line, needles, where, path)
    const space = line.lastIndexOf(' ')
    return [
      ...stringLeaks(line.slice(0, space), needles, where, path),
      ...findLeaks(Number(line.slice(space + 1)), needles, where, `${path} value`),
    ]
  })
}
