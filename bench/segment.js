'use strict'
// segment: the Segment API (require('nodejs-shm')) next to the same floors as
// readSHM: read() into a fresh Buffer, readInto() and a view's copy into an
// existing one.
const path = require('node:path')
const { SIZES } = require('./harness')
const { fresh, into } = require('./floors')

const READ_INTO_TARGETS = { 10240: 1.2, 102400: 1.2 }

module.exports = {
  title: 'The Segment API: read, readInto and view',
  legend: [
    `Segment#read: \`seg.read(0, n)\`; floor: ${fresh.text}.`,
    `Segment#readInto: \`seg.readInto(dst, 0, 0, n)\` into an existing Buffer; floor: ${into.text}.`,
    `view: \`view.copy(dst, 0, 0, n)\` through \`seg.view()\` made once; floor: ${into.text} between ordinary Buffers.`
  ],
  cases ({ segment, aligned }) {
    const { open } = require(path.join(__dirname, '..'))
    const largest = SIZES[SIZES.length - 1].bytes
    const { key } = segment(largest, { keep: true }) // removed by bench/shm.js at exit
    const seg = open(key, 'w')
    seg.write(aligned(largest).fill(0x61), 0)
    const view = seg.view()
    return SIZES.flatMap(({ bytes: n, label }) => {
      const src = aligned(n)
      const dst = aligned(n)
      return [
        { ...fresh(src), name: `segment.read.${label}`, bytes: n, candidateText: 'seg.read(0, n)', candidate: () => seg.read(0, n) },
        {
          ...into(src, dst),
          name: `segment.readInto.${label}`,
          bytes: n,
          candidateText: 'seg.readInto(dst, 0, 0, n)',
          candidate: () => seg.readInto(dst, 0, 0, n),
          target: READ_INTO_TARGETS[n]
        },
        { ...into(src, dst), name: `segment.view.${label}`, bytes: n, candidateText: 'view.copy(dst, 0, 0, n)', candidate: () => view.copy(dst, 0, 0, n) }
      ]
    })
  }
}
