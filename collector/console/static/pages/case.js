// One case: what was asked, its history (the case's own record and, for those who may read it,
// its register entries), and the steps this person may take on it now. Before each step the page
// asks the collector whether its rules would refuse it (separation of duties, state, conditions)
// and says why; the collector still decides when the step is sent.
import { HELP } from '../fields.js'
import { requestSchema, validate } from '../schema.js'
import { alertText, announce, field, h, showProblems, when } from '../ui.js'

const ACTIONS = [
  {
    step: 'consult',
    title: 'Record OIOS’s consultation (8.4d)',
    roles: ['oios_chief'],
    states: ['requested'],
    endpoint: 'consultation',
    schema: 'Consultation',
    submit: 'Record the consultation',
    fields: [
      {
        name: 'summary',
        label: 'Summary of the consultation',
        multiline: true,
        help: 'What OIOS was told and answered; approval is refused until a consultation is on record, except in an emergency.',
      },
    ],
  },
  {
    step: 'confirm_emergency',
    title: 'Confirm the emergency (8.4b)',
    roles: ['approver', 'oios_chief'],
    states: ['requested'],
    emergency: true,
    endpoint: 'emergency-confirmation',
    schema: 'EmergencyConfirmation',
    submit: 'Confirm',
    fields: [
      {
        name: 'statement',
        label: 'Statement',
        multiline: true,
        help: 'How the emergency was confirmed: with whom, on what grounds. Not by who recorded it or asked for it.',
      },
    ],
  },
  {
    step: 'approve',
    title: 'Approve (8.4c)',
    roles: ['approver'],
    states: ['requested'],
    endpoint: 'approval',
    schema: 'Approval',
    submit: 'Approve',
    fields: [
      {
        name: 'investigator',
        label: 'Investigator (user id)',
        help: HELP.investigator,
        preflight: true,
      },
      {
        name: 'until',
        label: 'Approved until (optional)',
        type: 'datetime-local',
        optional: true,
        help: 'An earlier end than requested; the approved window lies inside the requested one.',
      },
      { name: 'comment', label: 'Comment (optional)', multiline: true, optional: true },
    ],
  },
  {
    step: 'deny',
    title: 'Deny',
    roles: ['approver'],
    states: ['requested'],
    endpoint: 'denial',
    schema: 'Denial',
    submit: 'Deny',
    fields: [
      {
        name: 'reason',
        label: 'Reason',
        multiline: true,
        help: 'Why the request is denied; it stands on the register.',
      },
    ],
  },
  {
    step: 'extend',
    title: 'Extend (8.5f)',
    roles: ['approver'],
    states: ['active'],
    endpoint: 'extension',
    schema: 'Extension',
    submit: 'Extend',
    fields: [
      {
        name: 'until',
        label: 'New end',
        type: 'datetime-local',
        help: 'A grant lasts only as long as necessary: an extension is a new approval.',
      },
      { name: 'justification', label: 'Justification', multiline: true },
    ],
  },
  {
    step: 'notice',
    title: 'Record the notice to the staff member (8.5a)',
    roles: ['approver'],
    states: ['approved'],
    endpoint: 'notice',
    schema: 'Notice',
    submit: 'Record the notice',
    fields: [
      {
        name: 'method',
        label: 'How the notice was given',
        type: 'radio',
        options: [
          ['in_person', 'In person, before a witness'],
          ['outbox', 'Through the outbox (webhook or mail; on record once delivered)'],
        ],
        help: 'The staff member and the supervisor are told before any access (8.5a); only then are grants issued. Not by the requester or the investigator.',
      },
      {
        name: 'given_by',
        label: 'Given by',
        inPerson: true,
        help: 'Who told the staff member and the supervisor.',
      },
      {
        name: 'witness',
        label: 'Witness',
        inPerson: true,
        help: 'Someone other than who gave it, present when it was given: the notice’s evidence.',
      },
      {
        name: 'given_at',
        label: 'Given at',
        type: 'datetime-local',
        inPerson: true,
        now: true,
        help: 'When it was given: not in the future, not before the approval.',
      },
      {
        name: 'to',
        label: 'Given to',
        type: 'checks',
        inPerson: true,
        options: [
          ['staff_member', 'the staff member'],
          ['supervisor', 'the supervisor'],
        ],
        help: 'Who was told, in person.',
      },
    ],
  },
  {
    step: 'close',
    title: 'Close the case (8.5f)',
    may: mayClose,
    states: ['requested', 'approved', 'active'],
    endpoint: 'closing',
    schema: 'Closing',
    submit: 'Close the case',
    fields: [
      {
        name: 'outcome',
        label: 'Outcome',
        multiline: true,
        help: 'What came of the case; the staff member is told through the outbox. Closing ends every grant at once and purges the case’s tier I data, export bundles not yet received included: deliver before closing.',
      },
    ],
  },
]

