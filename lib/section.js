'use strict'
// A section of a table: read, claim, publish, wait (docs/sections.md, sections
// 4 to 8). Natives do the protocol; this class follows a replaced table
// (through its SectionTable) and words the errors in the caller's terms.

const binding = require('./binding')
const { handleOf } = require('./segment')
const { failure, received } = require('./errors')
const { lockProblem, lockCorrupt } = require('./claim-locks')

const lastPublished = Symbol('lastPublished')

const READ_MAX_MS = 100 // a read gives up after this long (SHMSECT_READ_MAX_MS, docs/sections.md section 4)

function retiredError (key, retired, section) {
  return failure('ERR_SHM_TABLE_RETIRED', { key, retired, section })
}

/**
 * The first length bytes of read()'s guess, as the Buffer read() returns: the
 * guess itself when little of it is left over (the rest, never written, is
 * cleared: it is uninitialized memory, and data.buffer reaches it), else a
 * copy of its own, so that a small payload does not keep a large one's
 * memory alive for as long as the caller keeps it.
 */
function shorter (guess, length) {
  return length * 4 >= guess.length * 3 ? guess.fill(0, length).subarray(0, length) : Buffer.from(guess.subarray(0, length))
}

class Section {
  #table
  #segment = null
  #handle
  #where
  #lock
  #claimed = false
  #lostClaim = false
  #waits = new Set()
  #out = new Float64Array(4)
  #guess = 0 // read()'s guess at the payload's length: the last one it read

  constructor (table) {
    this.#table = table
  }

