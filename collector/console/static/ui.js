// Small DOM helpers. Text always goes in as text (never as HTML), so what the API returns cannot
// become markup.

/** h('p', { class: 'help', id: 'x' }, 'text', child, ...): an element. */
export function h(tag, attributes = {}, ...children) {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false || value === null) continue
    if (name.startsWith('on') && typeof value === 'function')
      el.addEventListener(name.slice(2), value)
    else if (value === true) el.setAttribute(name, '')
    else el.setAttribute(name, String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return el
}

/** Says something politely to screen readers (and shows it): results, page changes. */
export function announce(text) {
  const status = document.getElementById('status')
  status.textContent = ''
  // A fresh text node after a tick, so that repeating the same sentence is read again.
  setTimeout(() => {
    status.textContent = text
  }, 30)
}

/** Says something that needs attention now (a refusal, an error). Empty text clears it. */
export function alertText(text) {
  document.getElementById('alert').textContent = text
}

/** A labelled field: label, input, help (described-by) and a slot for its error message. */
export function field({ id, label, help, input, path }) {
  input.id = id
  if (path !== undefined) input.dataset.path = path
  const helpId = `${id}-help`
  const errorId = `${id}-error`
  input.setAttribute('aria-describedby', help ? `${helpId} ${errorId}` : errorId)
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    input,
    help ? h('p', { class: 'help', id: helpId }, help) : null,
    h('p', { class: 'field-error', id: errorId, hidden: true }),
  )
}

/** Shows the problems next to their fields (matched by data-path) and focuses the first. */
export function showProblems(form, problems) {
  for (const el of form.querySelectorAll('.field-error')) {
    el.textContent = ''
    el.hidden = true
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid')
    el.classList.remove('invalid')
  }
  let first
  const unplaced = []
  for (const problem of problems) {
    const input = bestField(form, problem.path)
    if (input === undefined) {
      unplaced.push(`${problem.path}: ${problem.message}`)
      continue
    }
    input.setAttribute('aria-invalid', 'true')
    input.classList.add('invalid')
    const error = document.getElementById(`${input.id}-error`)
    if (error) {
      error.textContent = error.textContent
        ? `${error.textContent}; ${problem.message}`
        : problem.message
      error.hidden = false
    }
    first ??= input
  }
  first?.focus()
  return unplaced
}

/** The input whose data-path is the problem's path or the longest prefix of it. */
function bestField(form, path) {
  let best
  for (const input of form.querySelectorAll('[data-path]')) {
    const p = input.dataset.path
    if (
      (path === p || path.startsWith(`${p}.`)) &&
      (best === undefined || p.length > best.dataset.path.length)
    )
      best = input
  }
  return best
}

export function when(iso) {
  if (!iso) return ''
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString()
}
