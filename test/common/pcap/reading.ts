/** How the reader tests feed captures to a reader and read files back. */
import { readPcapFile } from '../../../common/pcap/pcap-reader.ts'

/**
 * Reads the file at `path` whose record i holds 100 bytes of `i & 0xff`, stamped second 1000 + i
 * and fraction i (as the large-file tests write it): how many records came, how many of them
 * broke the pattern, and the reader's result.
 */
export async function readNumbered(path: string) {
  let count = 0
  let bad = 0
  const result = await readPcapFile(path, (data, offset, caplen, _len, sec, frac) => {
    if (caplen !== 100 || data[offset] !== (count & 0xff) || sec !== 1000 + count || frac !== count)
      bad++
    count++
  })
  return { count, bad, result }
}

/**
 * Pushes `bytes` to `reader` cut at the given sizes (cycled), each chunk copied into a fresh
 * array so that nothing relies on chunks sharing a buffer.
 */
export function pushInChunks(
  reader: { push(chunk: Uint8Array): void },
  bytes: Uint8Array,
  sizes: readonly number[],
): void {
  let pos = 0
  let i = 0
  while (pos < bytes.length) {
    const size = Math.max(1, sizes[i++ % sizes.length] ?? 1)
    reader.push(bytes.slice(pos, pos + size))
    pos += size
  }
}
