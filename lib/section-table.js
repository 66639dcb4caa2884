'use strict'
// A section table attached in this process: its sections by name, and the
// move to the table now at the key when the manager replaced it (section 8
// of docs/sections.md).

const binding = require('./binding')
const { open, handleOf } = require('./segment')
const { failure } = require('./errors')
const { decodeHeader, corrupt } = require('./section-layout')
const { lockProblem, lockCorrupt } = require('./claim-locks')
const { Section, retiredError } = require('./section')

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

let segmentOf

class SectionTable {
  #segment
  #sections = new Map()

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

  /** Gives back the claims held through this table, ends its waits, and detaches. Never throws. */
  close () {
    if (this.#segment.closed) return
    for (const section of this.#sections.values()) section.detach()
    binding.sectionReleaseAll(handleOf(this.#segment))
    releaseOnCollect.unregister(this.#segment)
    this.#segment.close()
  }

  [Symbol.dispose] () { this.close() }
}

module.exports = { SectionTable, attachOnce, segmentOf: (table) => segmentOf(table) }
