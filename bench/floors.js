'use strict'
// floors.js: the copies a call cannot beat, as the floor half of a pair case.

/** A fresh Buffer of src's length, filled from src (readSHM's floor). */
function fresh (src) {
  const n = src.length
  return {
    kind: 'pair',
    floorText: fresh.text.replace(/`/g, ''),
    floor: () => {
      const b = Buffer.allocUnsafe(n)
      src.copy(b)
      return b
    },
    allocates: true
  }
}
fresh.text = '`Buffer.allocUnsafe(n)` + `src.copy(b)`'

/** src copied into dst, both existing Buffers (the floor of every copy into memory that exists). */
const into = (src, dst) => ({ kind: 'pair', floorText: 'src.copy(dst)', floor: () => src.copy(dst, 0, 0, src.length) })
into.text = '`src.copy(dst)`'

module.exports = { fresh, into }
