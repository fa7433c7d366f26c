/** Structured JSON logs (pino), to stderr or a file. */
import { type DestinationStream, destination, type Logger, pino } from 'pino'

export function createLogger(level: string, name: string, file?: string): Logger {
  const stream: DestinationStream = destination(
    file === undefined ? 2 : { dest: file, mkdir: true, sync: false },
  )
  return pino({ level, name, base: { component: name } }, stream)
}
