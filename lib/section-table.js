'use strict'
// A section table attached in this process: its sections by name, and the
// move to the table now at the key when the manager replaced it (section 8
// of docs/sections.md).

const binding = require('./binding')
const { open, handleOf } = require('./segment')
const { failure, received } = require('./errors')
const { decodeHeader, corrupt } = require('./section-layout')
const { lockProblem, lockCorrupt } = require('./claim-locks')
const { Section, retiredError, waitOptions, pendingWait } = require('./section')

// How long a process on a replaced table looks for its successor at the key.
const FOLLOW_MS = 2000
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

// A table collected without close() gives back the claims taken through it.
const releaseOnCollect = new FinalizationRegistry((handle) => binding.sectionReleaseAll(handle))

/** The id of the segment at key now, or undefined. */
function idAtKey (key) {
  try {
    return binding.statKeySHM(key).id
  } catch {
    return undefined
  }
}

/** Attaches and validates a table once; checks every claim lock when `locks`. */
function attachOnce (key, readOnly, locks = true) {
  const segment = open(key, readOnly ? 'a' : 'w', undefined, undefined, 'sections.attach')
  try {
    const decoded = decodeHeader(segment.key, segment.size, (start, length) => segment.read(start, length))
    if (locks) {
      const owner = segment.stat()
      for (const entry of decoded.entries) {
        const why = lockProblem(entry, owner)
        if (why) throw lockCorrupt(segment.key, entry, why)
      }
    }
    return new SectionTable(segment, decoded)
  } catch (error) {
    segment.close()
    throw error
  }
}

/** [handle, offsets] of a wait on these sections: their table's handle, 4 offsets each. */
function places (sections) {
  const offsets = new Float64Array(4 * sections.length)
  let handle
  sections.forEach((section, i) => {
    const [own, where] = section.place()
    handle = own
    offsets.set(where, 4 * i)
  })
  return [handle, offsets]
}

/** [{ name, version }] of the sections whose version differs from its since version. */
function changes (sections, since, versions) {
  const changed = []
  sections.forEach((section, i) => {
    if (versions[i] !== since[i]) changed.push({ name: section.name, version: versions[i] })
  })
  return changed
}

let segmentOf

class SectionTable {
  #segment
  #sections = new Map()
  #waits = new Set() // pending wait() ids, ended by close()

  static {
    segmentOf = (table) => table.#segment
  }

  constructor (segment, { mode, entries }) {
    this.retired = undefined // 'replaced' or 'removed' once the manager retired it and no table followed
    this.mode = mode
    this.key = segment.key
    this.readOnly = segment.readOnly
    this.#bind(segment, entries)
  }

  /** Takes a segment and its entries; sections of the same name move to it. */
  #bind (segment, entries) {
    this.#segment = segment
    const fresh = new Map()
    for (const entry of entries) {
      const section = this.#sections.get(entry.name) ?? new Section(this)
      section.bind(segment, entry)
      fresh.set(entry.name, section)
    }
    for (const [name, section] of this.#sections) if (!fresh.has(name)) section.bind(null, null)
    this.#sections = fresh
    this.names = [...fresh.keys()]
    releaseOnCollect.register(this, handleOf(segment), segment)
  }

