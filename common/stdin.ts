/**
 * Standard input, kept away from the embedded engine.
 *
 * The embedded engine takes the process's file descriptor 0 as the external data of every
 * INSERT (chDB's client keeps ClickHouse's default input, STDIN_FILENO). When stdin is a file or
 * a pipe that carries data, each insert then fails ("Processing async inserts with both inlined
 * and external data ... is not supported"), and with async_insert off it would store whatever
 * stdin holds as rows. Nothing in the collector or the demo reads stdin (Ctrl-C is a signal, the
 * agent's tcpdump child gets 'ignore'), so fd 0 is pointed at /dev/null before the engine runs a
 * query. Node has no dup2: closing 0 and opening /dev/null takes the lowest free descriptor, 0,
 * unless another thread opens a file in between. The program's entry therefore does it first
 * thing, before any thread of ours exists (bin/tally.ts); the store does it again as a check, and
 * refuses rather than leaves it half done.
 */
import { closeSync, fstatSync, openSync, statSync } from 'node:fs'

export class StdinDetachError extends Error {
  override name = 'StdinDetachError'
}

/** Points fd 0 at /dev/null; a no-op when it already is. */
export function detachStdinFromEngine(): void {
  if (isDevNull(0)) return
  try {
    closeSync(0)
  } catch {
    // Already closed: the open below takes 0.
  }
  const fd = openSync('/dev/null', 'r')
  if (fd !== 0) {
    closeSync(fd)
    throw new StdinDetachError(
      'could not point standard input at /dev/null for the embedded engine; start the collector with </dev/null',
    )
  }
}

function isDevNull(fd: number): boolean {
  try {
    const [a, b] = [fstatSync(fd), statSync('/dev/null')]
    return a.rdev === b.rdev && a.ino === b.ino
  } catch {
    return false
  }
}
