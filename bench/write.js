'use strict'
// write: writeSHM next to the copy it cannot beat; the segment, src and dst
// all start on a page, so candidate and floor copy at page distance 0.
const { SIZES } = require('./harness')
const { into } = require('./floors')
const { createTable } = require('./peers/children')

// Targets from the issue: writeSHM ÷ floor (none at 16 B); a section publish with nobody asleep ÷ floor.
const WRITE_TARGETS = { 10240: 1.2, 102400: 1.2 }
const PUBLISH_TARGETS = { 10240: 1.2, 102400: 1.2 }

module.exports = {
  title: 'Writes: writeSHM next to its floor',
  legend: [`writeSHM: \`writeSHM(h, src, 0)\` from a Buffer of n bytes; floor: ${into.text}, both existing Buffers.`,
    `publish: \`section.publish(src)\` of a claimed section with nobody waiting (no system call: docs/sections.md, 6); floor: ${into.text}.`,
    `publishOverCall: the same publish; floor: ${into.text} plus \`section.version\`, the cheapest call into the addon (it reads one word): ` +
      'what a publish costs beyond one crossing and the copy (informative: the seqlock\'s stores and the sleeper check).'],
  cases ({ shm, segment, aligned }) {
    const { handle: h } = segment(SIZES[SIZES.length - 1].bytes)
    const { table } = createTable([{ name: 'w', size: SIZES[SIZES.length - 1].bytes }])
    const section = table.section('w')
    section.claim()
    const publishes = SIZES.map(({ bytes: n, label }) => {
      const src = aligned(n).fill(0x63)
      return {
        ...into(src, aligned(n)),
        name: `write.publish.${label}`,
        bytes: n,
        candidateText: 'section.publish(src)',
        candidate: () => section.publish(src),
        target: PUBLISH_TARGETS[n]
      }
    })
    const overCall = SIZES.filter(({ bytes }) => bytes >= 10240).map(({ bytes: n, label }) => {
      const src = aligned(n).fill(0x64)
      const dst = aligned(n)
      return {
        kind: 'pair',
        name: `write.publishOverCall.${label}`,
        bytes: n,
        candidateText: 'section.publish(src)',
        candidate: () => section.publish(src),
        floorText: 'src.copy(dst) + section.version',
        floor: () => src.copy(dst, 0, 0, n) + section.version
      }
    })
    return [...SIZES.map(({ bytes: n, label }) => {
      const src = aligned(n).fill(0x62)
      return {
        ...into(src, aligned(n)),
        name: `write.writeSHM.${label}`,
        bytes: n,
        candidateText: 'writeSHM(h, src, 0)',
        candidate: () => shm.writeSHM(h, src, 0),
        target: WRITE_TARGETS[n]
      }
    }), ...publishes, ...overCall]
  }
}
