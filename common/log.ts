/** Structured JSON logs (pino), to stderr or to a file. Never given a request or batch body. */
import { destination, type Logger, pino } from 'pino'

export function createLogger(level: string, component: string, file?: string): Logger {
  return pino(
    { level, name: component, base: { component } },
    destination(file === undefined ? 2 : { dest: file, mkdir: true, sync: false }),
  )
}