  get closed () { return this.#segment.closed }

  /** The section with this name. */
  section (name) {
    const section = this.#sections.get(name)
    if (!section) throw failure('ERR_SHM_NO_SUCH_SECTION', { key: this.key, name, names: this.names })
    return section
  }

  /** Every section, in table order. */
  get sections () { return [...this.#sections.values()] }

  /**
   * @internal After ERR_SHM_TABLE_RETIRED: a replaced table is followed to the
   * table now at the key (its claims end); a removed one, or none found within
   * FOLLOW_MS, is an error that says so.
   */
  follow (retired) {
    const old = this.#segment
    // The manager takes a table from its key before it retires it (remove, apply).
    if (idAtKey(this.key) === old.id) {
      throw corrupt(this.key, 'retired at key', { retired })
    }
    let fresh
    if (retired === 'replaced') {
      for (const deadline = Date.now() + FOLLOW_MS; !fresh;) {
        try {
          fresh = attachOnce(this.key, this.readOnly)
          fresh.sections[0].version // eslint-disable-line no-unused-expressions -- throws if it retired too
        } catch (error) {
          fresh?.close()
          fresh = undefined
          // Between a manager's two steps: no table yet, or a half-made one, or one retired in turn.
          const passing = ['ENOENT', 'ERR_SHM_NOT_SECTIONS', 'ERR_SHM_TABLE_RETIRED'].includes(error.code)
          if (!passing) throw error // the table at the key is damaged, or not this process's to use: that is the news
          if (Date.now() >= deadline) break
          pause(1)
        }
      }
    }
    binding.sectionReleaseAll(handleOf(old))
    releaseOnCollect.unregister(old)
    if (!fresh) {
      this.retired = retired
      old.close()
      throw retiredError(this.key, retired)
    }
    const segment = fresh.#segment
    const entries = fresh.sections.map((section) => section.entry)
    releaseOnCollect.unregister(segment)
    this.#bind(segment, entries)
    old.close()
  }

  /**
   * Resolves, once the version of any of the named sections differs from its
   * since version, with [{ name, version }] of every section that differs (in
   * the order of names); with [] when `timeout` (ms) passes or the table is
   * closed. Rejects with signal.reason on abort. One sleeper for all of them
   * (docs/sections.md, 7), off the event loop. The third argument is
   * { timeout, signal }, or the timeout alone, in milliseconds as for
   * waitSync; bad arguments reject with the errors waitSync throws for them.
   * A replaced table is followed (the wait goes on there); a removed one rejects.
   */
  wait (names, sinceVersions, options = {}) {
    let watched, since, timeout, signal
    try {
      ;[watched, since] = this.#watched(names, sinceVersions)
      ;({ timeout, signal } = waitOptions(options))
    } catch (error) {
      return Promise.reject(error)
    }
    // The addon checks sinceVersions and timeout, with waitSync's words, and
    // ends the wait at once when a version already differs.
    return pendingWait({
      timeout,
      signal,
      started: Date.now(),
      waits: this.#waits,
      start: (left, callback) => binding.tableWait(...places(watched), since, left, callback),
      over: (versions, retired, late) => {
        if (!retired || this.closed) return [changes(watched, since, versions)]
        const changed = changes(watched, since, watched.map((section) => section.version)) // follows, or throws
        return changed.length || late() ? [changed] : null
      }
    })
  }

  /**
   * Blocks this thread until the version of any of the named sections
   * differs from its since version, or the timeout (ms) passes:
   * waitSync(names, sinceVersions, timeoutMs) or (names, sinceVersions, { timeout }).
   * Returns what wait() resolves with.
   */
  waitSync (names, sinceVersions, options) {
    const { timeout } = typeof options === 'object' && options !== null ? options : { timeout: options }
    const [watched, since] = this.#watched(names, sinceVersions)
    const once = () => binding.tableWaitSync(...places(watched), since, timeout)
    let versions
    try {
      versions = once()
    } catch (error) {
      if (error.code !== 'ERR_SHM_TABLE_RETIRED') throw error
      this.follow(error.retired)
      versions = once()
    }
    return versions && changes(watched, since, versions) // undefined: this worker is being terminated
  }

  /** A wait's sections and a copy of its since versions, or the error for bad ones. */
  #watched (names, sinceVersions) {
    if (this.retired) throw retiredError(this.key, this.retired)
    if (this.closed) throw failure('ERR_SHM_CLOSED', { key: this.key })
    if (!Array.isArray(names)) throw failure('ERR_INVALID_ARG_TYPE', { argument: 'names', received: received(names) })
    if (names.length === 0 || new Set(names).size !== names.length) {
      throw failure('ERR_INVALID_ARG_VALUE', { argument: 'names', names })
    }
    if (!Array.isArray(sinceVersions)) {
      throw failure('ERR_INVALID_ARG_TYPE', { argument: 'sinceVersions', received: received(sinceVersions) })
    }
    if (sinceVersions.length !== names.length) {
      throw failure('ERR_INVALID_ARG_VALUE', { argument: 'sinceVersions', count: sinceVersions.length, names })
    }
    // Plain copies (the addon reads them without running user code); names as typed.
    return [names.map((name) => this.section(name)), Array.from(sinceVersions)]
  }

  /** Gives back the claims held through this table, ends its waits, and detaches. Never throws. */
  close () {
    if (this.#segment.closed) return
    for (const id of this.#waits) binding.sectionWaitCancel(id)
    for (const section of this.#sections.values()) section.detach()
    binding.sectionReleaseAll(handleOf(this.#segment))
    releaseOnCollect.unregister(this.#segment)
    this.#segment.close()
  }

  [Symbol.dispose] () { this.close() }
}

module.exports = { SectionTable, attachOnce, segmentOf: (table) => segmentOf(table) }