/**
 * Who may close (docs/cases.md, "Who may close a case"): the page offers the step to them; the
 * preflight and the collector have the exact rule.
 */
function mayClose(doc, user) {
  const has = (role) => user.roles.includes(role)
  if (doc.kind === 'oios') return has('oios_investigator') || has('oios_chief')
  return (
    has('approver') ||
    user.user_id === doc.requester ||
    user.user_id === doc.investigator ||
    (doc.kind === 'technical' && has('itsd_lead'))
  )
}

const STATE_TEXT = {
  requested: 'filed; nothing may happen yet',
  approved: 'approved; waiting for the notice to the staff member (8.5a)',
  active: 'notice on record and grants issued: capture and drill-down inside the window',
  denied: 'denied',
  suspended: 'suspended: the written request did not follow the emergency in time',
  closed: 'closed (8.5f)',
  expired: 'the window ended',
  purged: 'tier I data deleted (8.5e)',
}

export async function render(view, ctx) {
  const [id] = ctx.params
  const answer = await ctx.api(`/v1/cases/${encodeURIComponent(id ?? '')}`)
  if (!answer.ok) {
    view.append(
      h('h1', {}, `Case ${id ?? ''}`),
      h('p', { class: 'warning', role: 'alert' }, ctx.problemText(answer)),
    )
    return
  }
  const doc = answer.body
  view.append(
    h('h1', {}, `Case ${doc.case_id}`),
    details(doc),
    h('h2', {}, 'History'),
    history(doc),
  )
  view.append(await registerEntries(doc, ctx))
  const onward = onwardLinks(doc, ctx.user)
  if (onward !== undefined) view.append(onward)
  const actions = ACTIONS.filter(
    (a) =>
      (a.may ? a.may(doc, ctx.user) : a.roles.some((r) => ctx.user.roles.includes(r))) &&
      a.states.includes(doc.state) &&
      (!a.emergency || doc.emergency),
  )
  if (actions.length > 0) view.append(h('h2', {}, 'Steps you may take'))
  for (const action of actions) view.append(await actionSection(doc, action, view, ctx))
}

/** The investigator's and the receiving official's own pages for this case. */
function onwardLinks(doc, user) {
  const links = []
  const id = encodeURIComponent(doc.case_id)
  if (doc.investigator === user.user_id && doc.state === 'active')
    links.push(
      h('li', {}, h('a', { href: `#/investigate/${id}` }, 'Investigate: drill-down and export')),
    )
  if (doc.receiving_official === user.user_id)
    links.push(
      h(
        'li',
        {},
        h('a', { href: `#/receive/${id}` }, 'Receive an export bundle: download, check, receipt'),
      ),
    )
  if (links.length === 0) return undefined
  return h(
    'section',
    { 'aria-labelledby': 'onward-title' },
    h('h2', { id: 'onward-title' }, 'Your part in this case'),
    h('ul', {}, links),
  )
}

function details(doc) {
  const row = (term, value) =>
    value === undefined || value === '' ? [] : [h('dt', {}, term), h('dd', {}, value)]
  const person = (p) => (p ? `${p.name}${p.email ? ` <${p.email}>` : ''}` : undefined)
  return h(
    'dl',
    { class: 'case' },
    row('Kind', doc.emergency ? `${doc.kind} (emergency)` : doc.kind),
    row('State', `${doc.state}: ${STATE_TEXT[doc.state] ?? ''}`),
    row('Requester', doc.requester),
    row('Requesting office', doc.requesting_office),
    row('Data required', doc.description),
    row('Categories', doc.categories?.join(', ')),
    row('Staff member', person(doc.staff_member)),
    row('Supervisor', person(doc.supervisor)),
    row('Receiving official', doc.receiving_official),
    row('Justification', doc.justification),
    row(
      'Subjects',
      doc.subjects
        ?.map((s) => `${s.agent_id}${s.addresses?.length ? ` (${s.addresses.join(', ')})` : ''}`)
        .join('; '),
    ),
    row('Window', `${when(doc.window?.start)} – ${when(doc.window?.end)}`),
    row('Investigator', doc.investigator),
  )
}

