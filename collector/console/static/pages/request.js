// The requester forms, one per kind of case: filled with the bulletin's explanations beside each
// field, checked against the API's own JSON Schema before sending, and sent to the API, which
// checks again and has the last word.
import { HELP } from '../fields.js'
import { requestSchema, validate } from '../schema.js'
import { alertText, announce, field, h, showProblems } from '../ui.js'

const CATEGORIES = ['flows', 'dns', 'web', 'packets']

const WRITTEN_REQUEST_FIELDS = [
  'data_required',
  'categories',
  'staff_member',
  'supervisor',
  'receiving_official',
  'requesting_office',
  'justification',
  'subjects',
  'window',
]

/** Per kind: the endpoint, the schema's name in the OpenAPI document, and its fields in order. */
const KINDS = {
  written: {
    title: 'Written request (bulletin 8.4a)',
    intro:
      'A request for a staff member’s network records. Nothing is captured until it is approved after OIOS’s consultation and the staff member has been given notice.',
    endpoint: '/v1/cases',
    schema: 'CaseRequest',
    fields: WRITTEN_REQUEST_FIELDS,
  },
  emergency: {
    title: 'Emergency: record a verbal request (8.4b)',
    intro:
      'Recorded by an approver for the person who asked verbally. Someone else confirms it, a third person approves it, and the written request must follow in time.',
    endpoint: '/v1/cases/emergency',
    schema: 'EmergencyRequest',
    // The verbal request is the written one's content, with who asked and when.
    fields: ['verbal_requester', 'received_at', ...WRITTEN_REQUEST_FIELDS],
  },
  technical: {
    title: 'Technical case on a disruption (8.2)',
    intro:
      'Opened by the ITSD lead without approval: flows only, at most 72 hours, registered and notified.',
    endpoint: '/v1/cases/technical',
    schema: 'TechnicalOpening',
    fields: ['description', 'subjects', 'investigator', 'hours', 'notify'],
  },
  oios: {
    title: 'OIOS case (section 9)',
    intro:
      'Opened by an OIOS investigator: no approval and no notice; the case and its register are invisible to ITSD.',
    endpoint: '/v1/cases/oios',
    schema: 'OiosOpening',
    fields: ['description', 'categories', 'subjects', 'window', 'receiving_official'],
  },
}

const LABELS = {
  data_required: 'Data required',
  receiving_official: 'Receiving official (user id)',
  requesting_office: 'Requesting office',
  justification: 'Justification',
  verbal_requester: 'Verbal requester (user id)',
  received_at: 'Received at',
  description: 'Description',
  investigator: 'Investigator (user id)',
  hours: 'Hours',
}

const localNow = (plusHours = 0) => {
  const d = new Date(Date.now() + plusHours * 3600_000)
  d.setSeconds(0, 0)
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16)
}
const isoOf = (local) => (local === '' ? '' : new Date(local).toISOString())
const text = (id, path, label, help, opts = {}) =>
  field({
    id,
    path,
    label,
    help,
    input: h(opts.multiline ? 'textarea' : 'input', {
      type: opts.multiline ? undefined : (opts.type ?? 'text'),
      name: path,
      required: opts.required ?? true,
      value: opts.value,
    }),
  })

function person(key, legend, help) {
  return h(
    'fieldset',
    { 'data-group': key },
    h('legend', {}, legend),
    h('p', { class: 'help' }, help),
    text(`${key}-name`, `${key}.name`, 'Name', undefined),
    text(`${key}-email`, `${key}.email`, 'E-mail (optional)', undefined, {
      type: 'email',
      required: false,
    }),
  )
}

function categories() {
  const boxes = CATEGORIES.map((c) =>
    h(
      'label',
      {},
      h('input', {
        type: 'checkbox',
        name: 'categories',
        value: c,
        'data-path': 'categories',
        id: `cat-${c}`,
      }),
      ` ${c}`,
    ),
  )
  return h(
    'fieldset',
    { class: 'checks', 'aria-describedby': 'categories-help' },
    h('legend', {}, 'Categories'),
    h('p', { class: 'help', id: 'categories-help' }, HELP.categories),
    ...boxes,
    h('p', { class: 'field-error', id: 'cat-flows-error', hidden: true }),
  )
}

function subjectRow(index) {
  return h(
    'div',
    { class: 'subject', 'data-subject': index },
    text(
      `subject-${index}-agent`,
      `subjects.${index}.agent_id`,
      `Subject ${index + 1}: agent id`,
      HELP.agent_id,
    ),
    text(
      `subject-${index}-addresses`,
      `subjects.${index}.addresses`,
      `Subject ${index + 1}: addresses`,
      HELP.addresses,
      { required: false },
    ),
  )
}

function subjects() {
  const rows = h('div', { class: 'subjects' }, subjectRow(0))
  const add = h('button', { type: 'button' }, 'Add another subject')
  add.addEventListener('click', () => {
    const row = subjectRow(rows.children.length)
    rows.append(row)
    row.querySelector('input').focus()
  })
  return h(
    'fieldset',
    {},
    h('legend', {}, 'Subjects'),
    h('p', { class: 'help' }, HELP.subjects),
    rows,
    add,
  )
}

