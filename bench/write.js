'use strict'
/*
 * write: writeSHM next to the copy it cannot beat.
 *
 *   writeSHM(h, src, 0)   n bytes from a Buffer into the segment at offset 0
 *     floor: src.copy(dst), both existing Buffers of n bytes
 *
 * The segment starts on a page (shmat); src and dst are page-aligned too, so
 * candidate and floor copy at page distance 0.
 */
const { SIZES } = require('./sizes')

// Targets from the issue: writeSHM / floor (none at 16 B).
const WRITE_TARGETS = { 10240: 1.2, 102400: 1.2 }

module.exports = {
  name: 'write',
  title: 'Writes: writeSHM next to its floor',
  legend: [
    'writeSHM: `writeSHM(h, src, 0)` from a Buffer of n bytes; floor: `src.copy(dst)`, both existing Buffers.'
  ],
  cases ({ shm, segment, aligned }) {
    const largest = SIZES[SIZES.length - 1].bytes
    const { handle: h } = segment(largest)
    return SIZES.map(({ bytes: n, label }) => {
      const src = aligned(n).fill(0x62)
      const dst = aligned(n)
      return {
        kind: 'pair',
        name: `write.writeSHM.${label}`,
        bytes: n,
        candidateText: 'writeSHM(h, src, 0)',
        floorText: 'src.copy(dst)',
        candidate: () => shm.writeSHM(h, src, 0),
        floor: () => src.copy(dst),
        target: WRITE_TARGETS[n]
      }
    })
  }
}
