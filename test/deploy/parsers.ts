/**
 * Small, strict parsers for the deployment files the tests check: XML (ClickHouse and Keeper
 * configuration) and systemd unit files. Strict means they refuse what the real readers would
 * refuse or misread: unbalanced or mismatched tags, bad entities, stray text outside sections.
 */

export interface XmlElement {
  name: string
  attributes: Record<string, string>
  children: XmlElement[]
  /** The element's own text (entities decoded, trimmed), without its children's. */
  text: string
}

export class ParseError extends Error {
  override name = 'ParseError'
}

const NAME = /^[A-Za-z_][\w.-]*/
const ENTITY = /^&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/

function decode(text: string, where: () => string): string {
  let out = ''
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string
    if (ch === '<') throw new ParseError(`unexpected < ${where()}`)
    if (ch !== '&') {
      out += ch
      continue
    }
    const entity = ENTITY.exec(text.slice(i))
    if (entity === null) throw new ParseError(`bad entity ${where()}`)
    const body = entity[0].slice(1, -1)
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }
    out +=
      named[body] ??
      String.fromCodePoint(
        body.startsWith('#x') ? Number.parseInt(body.slice(2), 16) : Number(body.slice(1)),
      )
    i += entity[0].length - 1
  }
  return out
}

/** Parses one XML document with a single root element. */
export function parseXml(source: string): XmlElement {
  let pos = 0
  const where = () => `at line ${source.slice(0, pos).split('\n').length}`
  const skipMisc = () => {
    for (;;) {
      const rest = source.slice(pos)
      const ws = /^\s+/.exec(rest)
      if (ws !== null) {
        pos += ws[0].length
        continue
      }
      if (rest.startsWith('<!--')) {
        const end = source.indexOf('-->', pos + 4)
        if (end < 0) throw new ParseError(`unterminated comment ${where()}`)
        if (source.slice(pos + 4, end).includes('--')) {
          throw new ParseError(`"--" inside a comment ${where()}`)
        }
        pos = end + 3
        continue
      }
      if (rest.startsWith('<?')) {
        const end = source.indexOf('?>', pos)
        if (end < 0) throw new ParseError(`unterminated processing instruction ${where()}`)
        pos = end + 2
        continue
      }
      return
    }
  }
  const element = (): XmlElement => {
    if (source[pos] !== '<') throw new ParseError(`expected an element ${where()}`)
    pos += 1
    const name = NAME.exec(source.slice(pos))?.[0]
    if (name === undefined) throw new ParseError(`bad element name ${where()}`)
    pos += name.length
    const attributes: Record<string, string> = {}
    for (;;) {
      const ws = /^\s*/.exec(source.slice(pos))?.[0] ?? ''
      pos += ws.length
      if (source.startsWith('/>', pos)) {
        pos += 2
        return { name, attributes, children: [], text: '' }
      }
      if (source[pos] === '>') {
        pos += 1
        break
      }
      if (ws.length === 0)
        throw new ParseError(`expected whitespace before an attribute ${where()}`)
      const attr = /^([A-Za-z_][\w.:-]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(source.slice(pos))
      if (attr === null) throw new ParseError(`bad attribute in <${name}> ${where()}`)
      const key = attr[1] as string
      if (key in attributes) throw new ParseError(`attribute ${key} twice in <${name}> ${where()}`)
      attributes[key] = decode(attr[3] ?? attr[4] ?? '', where)
      pos += attr[0].length
    }
    const children: XmlElement[] = []
    let text = ''
    for (;;) {
      if (pos >= source.length) throw new ParseError(`<${name}> is not closed`)
      if (source.startsWith('</', pos)) {
        const close = /^<\/([A-Za-z_][\w.-]*)\s*>/.exec(source.slice(pos))
        if (close === null) throw new ParseError(`bad closing tag ${where()}`)
        if (close[1] !== name) {
          throw new ParseError(`</${close[1]}> closes <${name}> ${where()}`)
        }
        pos += close[0].length
        return { name, attributes, children, text: text.trim() }
      }
      if (source.startsWith('<!--', pos) || source.startsWith('<?', pos)) {
        skipMisc()
        continue
      }
      if (source.startsWith('<![CDATA[', pos)) {
        const end = source.indexOf(']]>', pos)
        if (end < 0) throw new ParseError(`unterminated CDATA ${where()}`)
        text += source.slice(pos + 9, end)
        pos = end + 3
        continue
      }
      if (source[pos] === '<') {
        children.push(element())
        continue
      }
      const next = source.indexOf('<', pos)
      const end = next < 0 ? source.length : next
      text += decode(source.slice(pos, end), where)
      pos = end
    }
  }
  skipMisc()
  const root = element()
  skipMisc()
  if (pos !== source.length) throw new ParseError(`content after the root element ${where()}`)
  return root
}

/** The first child with this name, or undefined. */
export const child = (element: XmlElement, name: string): XmlElement | undefined =>
  element.children.find((c) => c.name === name)

/** The element at a path of child names, or an error naming the path. */
export function at(element: XmlElement, ...path: string[]): XmlElement {
  let node = element
  for (const name of path) {
    const next = child(node, name)
    if (next === undefined) throw new Error(`no <${path.join('>/<')}> in <${element.name}>`)
    node = next
  }
  return node
}

/** A systemd unit: section name to key to every value the key was given, in order. */
export type Unit = Map<string, Map<string, string[]>>

/** Parses a systemd unit file (systemd.syntax(7)): sections, Key=Value, comments, continuations. */
export function parseUnit(source: string): Unit {
  const unit: Unit = new Map()
  let section: Map<string, string[]> | undefined
  const lines = source.split('\n')
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] as string).trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i += 1
      line = `${line.slice(0, -1)} ${(lines[i] as string).trim()}`
    }
    const header = /^\[([A-Za-z][A-Za-z0-9-]*)\]$/.exec(line)
    if (header !== null) {
      const name = header[1] as string
      if (unit.has(name)) throw new ParseError(`section [${name}] twice, line ${i + 1}`)
      section = new Map()
      unit.set(name, section)
      continue
    }
    const pair = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line)
    if (pair === null) throw new ParseError(`not a Key=Value line: ${line} (line ${i + 1})`)
    if (section === undefined) throw new ParseError(`${pair[1]} outside a section, line ${i + 1}`)
    const key = pair[1] as string
    section.set(key, [...(section.get(key) ?? []), pair[2] as string])
  }
  return unit
}

/** The last value of a key (what systemd uses for single-valued settings), or undefined. */
export const unitValue = (unit: Unit, section: string, key: string): string | undefined =>
  unit.get(section)?.get(key)?.at(-1)