function windowFields() {
  return h(
    'fieldset',
    {},
    h('legend', {}, 'Window'),
    field({
      id: 'window-start',
      path: 'window.start',
      label: 'Start',
      help: HELP.window_start,
      input: h('input', { type: 'datetime-local', required: true, value: localNow() }),
    }),
    field({
      id: 'window-end',
      path: 'window.end',
      label: 'End',
      help: HELP.window_end,
      input: h('input', { type: 'datetime-local', required: true, value: localNow(2) }),
    }),
  )
}

function fieldFor(name) {
  switch (name) {
    case 'categories':
      return categories()
    case 'staff_member':
      return person('staff_member', 'Staff member', HELP.staff_member)
    case 'supervisor':
      return person('supervisor', 'Supervisor', HELP.supervisor)
    case 'notify':
      return person('notify', 'Notify', HELP.notify)
    case 'subjects':
      return subjects()
    case 'window':
      return windowFields()
    case 'received_at':
      return field({
        id: name,
        path: name,
        label: LABELS[name],
        help: HELP[name],
        input: h('input', { type: 'datetime-local', required: true, value: localNow() }),
      })
    case 'hours':
      return field({
        id: name,
        path: name,
        label: LABELS[name],
        help: HELP[name],
        input: h('input', {
          type: 'number',
          min: '1',
          max: '72',
          step: '1',
          required: true,
          value: '24',
        }),
      })
    case 'data_required':
    case 'justification':
    case 'description':
      return text(name, name, LABELS[name], HELP[name], { multiline: true })
    default:
      return text(name, name, LABELS[name] ?? name, HELP[name])
  }
}

const value = (form, id) => form.querySelector(`#${id}`)?.value.trim() ?? ''
const personValue = (form, key) => {
  const email = value(form, `${key}-email`)
  return { name: value(form, `${key}-name`), ...(email ? { email } : {}) }
}

/** The request body the form describes, shaped as the API expects it. */
function bodyOf(form, kind) {
  const body = {}
  for (const name of KINDS[kind].fields) {
    switch (name) {
      case 'categories':
        body.categories = [...form.querySelectorAll('input[name=categories]:checked')].map(
          (i) => i.value,
        )
        break
      case 'staff_member':
      case 'supervisor':
        body[name] = personValue(form, name)
        break
      case 'notify':
        body.notify = [personValue(form, 'notify')]
        break
      case 'subjects':
        body.subjects = [...form.querySelectorAll('[data-subject]')].map((row, i) => {
          const addresses = value(row, `subject-${i}-addresses`)
            .split(/[\s,]+/)
            .filter(Boolean)
          return {
            agent_id: value(row, `subject-${i}-agent`),
            ...(addresses.length ? { addresses } : {}),
          }
        })
        break
      case 'window':
        body.window = {
          start: isoOf(value(form, 'window-start')),
          end: isoOf(value(form, 'window-end')),
        }
        break
      case 'received_at':
        body.received_at = isoOf(value(form, 'received_at'))
        break
      case 'hours':
        body.hours = Number(value(form, 'hours'))
        break
      default:
        body[name] = value(form, name)
    }
  }
  return body
}

export async function render(view, { params, api, problemText }) {
  const kind = view.ownerDocument.location.hash.split('/')[2]
  const spec = KINDS[kind]
  if (spec === undefined) {
    view.append(h('h1', {}, 'No such request form'))
    return
  }
  const schema = await requestSchema(spec.schema)
  const result = h('div', { id: 'result', 'aria-live': 'polite' })
  const form = h(
    'form',
    { novalidate: true, 'aria-labelledby': 'form-title' },
    ...spec.fields.map(fieldFor),
    h('button', { type: 'submit' }, 'Check and send'),
  )
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    alertText('')
    result.replaceChildren()
    const body = bodyOf(form, kind)
    const problems = validate(schema, body)
    if (problems.length > 0) {
      const unplaced = showProblems(form, problems)
      alertText(
        `The request has ${problems.length} problem${problems.length > 1 ? 's' : ''}; see the marked fields.${unplaced.length ? ` ${unplaced.join('; ')}` : ''}`,
      )
      return
    }
    showProblems(form, [])
    const answer = await api(spec.endpoint, { method: 'POST', body })
    if (!answer.ok) {
      const unplaced = showProblems(
        form,
        (answer.body?.issues ?? []).map((i) => ({ path: i.path, message: i.message })),
      )
      alertText(
        `The collector refused the request: ${problemText(answer)}${unplaced.length ? '' : ''}`,
      )
      return
    }
    const id = answer.body.case_id
    result.replaceChildren(
      h(
        'p',
        { class: 'ok' },
        `Case ${id} is on record, state ${answer.body.state}. `,
        h('a', { href: `#/case/${encodeURIComponent(id)}` }, 'Open the case'),
      ),
    )
    announce(`Case ${id} filed; state ${answer.body.state}.`)
    form.reset()
  })
  view.append(h('h1', { id: 'form-title' }, spec.title), h('p', {}, spec.intro), form, result)
  void params
}
