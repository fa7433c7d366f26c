/**
 * A stand-in for an agent's capture side, run as a child process by leftovers.test.ts: the real
 * LiveCapture on `lo` with the given filter, recording its tcpdump in the given list as the agent
 * does. Prints `started PID` (tcpdump's pid) and then runs until it is killed.
 *
 * Usage: node capture-child.ts LIST_FILE TCPDUMP_PATH FILTER
 */
import { captureChildren } from '../../../agent/packets/leftovers.ts'
import { LiveCapture } from '../../../agent/packets/tcpdump.ts'

const [listFile, tcpdumpPath, filter] = process.argv.slice(2)
if (listFile === undefined || tcpdumpPath === undefined || filter === undefined) {
  throw new Error('usage: capture-child.ts LIST_FILE TCPDUMP_PATH FILTER')
}
captureChildren.recordIn(listFile)
new LiveCapture({
  interface: 'lo',
  filter,
  tcpdumpPath,
  onPacket: () => {},
  onEvent: (event) => {
    if (event.kind === 'started') process.stdout.write(`started ${event.pid}\n`)
    if (event.kind === 'unavailable') process.stdout.write(`unavailable ${event.reason}\n`)
  },
}).start()
setInterval(() => {}, 3_600_000)
