/**
 * What the sender needs to know of a spooled batch's body (gzip'd JSON of a HostBatch): its seq,
 * to renumber it, and its interval, to repair one a clock step broke. Everything else passes
 * through untouched, so a batch written by an older agent keeps its content.
 */
import { gunzipSync, gzipSync } from 'node:zlib'

type BatchObject = Record<string, unknown>

function decode(body: Buffer): BatchObject | undefined {
  try {
    const value: unknown = JSON.parse(gunzipSync(body).toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as BatchObject)
      : undefined
  } catch {
    return undefined
  }
}

const encode = (batch: BatchObject): Buffer => gzipSync(JSON.stringify(batch))

/** The body with `seq` in place of its own; a body that is not a batch is returned unchanged. */
export function withSeq(body: Buffer, seq: number): Buffer {
  const batch = decode(body)
  return batch ? encode({ ...batch, seq }) : body
}

export interface IntervalRepair {
  body: Buffer
  was: { start: number; end: number }
  now: { start: number; end: number }
}

/**
 * A batch whose interval ends at or before its start can only come from a wall clock that
 * stepped back while it was being counted (agents before the monotonic interval, or a batch
 * edited by hand). Its end is the boundary the agent woke up at, the reading taken after the
 * step, so it is kept; the start becomes the end minus the agent's nominal interval, which is
 * what the agent meant to measure. The repair is a pure function of the body, so a retried
 * batch is repaired identically and the collector still recognises it as the same batch.
 * Returns undefined when there is nothing to repair.
 */
export function repairInterval(body: Buffer, nominalMs: number): IntervalRepair | undefined {
  const batch = decode(body)
  const interval = batch?.interval
  if (!batch || typeof interval !== 'object' || interval === null) return undefined
  const { start, end } = interval as { start?: unknown; end?: unknown }
  if (typeof start !== 'number' || typeof end !== 'number') return undefined
  if (end > start) return undefined
  const repairedStart = Math.max(0, end - nominalMs)
  if (repairedStart >= end) return undefined
  return {
    body: encode({ ...batch, interval: { start: repairedStart, end } }),
    was: { start, end },
    now: { start: repairedStart, end },
  }
}
