'use strict'
// read: readSHM and readIntoSHM next to the copies they cannot beat. The
// segment starts on a page (shmat) and src and dst are page-aligned, so
// candidate and floor copy at the same page distance.
const { SIZES } = require('./harness')
const { fresh, into } = require('./floors')

// Targets from the issue: readSHM ÷ floor.
const READ_TARGETS = { 16: 2, 10240: 1.5, 102400: 1.2 }

module.exports = {
  title: 'Reads: readSHM and readIntoSHM next to their floors',
  legend: [
    `readSHM: \`readSHM(h, 0, n)\` (a fresh Buffer); floor: ${fresh.text} from a Buffer of n bytes.`,
    `readIntoSHM: \`readIntoSHM(h, dst, 0, 0, n)\` into an existing Buffer; floor: ${into.text}, both existing Buffers.`
  ],
  cases ({ shm, segment, aligned }) {
    const largest = SIZES[SIZES.length - 1].bytes
    const { handle: h } = segment(largest)
    shm.writeSHM(h, aligned(largest).fill(0x61), 0)
    return [
      ...SIZES.map(({ bytes: n, label }) => ({
        ...fresh(aligned(n)),
        name: `read.readSHM.${label}`,
        bytes: n,
        candidateText: 'readSHM(h, 0, n)',
        candidate: () => shm.readSHM(h, 0, n),
        target: READ_TARGETS[n]
      })),
      ...SIZES.map(({ bytes: n, label }) => {
        const dst = aligned(n)
        return {
          ...into(aligned(n), dst),
          name: `read.readIntoSHM.${label}`,
          bytes: n,
          candidateText: 'readIntoSHM(h, dst, 0, 0, n)',
          candidate: () => shm.readIntoSHM(h, dst, 0, 0, n)
        }
      })
    ]
  }
}
