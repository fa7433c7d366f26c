// The cases the API lets this person see (GET /v1/cases decides).
import { h } from '../ui.js'
import { caseTable } from './caselist.js'

export async function render(view, { api, problemText }) {
  view.append(h('h1', {}, 'My cases'))
  const answer = await api('/v1/cases')
  if (!answer.ok) {
    view.append(h('p', { class: 'warning', role: 'alert' }, problemText(answer)))
    return
  }
  view.append(caseTable(answer.body.cases, 'Cases you may see'))
}