function history(doc) {
  const events = [
    [
      doc.created_at,
      doc.emergency
        ? `Verbal request recorded by ${doc.recorded_by} for ${doc.requester}`
        : `Filed by ${doc.requester}`,
    ],
  ]
  if (doc.written_request_at) events.push([doc.written_request_at, 'Written request filed'])
  if (doc.consultation)
    events.push([
      doc.consultation.at,
      `OIOS consulted by ${doc.consultation.by}: ${doc.consultation.summary}`,
    ])
  if (doc.emergency_confirmation)
    events.push([
      doc.emergency_confirmation.at,
      `Emergency confirmed by ${doc.emergency_confirmation.by}: ${doc.emergency_confirmation.statement}`,
    ])
  for (const a of doc.approvals ?? [])
    events.push([
      a.at,
      `${a.kind === 'extension' ? 'Extended' : 'Approved'} by ${a.by} until ${when(a.until)}${a.comment ? `: ${a.comment}` : ''}`,
    ])
  if (doc.denial) events.push([doc.denial.at, `Denied by ${doc.denial.by}: ${doc.denial.reason}`])
  if (doc.notice)
    events.push([doc.notice.at, `Notice (${doc.notice.method}) recorded by ${doc.notice.by}`])
  if (doc.closing)
    events.push([doc.closing.at, `Closed by ${doc.closing.by}: ${doc.closing.outcome}`])
  if (doc.purged_at) events.push([doc.purged_at, 'Tier I data purged'])
  events.sort((a, b) => String(a[0]).localeCompare(String(b[0])))
  return h(
    'ol',
    { class: 'history' },
    events.map(([at, what]) => h('li', {}, h('time', { datetime: at }, when(at)), ' ', what)),
  )
}

async function registerEntries(doc, { api }) {
  const register = doc.kind === 'oios' ? 'oios' : 'itsd'
  const answer = await api(
    `/v1/register/${register}/entries?case_id=${encodeURIComponent(doc.case_id)}&limit=200`,
  )
  const section = h(
    'section',
    { 'aria-labelledby': 'register-title' },
    h('h2', { id: 'register-title' }, 'Register entries'),
  )
  if (!answer.ok) {
    section.append(
      h('p', {}, `The register is not shown: ${answer.body?.message ?? answer.status}.`),
    )
    return section
  }
  const entries = answer.body.entries ?? []
  section.append(
    h(
      'table',
      {},
      h(
        'caption',
        {},
        `${entries.length} entries of the ${register.toUpperCase()} register for this case`,
      ),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['#', 'When', 'What', 'Who'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        {},
        entries.map((e) =>
          h(
            'tr',
            {},
            h('td', {}, e.seq),
            h('td', {}, when(e.ts)),
            h('td', {}, e.kind),
            h('td', {}, e.actor),
          ),
        ),
      ),
    ),
  )
  return section
}

/** An instant as a datetime-local value in this browser's zone, to the minute (16) or second (19). */
const localValue = (iso, length = 16) => {
  const d = new Date(iso)
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, length)
}

/** A field of a step: its element, its inputs and how to read its value. */
function actionField(prefix, f, doc) {
  const id = `${prefix}-${f.name}`
  if (f.type === 'radio' || f.type === 'checks') return choiceField(id, f)
  const input = f.multiline
    ? h('textarea', { name: f.name, required: !f.optional })
    : h('input', {
        type: f.type ?? 'text',
        name: f.name,
        required: !f.optional,
        step: f.now ? '1' : undefined,
        value: initialValue(f, doc),
      })
  const read = () => {
    const v = input.value.trim()
    return f.type === 'datetime-local' && v !== '' ? new Date(v).toISOString() : v
  }
  return {
    spec: f,
    input,
    read,
    el: field({ id, path: f.name, label: f.label, help: f.help, input }),
  }
}

function initialValue(f, doc) {
  if (f.type !== 'datetime-local') return undefined
  // To the second, rounded up: a time shown as "now" must not fall before a step just taken
  // (the notice follows the approval); the collector allows a minute of clock skew ahead.
  if (f.now) return localValue(new Date(Math.ceil(Date.now() / 1000) * 1000).toISOString(), 19)
  return f.optional ? undefined : localValue(doc.window.end)
}

