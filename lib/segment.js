'use strict'
// Segment: one attached System V segment, over the addon's handle functions.

const { inspect } = require('node:util')
const binding = require('./binding')
const { readSHM } = require('./legacy')
const { systemError, failure, hex } = require('./errors')

const kConstruct = Symbol('Segment constructor')

/** A view's length; 0 when its buffer is detached (a DataView's getter throws then). */
function byteLength (view) {
  try {
    return view.byteLength
  } catch {
    return 0
  }
}

// A Segment garbage-collected while open is detached (never deleted).
const detachOnCollect = new FinalizationRegistry((handle) => binding.closeSHM(handle))

// The handle behind a Segment, for the other modules of lib/ (not exported by index.js).
let handleOf

class Segment {
  #handle
  #closed = false

  static {
    handleOf = (segment) => segment.#handle
  }

  /** Segments come from open(); the constructor is not public. */
  constructor (token, handle) {
    if (token !== kConstruct) {
      throw failure('ERR_ILLEGAL_CONSTRUCTOR')
    }
    this.#handle = handle
    const { key, id, size, readOnly } = binding.infoSHM(handle)
    Object.defineProperties(this, {
      key: { value: key, enumerable: true },
      id: { value: id, enumerable: true },
      size: { value: size, enumerable: true },
      readOnly: { value: readOnly, enumerable: true }
    })
    detachOnCollect.register(this, handle, this)
  }

  get closed () { return this.#closed }

  /** The open handle, or ERR_SHM_CLOSED. */
  #open () {
    if (this.#closed) throw failure('ERR_SHM_CLOSED', { key: this.key, id: this.id })
    return this.#handle
  }

  /** A copy of length bytes from start (0: to the end). */
  read (start = 0, length = 0) {
    return readSHM(this.#open(), start, length)
  }

  /** Copies into target (allocating nothing); length defaults to all that fits. */
  readInto (target, targetOffset = 0, start = 0, length) {
    const handle = this.#open()
    if (length === undefined) {
      // Nothing is coerced: a bad target, targetOffset or start is reported by the addon.
      const room = ArrayBuffer.isView(target) && typeof targetOffset === 'number' ? byteLength(target) - targetOffset : 0
      const left = typeof start === 'number' ? this.size - start : 0
      length = Math.max(0, Math.min(room, left)) || 0
    }
    return binding.readIntoSHM(handle, target, targetOffset, start, length)
  }

  /** Writes data at offset, cut at the end of the segment; returns the bytes written. */
  write (data, offset = 0) {
    const handle = this.#open()
    try {
      return binding.writeSHM(handle, data, offset)
    } catch (error) {
      // The original API's words name the handle, which a Segment does not show.
      throw error.code === 'ERR_SHM_READ_ONLY' ? failure('ERR_SHM_READ_ONLY', { operation: 'write', key: this.key }) : error
    }
  }

  /** A Buffer over the segment's memory itself; it keeps the mapping alive until collected. */
  view () {
    return binding.viewSHM(this.#open())
  }

  /** What the kernel knows of the segment now. */
  stat () {
    return binding.statSHM(this.#open())
  }

  /** Marks the segment for deletion; it stays usable here until closed. */
  delete () {
    if (binding.deleteSHM(this.#open()) === 0) throw systemError(binding.lastErrorSHM(), { key: this.key })
  }

  /** Detaches; views made before keep the memory until they are collected. Idempotent. */
  close () {
    if (this.#closed) return
    this.#closed = true
    detachOnCollect.unregister(this)
    binding.closeSHM(this.#handle)
  }

  [Symbol.dispose] () { this.close() }

  [inspect.custom] () {
    return `Segment { key: ${hex(this.key)}, id: ${this.id}, size: ${this.size}, ` +
      `readOnly: ${this.readOnly}, closed: ${this.#closed} }`
  }
}

/**
 * Opens a segment with PHP's flags ('a', 'w', 'c', 'n'). mode defaults to
 * 0o644 when creating and to 0 when attaching, which asks for no permission
 * bits, so any process the segment admits can attach. `api` is the sections
 * call that opens it, for the words of its errors (lib/errors.js, explain).
 */
function open (key, flags, mode = flags === 'c' || flags === 'n' ? 0o644 : 0, size = 0, api = undefined) {
  const handle = binding.openSHM(key, flags, mode, size)
  if (handle === 0) {
    const raw = binding.lastErrorSHM()
    const context = { key: raw.key, flags, mode, size, api }
    if (raw.code === 'EINVAL' && flags === 'c') context.existingSize = existingSize(raw.key)
    throw systemError(raw, context)
  }
  return new Segment(kConstruct, handle)
}

/** Size of the segment with this key, or undefined. */
function existingSize (key) {
  try {
    return binding.statKeySHM(key).size
  } catch {
    return undefined
  }
}

module.exports = { Segment, open, handleOf }
