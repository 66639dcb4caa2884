'use strict'
// read: readSHM and readIntoSHM next to the copies they cannot beat. The
// segment starts on a page (shmat) and src and dst are page-aligned, so
// candidate and floor copy at the same page distance.
const { SIZES } = require('./harness')
const { fresh, into } = require('./floors')
const { createTable } = require('./peers/children')

// Targets from the issue: readSHM ÷ floor.
const READ_TARGETS = { 16: 2, 10240: 1.5, 102400: 1.2 }
const EMPTY = Buffer.alloc(0) // sectionRead's target for the addon-made Buffer: the payload never fits, so grow makes one

module.exports = {
  title: 'Reads: readSHM and readIntoSHM next to their floors',
  legend: [
    `readSHM: \`readSHM(h, 0, n)\` (a fresh Buffer); floor: ${fresh.text} from a Buffer of n bytes.`,
    `readIntoSHM: \`readIntoSHM(h, dst, 0, 0, n)\` into an existing Buffer; floor: ${into.text}, both existing Buffers.`,
    `sectionRead: \`section.read()\` of a section holding n bytes (Buffer.allocUnsafe of the length it last read, filled in one call); floor: ${fresh.text}. ` +
      'sectionReadAddonBuffer: the Buffer made in the addon instead (malloc, wrapped by node::Buffer::New: what section.read() did before), same floor. ' +
      'sectionReadInto: `section.readInto(dst)` into an existing Buffer; floor: ' + into.text + '.'
  ],
  cases ({ shm, segment, aligned }) {
    const largest = SIZES[SIZES.length - 1].bytes
    const { handle: h } = segment(largest)
    shm.writeSHM(h, aligned(largest).fill(0x61), 0)
    // One section per size, published once; the addon-made Buffer is read
    // through the binding directly, with a handle of the table's segment.
    const sections = SIZES.map(({ bytes: n, label }) => {
      const { key, table } = createTable([{ name: label, size: n }])
      const section = table.section(label)
      section.claim()
      section.publish(aligned(n).fill(0x65))
      const handle = shm.openSHM(key, 'a', 0, 0)
      const where = new Float64Array([section.offsets.control, ...section.offsets.data, section.capacity])
      const out = new Float64Array(4)
      return { n, label, section, addonBuffer: () => shm.sectionRead(handle, where, EMPTY, out, true) }
    })
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
      }),
      ...sections.flatMap(({ n, label, section, addonBuffer }) => {
        const dst = aligned(n)
        return [{
          ...fresh(aligned(n)),
          name: `read.sectionRead.${label}`,
          bytes: n,
          candidateText: 'section.read()',
          candidate: () => section.read()
        }, {
          ...fresh(aligned(n)),
          name: `read.sectionReadAddonBuffer.${label}`,
          bytes: n,
          candidateText: 'sectionRead(h, where, Buffer.alloc(0), out, true) (a Buffer made in the addon)',
          candidate: addonBuffer
        }, {
          ...into(aligned(n), dst),
          name: `read.sectionReadInto.${label}`,
          bytes: n,
          candidateText: 'section.readInto(dst)',
          candidate: () => section.readInto(dst)
        }]
      })
    ]
  }
}