/** Radio buttons (one value) or checkboxes (a list) in a fieldset, its legend the label. */
function choiceField(id, f) {
  const type = f.type === 'radio' ? 'radio' : 'checkbox'
  const helpId = `${id}-help`
  // showProblems finds a field's error slot by its input's id: the first box's.
  const errorId = `${id}-${f.options[0][0]}-error`
  const boxes = f.options.map(([value], i) =>
    h('input', {
      type,
      id: `${id}-${value}`,
      name: id,
      value,
      checked: type === 'checkbox' || i === 0,
      'data-path': i === 0 ? f.name : undefined,
      'aria-describedby': `${helpId} ${errorId}`,
    }),
  )
  const el = h(
    'fieldset',
    { class: 'checks' },
    h('legend', {}, f.label),
    boxes.map((box, i) => h('span', {}, box, h('label', { for: box.id }, f.options[i][1]))),
    h('p', { class: 'help', id: helpId }, f.help),
    h('p', { class: 'field-error', id: errorId, hidden: true }),
  )
  const read = () => {
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value)
    return type === 'radio' ? chosen[0] : chosen
  }
  return { spec: f, input: boxes[0], boxes, read, el }
}

/** The schema a body is checked against: the branch of a union its `method` names. */
function branchOf(schema, value) {
  const branches = schema.oneOf ?? schema.anyOf
  if (branches === undefined) return schema
  return branches.find((b) => b.properties?.method?.const === value.method) ?? schema
}

async function actionSection(doc, action, view, ctx) {
  const prefix = `act-${action.step}`
  const note = h(
    'p',
    { id: `${prefix}-preflight`, class: 'help', role: 'note' },
    'Checking whether this step is possible…',
  )
  const inputs = action.fields.map((f) => actionField(prefix, f, doc))
  const method = inputs.find((i) => i.spec.name === 'method')
  // In person: who gave it, the witness, when, to whom. Through the outbox: nothing more.
  const inPerson = () => method === undefined || method.read() === 'in_person'
  const showInPerson = () => {
    for (const i of inputs) if (i.spec.inPerson) i.el.hidden = !inPerson()
  }
  for (const box of method?.boxes ?? []) box.addEventListener('change', showInPerson)
  const button = h('button', { type: 'submit', 'aria-describedby': note.id }, action.submit)
  const form = h(
    'form',
    { novalidate: true, 'aria-labelledby': `${prefix}-title` },
    inputs.map((i) => i.el),
    button,
  )
  const body = () => {
    const out = {}
    for (const { spec, read } of inputs) {
      if (spec.inPerson && !inPerson()) continue
      const v = read()
      if (v === '' && spec.optional) continue
      out[spec.name] = v
    }
    return out
  }
  const preflight = async () => {
    const investigator = inputs.find((i) => i.spec.preflight)?.input.value.trim()
    const query = new URLSearchParams({ step: action.step })
    if (investigator && /^u-[a-z0-9]{16}$/.test(investigator))
      query.set('investigator', investigator)
    const answer = await ctx.api(
      `/console/api/cases/${encodeURIComponent(doc.case_id)}/preflight?${query}`,
    )
    if (!answer.ok) {
      note.className = 'help'
      note.textContent =
        'Whether this step is possible could not be checked; the collector decides when it is sent.'
    } else if (answer.body.allowed) {
      note.className = 'ok'
      note.textContent = 'The collector’s rules allow this step as things stand.'
    } else {
      note.className = 'warning'
      note.textContent = `The collector will refuse this: ${answer.body.message}`
    }
  }
  for (const { spec, input } of inputs)
    if (spec.preflight) input.addEventListener('change', preflight)
  const schema = await requestSchema(action.schema)
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    alertText('')
    const value = body()
    const problems = validate(branchOf(schema, value), value)
    if (showProblems(form, problems).length > 0 || problems.length > 0) {
      alertText(
        `${action.title}: ${problems.map((p) => `${p.path || 'form'}: ${p.message}`).join('; ')}`,
      )
      return
    }
    const answer = await ctx.api(
      `/v1/cases/${encodeURIComponent(doc.case_id)}/${action.endpoint}`,
      { method: 'POST', body: value },
    )
    if (!answer.ok) {
      alertText(`${action.title} refused: ${ctx.problemText(answer)}`)
      return
    }
    view.replaceChildren()
    await render(view, ctx)
    announce(`${action.title}: done. The case is now ${answer.body.state}.`)
  })
  await preflight()
  return h(
    'section',
    { 'aria-labelledby': `${prefix}-title` },
    h('h3', { id: `${prefix}-title` }, action.title),
    note,
    form,
  )
}
