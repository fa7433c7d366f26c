/** Structured JSON logs (pino), to stderr or to a file. Never given a request or batch body. */
import { mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import { destination, type Logger, pino } from 'pino'

export function createLogger(level: string, component: string, file?: string): Logger {
  return pino(
    { level, name: component, base: { component } },
    destination(file === undefined ? 2 : openedFile(file)),
  )
}

/**
 * The file is opened here, synchronously: a destination still opening when the process exits
 * (a start that fails at once) makes pino's exit flush throw "sonic boom is not ready yet" with
 * a stack over the one line that says what went wrong. Writes stay asynchronous.
 */
function openedFile(file: string): { fd: number; sync: false } {
  mkdirSync(dirname(file), { recursive: true })
  return { fd: openSync(file, 'a'), sync: false }
}
