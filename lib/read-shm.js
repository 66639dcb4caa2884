'use strict'
// readSHM, the original API's read, made over three natives. It allocates its
// Buffer in JavaScript: Buffer.allocUnsafe() takes small Buffers from Node's
// pool, several times cheaper than making one in the addon. A handle's size
// never changes and handles are never reused, so a size learnt once lets the
// usual read be checked here and done in one native call; anything else goes
// through readLength, which checks and words errors as every other call does.
// readInto checks the handle and the span again.
//
// The addon embeds this very text (binding.gyp runs scripts/embed-js.js), so
// that require('./build/Release/shm') alone has readSHM: it must stay one
// function assigned to module.exports, with no require().

/** readSHM over the addon's readLength, readIntoSHM and sizeSHM. */
module.exports = function makeReadSHM (readLength, readInto, sizeOf, Buffer, maxLength) {
  const sizes = new Map()
  return function readSHM (handle, start, length) {
    const size = sizes.get(handle)
    let n
    // typeof first: arithmetic on an object would run its valueOf.
    if (typeof start === 'number' && typeof length === 'number' && size !== undefined &&
        Number.isInteger(start) && Number.isInteger(length) && start >= 0 && length >= 0 &&
        start <= size && length <= size - start && (n = length || size - start) <= maxLength) {
      // checked here
    } else {
      n = readLength(handle, start, length)
      if (sizes.size >= 4096) sizes.clear()
      sizes.set(handle, sizeOf(handle))
    }
    let copy
    try {
      copy = Buffer.allocUnsafe(n)
    } catch (cause) {
      const error = new Error(`Cannot allocate ${n} bytes for the copy`, { cause })
      error.code = 'ERR_MEMORY_ALLOCATION_FAILED'
      throw error
    }
    readInto(handle, copy, 0, start, n)
    return copy
  }
}
