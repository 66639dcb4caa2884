'use strict'
// offset: every call timed at segment offsets 0..63, since the user picks the
// offset and glibc's memcpy can be 14-27x slower at some page distances
// (docs/performance.md, "The memcpy trap"); the worst offset must stay within
// 1.3x of the best. Buffer.copy is the reference: does the trap exist here?
const OFFSETS = Array.from({ length: 64 }, (_, i) => i)
const BUCKETS = [[0, 0], [1, 15], [16, 31], [32, 63]]
const SIZES = [{ bytes: 10 * 1024, label: '10KB' }, { bytes: 100 * 1024, label: '100KB' }]
const TARGET = 1.3

module.exports = {
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
    const sweep = (name, argName, text, n, fn, extra) => ({ kind: 'sweep', args: OFFSETS, buckets: BUCKETS, name, bytes: n, argName, text, fn, target: TARGET, ...extra })
    return [
      ...SIZES.map(({ bytes: n, label }) => sweep(`offset.readSHM.${label}`, 'start', 'readSHM(h, start, n)', n,
        (d) => shm.readSHM(h, d, n), { allocates: true })),
      ...SIZES.map(({ bytes: n, label }) => {
        const src = aligned(n).fill(0x64)
        return sweep(`offset.writeSHM.${label}`, 'offset', 'writeSHM(h, src, offset)', n, (d) => shm.writeSHM(h, src, d))
      }),
      ...SIZES.map(({ bytes: n, label }) => {
        const dst = aligned(n + 64)
        return sweep(`offset.readIntoSHM.${label}`, 'start', 'readIntoSHM(h, dst, 64, start, n)', n, (d) => shm.readIntoSHM(h, dst, 64, d, n))
      }),
      ...SIZES.map(({ bytes: n, label }) => {
        const src = aligned(n).fill(0x65)
        const dst = aligned(n + 64)
        return sweep(`offset.Buffer.copy.${label}`, 'd', 'src.copy(dst, d)', n, (d) => src.copy(dst, d), { target: undefined })
      })
    ]
  }
}
