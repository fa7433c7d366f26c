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
  return new XmlParser(source).document()
}

/** A cursor over the source; each method reads one construct from `pos` on. */
class XmlParser {
  readonly #source: string
  #pos = 0

  constructor(source: string) {
    this.#source = source
  }

  readonly #where = () => `at line ${this.#source.slice(0, this.#pos).split('\n').length}`

  document(): XmlElement {
    this.#skipMisc()
    const root = this.#element()
    this.#skipMisc()
    if (this.#pos !== this.#source.length) {
      throw new ParseError(`content after the root element ${this.#where()}`)
    }
    return root
  }

  /** Whitespace, comments and processing instructions. */
  #skipMisc(): void {
    const source = this.#source
    for (;;) {
      const rest = source.slice(this.#pos)
      const ws = /^\s+/.exec(rest)
      if (ws !== null) {
        this.#pos += ws[0].length
        continue
      }
      if (rest.startsWith('<!--')) {
        const end = source.indexOf('-->', this.#pos + 4)
        if (end < 0) throw new ParseError(`unterminated comment ${this.#where()}`)
        if (source.slice(this.#pos + 4, end).includes('--')) {
          throw new ParseError(`"--" inside a comment ${this.#where()}`)
        }
        this.#pos = end + 3
        continue
      }
      if (rest.startsWith('<?')) {
        const end = source.indexOf('?>', this.#pos)
        if (end < 0) throw new ParseError(`unterminated processing instruction ${this.#where()}`)
        this.#pos = end + 2
        continue
      }
      return
    }
  }

  #element(): XmlElement {
    const tag = this.#startTag()
    if (tag.empty) return { name: tag.name, attributes: tag.attributes, children: [], text: '' }
    return { name: tag.name, attributes: tag.attributes, ...this.#content(tag.name) }
  }

  /** `<name attr="v" ...>` or `<name ... />` (empty). */
  #startTag(): { name: string; attributes: Record<string, string>; empty: boolean } {
    const source = this.#source
    if (source[this.#pos] !== '<') throw new ParseError(`expected an element ${this.#where()}`)
    this.#pos += 1
    const name = NAME.exec(source.slice(this.#pos))?.[0]
    if (name === undefined) throw new ParseError(`bad element name ${this.#where()}`)
    this.#pos += name.length
    const attributes: Record<string, string> = {}
    for (;;) {
      const ws = /^\s*/.exec(source.slice(this.#pos))?.[0] ?? ''
      this.#pos += ws.length
      if (source.startsWith('/>', this.#pos)) {
        this.#pos += 2
        return { name, attributes, empty: true }
      }
      if (source[this.#pos] === '>') {
        this.#pos += 1
        return { name, attributes, empty: false }
      }
      if (ws.length === 0) {
        throw new ParseError(`expected whitespace before an attribute ${this.#where()}`)
      }
      this.#attribute(name, attributes)
    }
  }

  #attribute(element: string, attributes: Record<string, string>): void {
    const attr = /^([A-Za-z_][\w.:-]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(
      this.#source.slice(this.#pos),
    )
    if (attr === null) throw new ParseError(`bad attribute in <${element}> ${this.#where()}`)
    const key = attr[1] as string
    if (key in attributes) {
      throw new ParseError(`attribute ${key} twice in <${element}> ${this.#where()}`)
    }
    attributes[key] = decode(attr[3] ?? attr[4] ?? '', this.#where)
    this.#pos += attr[0].length
  }

  /** Children and text up to and including `</name>`. */
  #content(name: string): { children: XmlElement[]; text: string } {
    const source = this.#source
    const children: XmlElement[] = []
    let text = ''
    for (;;) {
      if (this.#pos >= source.length) throw new ParseError(`<${name}> is not closed`)
      if (source.startsWith('</', this.#pos)) {
        this.#endTag(name)
        return { children, text: text.trim() }
      }
      if (source.startsWith('<!--', this.#pos) || source.startsWith('<?', this.#pos)) {
        this.#skipMisc()
      } else if (source.startsWith('<![CDATA[', this.#pos)) {
        const end = source.indexOf(']]>', this.#pos)
        if (end < 0) throw new ParseError(`unterminated CDATA ${this.#where()}`)
        text += source.slice(this.#pos + 9, end)
        this.#pos = end + 3
      } else if (source[this.#pos] === '<') {
        children.push(this.#element())
      } else {
        const next = source.indexOf('<', this.#pos)
        const end = next < 0 ? source.length : next
        text += decode(source.slice(this.#pos, end), this.#where)
        this.#pos = end
      }
    }
  }

  #endTag(name: string): void {
    const close = /^<\/([A-Za-z_][\w.-]*)\s*>/.exec(this.#source.slice(this.#pos))
    if (close === null) throw new ParseError(`bad closing tag ${this.#where()}`)
    if (close[1] !== name) {
      throw new ParseError(`</${close[1]}> closes <${name}> ${this.#where()}`)
    }
    this.#pos += close[0].length
  }
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
