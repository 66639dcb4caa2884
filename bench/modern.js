'use strict'
/*
 * modern: the Segment API (require('nodejs-shm')) next to readSHM's numbers.
 *
 *   seg.read(0, n)               a fresh Buffer (as readSHM)
 *     floor: Buffer.allocUnsafe(n) + src.copy(b)
 *   seg.readInto(dst, 0, 0, n)   n bytes into the caller's Buffer, allocating nothing
 *     floor: src.copy(dst), both existing Buffers (target: <= 1.2x at 10 KB and 100 KB)
 *   view.copy(dst, 0, 0, n)      reading through a view made once (zero copy until here)
 *     floor: src.copy(dst), the same copy between two ordinary Buffers
 */
const path = require('node:path')
const { SIZES } = require('./sizes')

const READ_INTO_TARGETS = { 10240: 1.2, 102400: 1.2 }

module.exports = {
  name: 'modern',
  title: 'The Segment API: read, readInto and view',
  legend: [
    'Segment#read: `seg.read(0, n)`; floor: `Buffer.allocUnsafe(n)` + `src.copy(b)`.',
    'Segment#readInto: `seg.readInto(dst, 0, 0, n)` into an existing Buffer; floor: `src.copy(dst)`.',
    'view: `view.copy(dst, 0, 0, n)` through `seg.view()` made once; floor: `src.copy(dst)` between ordinary Buffers.'
  ],
  cases ({ segment, aligned }) {
    const { open } = require(path.join(__dirname, '..'))
    const largest = SIZES[SIZES.length - 1].bytes
    const { key } = segment(largest, { keep: true }) // removed by bench/shm.js at exit
    const seg = open(key, 'w')
    seg.write(aligned(largest).fill(0x61), 0)
    const view = seg.view()
    const cases = []
    for (const { bytes: n, label } of SIZES) {
      const src = aligned(n)
      const dst = aligned(n)
      cases.push({
        kind: 'pair',
        name: `modern.read.${label}`,
        bytes: n,
        candidateText: 'seg.read(0, n)',
        floorText: 'Buffer.allocUnsafe(n) + src.copy(b)',
        candidate: () => seg.read(0, n),
        floor: () => {
          const b = Buffer.allocUnsafe(n)
          src.copy(b)
          return b
        },
        allocates: true
      }, {
        kind: 'pair',
        name: `modern.readInto.${label}`,
        bytes: n,
        candidateText: 'seg.readInto(dst, 0, 0, n)',
        floorText: 'src.copy(dst)',
        candidate: () => seg.readInto(dst, 0, 0, n),
        floor: () => src.copy(dst),
        target: READ_INTO_TARGETS[n]
      }, {
        kind: 'pair',
        name: `modern.view.${label}`,
        bytes: n,
        candidateText: 'view.copy(dst, 0, 0, n)',
        floorText: 'src.copy(dst)',
        candidate: () => view.copy(dst, 0, 0, n),
        floor: () => src.copy(dst, 0, 0, n)
      })
    }
    return cases
  }
}