  /** @internal Moves the section to a segment (null: it is in no table any more). */
  bind (segment, entry) {
    this.#segment = segment
    if (this.#claimed) this.#lostClaim = true
    this.#claimed = false
    if (!segment) return
    this.entry = entry
    this.#handle = handleOf(segment)
    this.#where = new Float64Array([entry.control, entry.data[0], entry.data[1], entry.capacity])
    this.#lock = entry.lock
    this.name = entry.name
    this.capacity = entry.capacity
    this.offsets = { control: entry.control, data: entry.data }
  }

  /** The segment's handle, or ERR_SHM_CLOSED (or ERR_SHM_TABLE_RETIRED: the table, or the name, is gone). */
  #open () {
    if (this.#table.retired) throw retiredError(this.#table.key, this.#table.retired)
    if (this.#table.closed) {
      throw failure('ERR_SHM_CLOSED', { key: this.#table.key })
    }
    if (!this.#segment) throw retiredError(this.#table.key, 'replaced', this.name)
    return this.#handle
  }

  /** A writer's view of retirement: its claim ended, so it must claim again. */
  #writerRetired (error) {
    this.#claimed = false
    return failure('ERR_SHM_TABLE_RETIRED', { key: this.#table.key, retired: error.retired, section: this.name, writer: true })
  }

  /** Runs a reader's operation; on a replaced table, follows it once and runs it again. */
  #reading (operation) {
    const handle = this.#open() // its own ERR_SHM_TABLE_RETIRED (no table followed, or the name is gone) is final
    try {
      return operation(handle)
    } catch (error) {
      if (error.code !== 'ERR_SHM_TABLE_RETIRED') throw error
      this.#table.follow(error.retired)
      return operation(this.#open())
    }
  }

  /** @internal [handle, offsets] for a wait on several sections (SectionTable#wait), or a retired error. */
  place () { return [this.#open(), this.#where] }

  /** The committed version (0 before the first publish). */
  get version () { return this.#reading((handle) => binding.sectionVersion(handle, this.#where)) }

  /** Whether this object holds the section's claim. */
  get claimed () { return this.#claimed }

  /** sectionRead, with the section's name in ERR_SHM_READ_STARVED. */
  #read (handle, target, grow) {
    try {
      return binding.sectionRead(handle, this.#where, target, this.#out, grow)
    } catch (error) {
      if (error.code !== 'ERR_SHM_READ_STARVED') throw error
      throw failure(error.code, { key: this.#table.key, section: this.name, ms: READ_MAX_MS })
    }
  }

  /**
   * { version, data }: a copy of the last complete payload, in a Buffer of
   * exactly its length, with one call into the addon. The Buffer is made here
   * by Buffer.allocUnsafe, as long as the payload the last read found (the
   * length is only known inside the read, under its retries), because a
   * Buffer the addon makes (malloc'd memory wrapped by node::Buffer::New) is
   * memory V8 did not allocate: it is reclaimed by full mark-compact GCs
   * rather than scavenges, which made read() of 10 KB ~2x Buffer.allocUnsafe
   * + a copy, and small ones miss Node's pool (docs/performance.md,
   * "section.read()"). A shorter payload comes back as the start of the
   * guess or a copy of it (see shorter); a longer one in a Buffer the addon
   * makes, in the same call.
   */
  read () {
    return this.#reading((handle) => {
      const guess = Buffer.allocUnsafe(this.#guess)
      const fits = this.#read(handle, guess, true)
      const length = this.#out[1]
      this.#guess = length
      if (fits !== true) return { version: this.#out[0], data: fits }
      return { version: this.#out[0], data: length === guess.length ? guess : shorter(guess, length) }
    })
  }

  /** Copies the last complete payload into buffer; returns { version, length }. */
  readInto (buffer) {
    return this.#reading((handle) => {
      if (!this.#read(handle, buffer)) {
        const [version, length] = this.#out
        throw failure('ERR_OUT_OF_RANGE', { argument: 'buffer', room: buffer.byteLength, version, length })
      }
      return { version: this.#out[0], length: this.#out[1] }
    })
  }

  /**
   * Becomes the section's single writer, or ERR_SHM_SECTION_BUSY. Never waits.
   * On a replaced table it follows to the table now at the key and claims there.
   */
  claim () {
    if (this.#claimed) return
    const handle = this.#open()
    if (this.#table.readOnly) throw failure('ERR_SHM_READ_ONLY', { operation: 'claim' })
    let holder
    try {
      holder = this.#claimOnce(handle)
    } catch (error) {
      if (error.code !== 'ERR_SHM_TABLE_RETIRED') throw error
      this.#table.follow(error.retired)
      holder = this.#claimOnce(this.#open())
    }
    if (holder !== true) {
      throw failure('ERR_SHM_SECTION_BUSY', { key: this.#table.key, section: this.name, pid: holder })
    }
    this.#claimed = true
    this.#lostClaim = false
  }

  /** The claim lock, taken or not (true, or the pid the claim word names); a lock that is not the table's own is ERR_SHM_CORRUPT. */
  #claimOnce (handle) {
    try {
      return binding.sectionClaim(handle, this.#where, this.#lock.id, true)
    } catch (error) {
      const why = error.code === 'ERR_SHM_TABLE_RETIRED' ? null : lockProblem(this.entry, this.#segment.stat())
      if (why === null) throw error // retired, or a lock that is the table's own and refused (its own words say why)
      throw lockCorrupt(this.#table.key, this.entry, why)
    }
  }

  /** Stops being the section's writer. Never throws for what other processes did. */
  release () {
    if (!this.#claimed) return
    this.#claimed = false
    binding.sectionRelease(this.#open(), this.#where)
  }

  /** Publishes data (Buffer, TypedArray, DataView or string) as the next version; returns it. */
  publish (data) {
    const handle = this.#open()
    if (this.#lostClaim) throw this.#writerRetired({ retired: 'replaced' })
    if (!this.#claimed) {
      throw failure('ERR_SHM_NOT_WRITER', { section: this.name })
    }
    try {
      return binding.sectionPublish(handle, this.#where, data)
    } catch (error) {
      if (error.code !== 'ERR_SHM_TABLE_RETIRED') throw error
      binding.sectionRelease(handle, this.#where)
      throw this.#writerRetired(error)
    }
  }

  /**
   * Resolves with the version once it differs from sinceVersion, or with the
   * same version when timeout (ms) passes; rejects with signal.reason on abort.
   * Sleeps without blocking the event loop. The second argument is
   * { timeout, signal, spin }, or the timeout alone, in milliseconds as for
   * waitSync; bad arguments reject with the errors waitSync throws for them.
   * With spin (µs), it first checks in a tight loop on this thread for up to
   * that long (hot mode: it blocks the loop meanwhile), within the timeout.
   * A replaced table is followed (the wait goes on there); a removed one rejects.
   */
  wait (sinceVersion, options = {}) {
    this.#open() // a closed or removed table throws at once; a replaced one is followed when the first wait ends at once, retired
    let timeout, signal, spin
    try {
      ({ timeout, signal, spin } = waitOptions(options))
    } catch (error) {
      return Promise.reject(error)
    }
    // The clock is read only for a timeout, which a spin or a followed table shortens.
    const started = typeof timeout === 'number' ? Date.now() : 0
    const spun = spin !== undefined && !signal?.aborted
    if (spun) {
      try { // checks sinceVersion, timeout and spin as sectionWait and waitSync do
        const version = this.#reading((handle) => binding.sectionSpin(handle, this.#where, sinceVersion, timeout, spin))
        if (version !== sinceVersion) return Promise.resolve(version)
      } catch (error) {
        return Promise.reject(error)
      }
    }
    // The addon checks sinceVersion and timeout, with waitSync's words, and
    // ends the wait at once when the version already differs.
    return pendingWait({
      timeout,
      signal,
      started,
      spun,
      waits: this.#waits,
      start: (left, callback) => binding.sectionWait(this.#open(), this.#where, sinceVersion, left, callback),
      over: (version, retired, late) => {
        if (!retired || this.#table.closed) return [version]
        const after = this.version // follows, or throws
        return after !== sinceVersion || late() ? [after] : null
      }
    })
  }

  /**
   * Blocks this thread until the version differs from sinceVersion or the
   * timeout (ms) passes: waitSync(since, timeoutMs) or waitSync(since, { timeout, spin }),
   * spin in µs of checking in a tight loop before sleeping.
   */
  waitSync (sinceVersion, options) {
    // The timeout alone (the common case) makes no options object.
    const object = typeof options === 'object' && options !== null
    const timeout = object ? options.timeout : options
    const spin = object ? options.spin : undefined
    return this.#reading((handle) => binding.sectionWaitSync(handle, this.#where, sinceVersion, timeout, spin))
  }

  /** What a table listing shows: versions, length, writer, last publish. */
  info () {
    return this.#reading((handle) => {
      this.#read(handle, Buffer.alloc(0))
      const [version, length, publishedUs, lastWriterPid] = this.#out
      return {
        name: this.name,
        offset: this.offsets.data[0],
        capacity: this.capacity,
        length,
        version,
        writer: binding.sectionClaimant(handle, this.#where, this.#lock.id),
        lastWriterPid,
        publishedAt: version ? new Date(publishedUs / 1000) : null
      }
    })
  }

  /**
   * @internal For the bridge: when the payload the last read() or readInto()
   * of this object returned was published, in ms since the epoch (as
   * info().publishedAt): of that payload, where info() would read again.
   */
  [lastPublished] () {
    return Math.trunc(this.#out[2] / 1000)
  }

  /** On table close: ends pending waits. */
  detach () {
    for (const id of this.#waits) binding.sectionWaitCancel(id)
    this.#claimed = false
  }
}

/** wait()'s second argument: { timeout, signal }, or a timeout in milliseconds. */
function waitOptions (options) {
  if (typeof options === 'number') return { timeout: options }
  if (options === null || typeof options !== 'object') {
    throw failure('ERR_INVALID_ARG_TYPE', { argument: 'options', received: received(options) })
  }
  const { timeout, signal, spin } = options
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw failure('ERR_INVALID_ARG_TYPE', { argument: 'options.signal', received: received(signal) })
  }
  return { timeout, signal, spin }
}

/**
 * The promise of a wait() over the addon's asynchronous waits, given when it
 * started (before any spin: spun) and the ids of its table's pending waits.
 * start(left, callback) starts one for `left` of the timeout and returns its
 * id; over(result, retired, late) says what the wait resolves with ([value]),
 * late() whether the timeout has passed (a clock read, only when asked),
 * or null to wait again for what is left (after following a replaced table),
 * or throws what it rejects with. An abort rejects with signal.reason.
 */
function pendingWait ({ timeout, signal, started, spun = false, waits, start, over }) {
  // The addon checks the timeout as given; after a spin or after following a replaced table, what is left of it.
  const deadline = typeof timeout === 'number' ? started + timeout : Infinity
  const late = () => Date.now() >= deadline
  let first = !spun
  let settle
  const promise = new Promise((resolve, reject) => { settle = { resolve, reject } })
  const cancel = () => binding.sectionWaitCancel(cancel.id)
  const finish = (how, value) => { signal?.removeEventListener('abort', cancel); settle[how](value) }
  const begin = () => {
    const left = first || deadline === Infinity ? timeout : Math.max(0, deadline - Date.now())
    first = false
    const id = start(left, (result, retired) => {
      waits.delete(id)
      if (signal?.aborted) return finish('reject', signal.reason)
      try {
        const value = over(result, retired, late)
        if (value) return finish('resolve', value[0])
        begin()
      } catch (error) {
        finish('reject', error)
      }
    })
    cancel.id = id
    waits.add(id)
  }
  try {
    begin()
  } catch (error) {
    return Promise.reject(error)
  }
  if (signal?.aborted) cancel() // a rejection, as for a later abort
  else signal?.addEventListener('abort', cancel, { once: true })
  return promise
}

module.exports = { Section, retiredError, waitOptions, pendingWait, lastPublished }
