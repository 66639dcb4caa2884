'use strict'
/*
 * offset: the page-offset sweep. On some CPUs glibc's memcpy (its "rep movsb"
 * path, from about 2 KB up) runs 14-27x slower when the destination lies 1..63
 * bytes past the source modulo 4096. A user picks the segment offset, so each
 * call below is timed at segment offsets 0..63; the worst offset must stay
 * within 1.3x of the best.
 *
 *   readSHM(h, start, n)               start = 0..63; the fresh Buffer lands
 *                                      where malloc puts it, as in real use
 *   writeSHM(h, src, offset)           offset = 0..63, src page-aligned:
 *                                      (dst - src) mod 4096 = offset
 *   readIntoSHM(h, dst, 64, start, n)  start = 0..63, dst page-aligned, so the
 *                                      copy lands 64 B into a page and
 *                                      (dst - src) mod 4096 = 64 - start: every
 *                                      distance 1..64 occurs once
 *   src.copy(dst, d)                   reference, not the addon: Node's own copy
 *                                      at distance d = 0..63 (does the trap
 *                                      exist here at all?)
 */
const OFFSETS = Array.from({ length: 64 }, (_, i) => i)
const BUCKETS = [[0, 0], [1, 15], [16, 31], [32, 63]]
const SIZES = [{ bytes: 10 * 1024, label: '10KB' }, { bytes: 100 * 1024, label: '100KB' }]
const TARGET = 1.3

module.exports = {
  name: 'offset',
  title: 'Page-offset sweep: segment offsets 0..63',
  legend: [
    'readSHM: `readSHM(h, start, n)`, start = 0..63 (the fresh Buffer lands where malloc puts it).',
    'writeSHM: `writeSHM(h, src, offset)`, offset = 0..63, src page-aligned: (dst − src) mod 4096 = offset.',
    'readIntoSHM: `readIntoSHM(h, dst, 64, start, n)`, start = 0..63, dst page-aligned: (dst − src) mod 4096 = 64 − start.',
    'Buffer.copy (reference, not the addon): `src.copy(dst, d)`, both page-aligned: (dst − src) mod 4096 = d.',
    'Columns 0, 1–15, 16–31, 32–63: median over those offsets of each offset\'s median over rounds. Sweep spread: slowest ÷ fastest of those per-offset medians (noise included).',
    'Confirmed: the best offset and the slowest few timed again, interleaved, in rounds of their own; worst = the one with the largest median ratio to the best (best/worst ns from those rounds); min–max over rounds. The result uses it.'
  ],
  cases ({ shm, segment, aligned }) {
    const largest = SIZES[SIZES.length - 1].bytes
    const { handle: h } = segment(largest + 4096)
    shm.writeSHM(h, aligned(largest + 4096).fill(0x63), 0)
    const common = { kind: 'sweep', args: OFFSETS, buckets: BUCKETS }
    const cases = []
    for (const { bytes: n, label } of SIZES) {
      cases.push({
        ...common,
        name: `offset.readSHM.${label}`,
        bytes: n,
        argName: 'start',
        text: 'readSHM(h, start, n)',
        fn: (d) => shm.readSHM(h, d, n),
        target: TARGET,
        allocates: true
      })
    }
    for (const { bytes: n, label } of SIZES) {
      const src = aligned(n).fill(0x64)
      cases.push({
        ...common,
        name: `offset.writeSHM.${label}`,
        bytes: n,
        argName: 'offset',
        text: 'writeSHM(h, src, offset)',
        fn: (d) => shm.writeSHM(h, src, d),
        target: TARGET
      })
    }
    for (const { bytes: n, label } of SIZES) {
      const dst = aligned(n + 64)
      cases.push({
        ...common,
        name: `offset.readIntoSHM.${label}`,
        bytes: n,
        argName: 'start',
        text: 'readIntoSHM(h, dst, 64, start, n)',
        fn: (d) => shm.readIntoSHM(h, dst, 64, d, n),
        target: TARGET
      })
    }
    for (const { bytes: n, label } of SIZES) {
      const src = aligned(n).fill(0x65)
      const dst = aligned(n + 64)
      cases.push({
        ...common,
        name: `offset.Buffer.copy.${label}`,
        bytes: n,
        argName: 'd',
        text: 'src.copy(dst, d)',
        fn: (d) => src.copy(dst, d)
      })
    }
    return cases
  }
}
