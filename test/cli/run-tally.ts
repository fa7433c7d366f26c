/** Runs the `tally` program as an operator would: a process, its exit code and its output. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

export const ROOT = new URL('../../', import.meta.url).pathname

export interface TallyResult {
  code: number
  stdout: string
  stderr: string
}

export async function tally(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 45_000,
): Promise<TallyResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['bin/tally.ts', ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' },
    )
    return { code: 0, stdout, stderr }
  } catch (err) {
    const failed = err as { code: number | string; stdout: string; stderr: string }
    return {
      code: typeof failed.code === 'number' ? failed.code : -1,
      stdout: failed.stdout,
      stderr: failed.stderr,
    }
  }
}

/** Lines an operator sees on stderr, without blank ones. */
export const linesOf = (text: string): string[] =>
  text.split('\n').filter((line) => line.trim() !== '')
