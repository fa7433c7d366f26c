// The approver's (and OIOS chief's) queue: requests waiting for a decision, and active cases an
// approver may extend.
import { h } from '../ui.js'
import { caseTable } from './caselist.js'

export async function render(view, { api, problemText }) {
  view.append(h('h1', {}, 'Approvals queue'))
  const answer = await api('/v1/cases')
  if (!answer.ok) {
    view.append(h('p', { class: 'warning', role: 'alert' }, problemText(answer)))
    return
  }
  const cases = answer.body.cases
  view.append(
    h('h2', {}, 'Waiting for a decision'),
    caseTable(
      cases.filter((c) => c.state === 'requested'),
      'Requested cases',
    ),
    h('h2', {}, 'Approved or active'),
    caseTable(
      cases.filter((c) => c.state === 'approved' || c.state === 'active'),
      'Cases that may be extended or need notice',
    ),
  )
}
