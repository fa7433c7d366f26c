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
