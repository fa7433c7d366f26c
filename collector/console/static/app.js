// The console's shell: sign-in, the navigation the user's roles allow, and the hash router that
// loads one page module at a time (pages/index.js lists them).
import { api, problemText, setCsrfToken } from './api.js'
import { PAGES, pageFor } from './pages/index.js'
import { alertText, announce, h } from './ui.js'

let user

async function start() {
  document.getElementById('logout').addEventListener('click', signOut)
  window.addEventListener('tally:signed-out', (event) => showSignIn(event.detail?.message))
  window.addEventListener('hashchange', route)
  document.getElementById('sign-in-form').addEventListener('submit', signIn)
  if (new URLSearchParams(location.search).get('signin') === 'failed')
    alertText('That token is unknown, wrong or revoked.')
  const answer = await api('/console/api/session')
  if (answer.ok) enter(answer.body)
  else showSignIn()
}

async function signIn(event) {
  event.preventDefault()
  const form = event.target
  alertText('')
  const res = await fetch('/console/session', {
    method: 'POST',
    headers: { Accept: 'application/json' },
    body: new URLSearchParams(new FormData(form)),
    credentials: 'same-origin',
  })
  // The token leaves the page: the field is cleared whatever the answer.
  form.reset()
  const body = await res.json().catch(() => ({}))
  if (!res.ok) {
    alertText(body.message ?? `sign-in failed (${res.status})`)
    document.getElementById('token').focus()
    return
  }
  if (location.search !== '') history.replaceState(null, '', '/console/')
  enter(body)
}

async function signOut() {
  await api('/console/session/logout', { method: 'POST' })
  showSignIn('You are signed out.')
}

function enter(session) {
  user = session
  setCsrfToken(session.csrf_token)
  document.getElementById('sign-in').hidden = true
  document.getElementById('who').hidden = false
  document.getElementById('who-name').textContent = `${session.name} (${session.roles.join(', ')})`
  renderNav()
  if (location.hash === '' || location.hash === '#') location.hash = '#/home'
  else route()
}

function showSignIn(message) {
  user = undefined
  setCsrfToken('')
  document.getElementById('who').hidden = true
  document.getElementById('nav').hidden = true
  const main = document.getElementById('main')
  for (const el of [...main.children]) if (el.id !== 'sign-in') el.remove()
  document.getElementById('sign-in').hidden = false
  document.title = 'Sign in · Tally console'
  if (message) alertText(message)
  document.getElementById('token').focus()
}

const allowed = (page) => page.roles === 'any' || page.roles.some((r) => user.roles.includes(r))

function renderNav() {
  const nav = document.getElementById('nav')
  const items = PAGES.filter((p) => !p.hidden && allowed(p)).map((p) =>
    h('li', {}, h('a', { href: `#/${p.path}`, 'data-path': p.path }, p.title)),
  )
  nav.replaceChildren(h('ul', {}, items))
  nav.hidden = false
}

async function route() {
  if (user === undefined) return
  const path = location.hash.replace(/^#\/?/, '')
  const { page, params } = pageFor(path)
  for (const a of document.querySelectorAll('#nav a')) {
    if (page !== undefined && a.dataset.path === page.path) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
  const main = document.getElementById('main')
  const view = h('div', { id: 'view' })
  for (const el of [...main.children]) if (el.id !== 'sign-in') el.remove()
  main.append(view)
  alertText('')
  if (page === undefined) {
    view.append(
      h('h1', {}, 'No such page'),
      h('p', {}, h('a', { href: '#/home' }, 'Back to the overview')),
    )
  } else if (!allowed(page)) {
    // Said before the API would refuse: the page is not for this person's roles.
    view.append(
      h('h1', {}, page.title),
      h(
        'p',
        { class: 'warning', role: 'alert' },
        `This page is for the ${page.roles.join(' or ')} role; you hold ${user.roles.join(', ') || 'no role'}.`,
      ),
    )
  } else {
    try {
      const module = await page.load()
      await module.render(view, { user, params, api, problemText })
    } catch (err) {
      view.append(h('p', { class: 'warning', role: 'alert' }, `This page failed: ${err.message}`))
    }
  }
  document.title = `${page?.title ?? 'Not found'} · Tally console`
  main.focus()
  announce(`${page?.title ?? 'No such page'} page`)
}

start()
