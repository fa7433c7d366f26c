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
]

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
  const actions = ACTIONS.filter(
    (a) =>
      a.roles.some((r) => ctx.user.roles.includes(r)) &&
      a.states.includes(doc.state) &&
      (!a.emergency || doc.emergency),
  )
  if (actions.length > 0) view.append(h('h2', {}, 'Steps you may take'))
  for (const action of actions) view.append(await actionSection(doc, action, view, ctx))
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

const localValue = (iso) => {
  const d = new Date(iso)
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16)
}

async function actionSection(doc, action, view, ctx) {
  const prefix = `act-${action.step}`
  const note = h(
    'p',
    { id: `${prefix}-preflight`, class: 'help', role: 'note' },
    'Checking whether this step is possible…',
  )
  const inputs = action.fields.map((f) => {
    const input = f.multiline
      ? h('textarea', { name: f.name, required: !f.optional })
      : h('input', {
          type: f.type ?? 'text',
          name: f.name,
          required: !f.optional,
          value:
            f.type === 'datetime-local' && !f.optional ? localValue(doc.window.end) : undefined,
        })
    return {
      spec: f,
      input,
      el: field({ id: `${prefix}-${f.name}`, path: f.name, label: f.label, help: f.help, input }),
    }
  })
  const button = h('button', { type: 'submit', 'aria-describedby': note.id }, action.submit)
  const form = h(
    'form',
    { novalidate: true, 'aria-labelledby': `${prefix}-title` },
    inputs.map((i) => i.el),
    button,
  )
  const body = () => {
    const out = {}
    for (const { spec, input } of inputs) {
      const v = input.value.trim()
      if (v === '' && spec.optional) continue
      out[spec.name] = spec.type === 'datetime-local' && v !== '' ? new Date(v).toISOString() : v
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
    const problems = validate(schema, value)
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
