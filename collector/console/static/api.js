// The JSON API, same origin, with the session cookie (sent by the browser, unreadable here) and
// the session's CSRF token on every request that changes something. The CSRF token lives in this
// module's memory only: never in storage, gone with the page.
let csrfToken = ''

export function setCsrfToken(token) {
  csrfToken = token
}

/**
 * Calls the API; resolves to { ok, status, body } whatever the status (never throws on 4xx).
 * `headers`: extra request headers (an investigator's access grant, kept in page memory).
 */
export async function api(path, { method = 'GET', body, headers: extra = {} } = {}) {
  const headers = { ...extra, Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken
  let res
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    })
  } catch (err) {
    return {
      ok: false,
      status: 0,
      body: { error: 'network', message: `the collector did not answer (${err.message})` },
    }
  }
  const text = await res.text()
  let data = null
  try {
    data = text === '' ? null : JSON.parse(text)
  } catch {
    data = { error: 'not_json', message: text.slice(0, 200) }
  }
  if (res.status === 401 && path !== '/console/session') {
    window.dispatchEvent(new CustomEvent('tally:signed-out', { detail: data }))
  }
  return { ok: res.ok, status: res.status, body: data }
}

/** The API's error answer as one sentence, with the schema's issues when it lists them. */
export function problemText(answer) {
  const body = answer.body ?? {}
  const message = body.message ?? `the collector answered ${answer.status}`
  const issues = Array.isArray(body.issues) ? body.issues.map((i) => `${i.path}: ${i.message}`) : []
  return issues.length > 0 ? `${message} (${issues.join('; ')})` : message
}
