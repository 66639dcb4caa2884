'use strict'
// write: writeSHM next to the copy it cannot beat; the segment, src and dst
// all start on a page, so candidate and floor copy at page distance 0.
const { SIZES } = require('./harness')
const { into } = require('./floors')

// Targets from the issue: writeSHM ÷ floor (none at 16 B).
const WRITE_TARGETS = { 10240: 1.2, 102400: 1.2 }

module.exports = {
  title: 'Writes: writeSHM next to its floor',
  legend: [`writeSHM: \`writeSHM(h, src, 0)\` from a Buffer of n bytes; floor: ${into.text}, both existing Buffers.`],
  cases ({ shm, segment, aligned }) {
    const { handle: h } = segment(SIZES[SIZES.length - 1].bytes)
    return SIZES.map(({ bytes: n, label }) => {
      const src = aligned(n).fill(0x62)
      return {
        ...into(src, aligned(n)),
        name: `write.writeSHM.${label}`,
        bytes: n,
        candidateText: 'writeSHM(h, src, 0)',
        candidate: () => shm.writeSHM(h, src, 0),
        target: WRITE_TARGETS[n]
      }
    })
  }
}
