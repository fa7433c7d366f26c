// The request bodies' JSON Schemas, taken from the collector's OpenAPI document (the same zod
// schemas the API validates with), and a small validator for the subset zod emits. The page
// validates for its messages only: the collector validates again.
let documentPromise

export function requestSchema(name) {
  documentPromise ??= fetch('/v1/openapi.json', { cache: 'no-store' }).then((r) => r.json())
  return documentPromise.then((doc) => {
    const schema = doc.components?.schemas?.[name]
    if (schema === undefined) throw new Error(`the OpenAPI document has no schema ${name}`)
    return schema
  })
}

const FORMAT_TEXT = {
  email: 'an e-mail address',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  'date-time': 'a date and time',
}

/** The problems of `value` against `schema`: [{ path: 'a.0.b', message }]. */
export function validate(schema, value, path = []) {
  const at = path.join('.')
  const problems = []
  const fail = (message) => problems.push({ path: at, message })
  if (schema.anyOf) {
    const fits = schema.anyOf.some((s) => validate(s, value, path).length === 0)
    if (!fits)
      fail(`${schema.anyOf.map((s) => FORMAT_TEXT[s.format] ?? s.type).join(' or ')} is expected`)
    return problems
  }
  switch (schema.type) {
    case 'object':
      return validateObject(schema, value, path)
    case 'array':
      return validateArray(schema, value, path)
    case 'string':
      return validateString(schema, value, at)
    case 'number':
    case 'integer':
      return validateNumber(schema, value, at)
    default:
      if (schema.const !== undefined && value !== schema.const) fail(`must be ${schema.const}`)
      return problems
  }
}

function validateString(schema, value, at) {
  if (typeof value !== 'string') return [{ path: at, message: 'text is expected' }]
  const problem = stringProblem(schema, value)
  return problem === undefined ? [] : [{ path: at, message: problem }]
}

/** The first problem of a string: its length, its enum, then its pattern. */
function stringProblem(schema, value) {
  if (schema.minLength !== undefined && value.length < schema.minLength)
    return schema.minLength === 1 ? 'required' : `at least ${schema.minLength} characters`
  if (schema.maxLength !== undefined && value.length > schema.maxLength)
    return `at most ${schema.maxLength} characters (now ${value.length})`
  if (schema.enum && !schema.enum.includes(value)) return `one of ${schema.enum.join(', ')}`
  if (schema.pattern && !new RegExp(schema.pattern).test(value))
    return FORMAT_TEXT[schema.format]
      ? `must be ${FORMAT_TEXT[schema.format]}`
      : `does not have the expected form`
  return undefined
}

function validateNumber(schema, value, at) {
  if (typeof value !== 'number' || Number.isNaN(value))
    return [{ path: at, message: 'a number is expected' }]
  const problems = []
  const fail = (message) => problems.push({ path: at, message })
  if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum)
    fail(`more than ${schema.exclusiveMinimum}`)
  if (schema.minimum !== undefined && value < schema.minimum) fail(`at least ${schema.minimum}`)
  if (schema.maximum !== undefined && value > schema.maximum) fail(`at most ${schema.maximum}`)
  return problems
}

function validateObject(schema, value, path) {
  const at = path.join('.')
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return [{ path: at, message: 'an object is expected' }]
  const problems = []
  for (const key of schema.required ?? []) {
    if (value[key] === undefined)
      problems.push({ path: [...path, key].join('.'), message: 'required' })
  }
  for (const [key, v] of Object.entries(value)) {
    const property = schema.properties?.[key]
    if (property === undefined) {
      if (schema.additionalProperties === false)
        problems.push({ path: [...path, key].join('.'), message: 'not a field of this request' })
      continue
    }
    if (v !== undefined) problems.push(...validate(property, v, [...path, key]))
  }
  return problems
}

function validateArray(schema, value, path) {
  const at = path.join('.')
  if (!Array.isArray(value)) return [{ path: at, message: 'a list is expected' }]
  const problems = []
  if (schema.minItems !== undefined && value.length < schema.minItems)
    problems.push({
      path: at,
      message: schema.minItems === 1 ? 'choose at least one' : `at least ${schema.minItems}`,
    })
  if (schema.maxItems !== undefined && value.length > schema.maxItems)
    problems.push({ path: at, message: `at most ${schema.maxItems}` })
  if (schema.items) {
    for (const [i, v] of value.entries()) problems.push(...validate(schema.items, v, [...path, i]))
  }
  return problems
}
