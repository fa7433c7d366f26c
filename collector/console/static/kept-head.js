// The head of a register this browser verified last, for the next verification to demand a
// consistency proof from (as `tally register verify` keeps one in its state file).
//
// Kept in localStorage: a signed tree head is public (register name, size, Merkle root, time,
// the register key's signature; no token, no name, no case), and a head kept only in memory
// would be lost on every reload and sign-out, leaving a rolled-back register undetected. It is
// kept per user (one auditor does not vouch with another's head) and per origin (the browser
// keeps one storage per collector, as the CLI keeps one file per collector).
const HEX64 = /^[0-9a-f]{64}$/

const keyOf = (userId, register) => `tally.register-head.${userId}.${register}`

export class KeptHeadError extends Error {
  name = 'KeptHeadError'
}

/** The kept head, undefined when none; a damaged one is a KeptHeadError (as readKeptHead). */
export function readKeptHead(userId, register) {
  const text = localStorage.getItem(keyOf(userId, register))
  if (text === null) return undefined
  let v
  try {
    v = JSON.parse(text)
  } catch {
    v = undefined
  }
  const head = v?.head
  if (
    v?.version !== 1 ||
    v.register !== register ||
    typeof v.key_id !== 'string' ||
    typeof v.verified_at !== 'string' ||
    typeof head !== 'object' ||
    head === null ||
    head.register !== register ||
    !Number.isSafeInteger(head.size) ||
    !HEX64.test(head.root ?? '') ||
    typeof head.ts !== 'string' ||
    typeof head.signature !== 'string'
  ) {
    throw new KeptHeadError(
      'the head this browser kept is damaged: restore it from your own copy, or forget it (which loses what it proves)',
    )
  }
  return v
}

export function writeKeptHead(userId, register, head, keyId) {
  const { size, root, ts, signature } = head
  const kept = {
    version: 1,
    collector: location.origin,
    register,
    key_id: keyId,
    head: { register, size, root, ts, signature },
    verified_at: new Date().toISOString(),
  }
  localStorage.setItem(keyOf(userId, register), JSON.stringify(kept))
  return kept
}

export function forgetKeptHead(userId, register) {
  localStorage.removeItem(keyOf(userId, register))
}
