'use strict'
/*
 * read: readSHM and readIntoSHM next to the copy they cannot beat.
 *
 *   readSHM(h, 0, n)            a fresh Buffer with n bytes of the segment
 *     floor: Buffer.allocUnsafe(n) + src.copy(b), src a Buffer of n bytes
 *   readIntoSHM(h, dst, 0, 0, n)  n bytes into the caller's Buffer
 *     floor: src.copy(dst), both existing Buffers of n bytes
 *
 * The segment starts on a page (shmat), and src and dst are page-aligned too,
 * so candidate and floor copy at the same page distance (0 for the copies into
 * dst; readSHM's fresh Buffer lands where malloc puts it, as the floor's does).
 */
const { SIZES } = require('./sizes')

// Targets from the issue: readSHM / floor.
const READ_TARGETS = { 16: 2, 10240: 1.5, 102400: 1.2 }

module.exports = {
  name: 'read',
  title: 'Reads: readSHM and readIntoSHM next to their floors',
  legend: [
    'readSHM: `readSHM(h, 0, n)` (a fresh Buffer); floor: `Buffer.allocUnsafe(n)` + `src.copy(b)` from a Buffer of n bytes.',
    'readIntoSHM: `readIntoSHM(h, dst, 0, 0, n)` into an existing Buffer; floor: `src.copy(dst)`, both existing Buffers.'
  ],
  cases ({ shm, segment, aligned }) {
    const largest = SIZES[SIZES.length - 1].bytes
    const { handle: h } = segment(largest)
    shm.writeSHM(h, aligned(largest).fill(0x61), 0)
    const cases = []
    for (const { bytes: n, label } of SIZES) {
      const src = aligned(n)
      cases.push({
        kind: 'pair',
        name: `read.readSHM.${label}`,
        bytes: n,
        candidateText: 'readSHM(h, 0, n)',
        floorText: 'Buffer.allocUnsafe(n) + src.copy(b)',
        candidate: () => shm.readSHM(h, 0, n),
        floor: () => {
          const b = Buffer.allocUnsafe(n)
          src.copy(b)
          return b
        },
        target: READ_TARGETS[n],
        allocates: true
      })
    }
    for (const { bytes: n, label } of SIZES) {
      const src = aligned(n)
      const dst = aligned(n)
      cases.push({
        kind: 'pair',
        name: `read.readIntoSHM.${label}`,
        bytes: n,
        candidateText: 'readIntoSHM(h, dst, 0, 0, n)',
        floorText: 'src.copy(dst)',
        candidate: () => shm.readIntoSHM(h, dst, 0, 0, n),
        floor: () => src.copy(dst)
      })
    }
    return cases
  }
}
