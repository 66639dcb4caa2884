'use strict'
// Sections: one segment cut into named sections, each with one writer at a
// time and any number of readers (the "simple SHM manager" of the original
// TODO). The layout is specified byte by byte in docs/sections.md; this file
// writes and checks the header and table, and src/sections.c does the rest.

const crypto = require('node:crypto')
const binding = require('./binding')
const { open, handleOf } = require('./segment')
const { failure, received } = require('./errors')
const crc32 = require('./crc32')

const MAGIC = Buffer.from('NJSHMSEC', 'latin1')
const LAYOUT_VERSION = 1
const BYTE_ORDER = 0x01020304
const HEADER_SIZE = 64
const ENTRY_SIZE = 80
const NAME_SIZE = 32
const NO_LOCK = -1 // an entry's lock id where there are no claim locks (Windows)
const CONTROL_SIZE = 192
const MAX_SECTIONS = 65536
const READ_MAX_MS = 100 // a read gives up after this long (SHMSECT_READ_MAX_MS, docs/sections.md section 4)
// ignoreBOM: a name's leading U+FEFF is part of it, as PHP and the creator see it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

const align64 = (n) => Math.ceil(n / 64) * 64
// Data areas start 24 bytes past a 64-byte boundary: where PHP's strings keep
// their bytes, so PHP's copies of whole payloads avoid memcpy's slow case.
const dataStart = (n) => align64(n) + 24

// How long a process on a replaced table looks for its successor at the key.
const FOLLOW_MS = 2000
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

const corrupt = (key, part, found) => failure('ERR_SHM_CORRUPT', { key, part, ...found })

/** Places the sections: header and table, control blocks, then data areas. */
function layout (sections) {
  const headerSize = HEADER_SIZE + ENTRY_SIZE * sections.length
  let end = align64(headerSize) + CONTROL_SIZE * sections.length
  return {
    headerSize,
    entries: sections.map(({ name, size }, i) => {
      const data0 = dataStart(end)
      const data1 = dataStart(data0 + size)
      end = data1 + size
      return { name, control: align64(headerSize) + CONTROL_SIZE * i, capacity: size, data: [data0, data1], lock: { key: 0, id: NO_LOCK } }
    }),
    size: end
  }
}

function encodeHeader ({ headerSize, entries, size }, mode) {
  const header = Buffer.alloc(headerSize)
  MAGIC.copy(header, 0)
  header.writeUInt32LE(LAYOUT_VERSION, 8)
  header.writeUInt32LE(BYTE_ORDER, 12)
  header.writeUInt32LE(headerSize, 16)
  header.writeUInt32LE(entries.length, 20)
  header.writeBigUInt64LE(BigInt(size), 24)
  header.writeBigUInt64LE(BigInt(Date.now()), 32)
  header.writeUInt32LE(process.pid, 40)
  header.writeUInt32LE(mode, 44)
  entries.forEach(({ name, control, capacity, data, lock }, i) => {
    const at = HEADER_SIZE + ENTRY_SIZE * i
    header.write(name, at, NAME_SIZE, 'utf8')
    header.writeBigUInt64LE(BigInt(control), at + 32)
    header.writeBigUInt64LE(BigInt(capacity), at + 40)
    header.writeBigUInt64LE(BigInt(data[0]), at + 48)
    header.writeBigUInt64LE(BigInt(data[1]), at + 56)
    header.writeInt32LE(lock.key, at + 64)
    header.writeInt32LE(lock.id, at + 68)
  })
  header.writeUInt32LE(crc32(header), 60)
  return header
}

/** Reads a u64 that must be a safe integer. */
function u64 (buffer, at) {
  const value = buffer.readBigUInt64LE(at)
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : Infinity
}

/** Checks a table read from a segment of `size` bytes; returns { mode, entries } or throws. */
function decodeHeader (key, size, read) {
  if (size < HEADER_SIZE) throw failure('ERR_SHM_NOT_SECTIONS', { key, size })
  const head = read(0, HEADER_SIZE)
  if (!head.subarray(0, 8).equals(MAGIC)) throw failure('ERR_SHM_NOT_SECTIONS', { key })
  const version = head.readUInt32LE(8)
  if (version !== LAYOUT_VERSION) {
    throw failure('ERR_SHM_LAYOUT_VERSION', { key, version, supported: LAYOUT_VERSION })
  }
  if (head.readUInt32LE(12) !== BYTE_ORDER) throw corrupt(key, 'byte order')
  const headerSize = head.readUInt32LE(16)
  const count = head.readUInt32LE(20)
  const laidOut = u64(head, 24)
  if (count < 1 || count > MAX_SECTIONS || headerSize !== HEADER_SIZE + ENTRY_SIZE * count) {
    throw corrupt(key, 'count', { count, headerSize })
  }
  if (laidOut > size || headerSize > laidOut) {
    throw corrupt(key, 'extent', { laidOut, size })
  }
  const header = read(0, headerSize)
  const stored = header.readUInt32LE(60)
  header.writeUInt32LE(0, 60)
  if (crc32(header) !== stored) throw corrupt(key, 'checksum')
  const names = new Set()
  const parts = []
  const entries = []
  for (let i = 0; i < count; i++) {
    const at = HEADER_SIZE + ENTRY_SIZE * i
    const raw = header.subarray(at, at + NAME_SIZE)
    const end = raw.indexOf(0)
    let name
    try {
      name = utf8.decode(end < 0 ? raw : raw.subarray(0, end))
    } catch {
      throw corrupt(key, 'name encoding', { index: i })
    }
    if (!name || names.has(name) || (end >= 0 && raw.subarray(end).some((b) => b !== 0))) {
      throw corrupt(key, 'name', { index: i })
    }
    names.add(name)
    const entry = {
      name,
      control: u64(header, at + 32),
      capacity: u64(header, at + 40),
      data: [u64(header, at + 48), u64(header, at + 56)],
      lock: { key: header.readInt32LE(at + 64), id: header.readInt32LE(at + 68) }
    }
    if (entry.control % 64 !== 0 || entry.data.some((d) => d % 64 !== 24) || entry.capacity < 1) {
      throw corrupt(key, 'alignment', { name })
    }
    parts.push([entry.control, CONTROL_SIZE], [entry.data[0], entry.capacity], [entry.data[1], entry.capacity])
    entries.push(entry)
  }
  parts.sort((a, b) => a[0] - b[0])
  let reached = headerSize
  for (const [start, length] of parts) {
    if (start < reached || start + length > laidOut) throw corrupt(key, 'overlap')
    reached = start + length
  }
  return { mode: head.readUInt32LE(44) & 0o777, entries }
}

// A table collected without close() gives back the claims taken through it.
const releaseOnCollect = new FinalizationRegistry((handle) => binding.sectionReleaseAll(handle))

/** Why a section's claim lock is not the one its table records ('foreign' or an errno name), or null. */
function lockProblem ({ lock }, owner) {
  return binding.sectionLockCheck(lock.id, lock.key, owner.uid, owner.cuid)
}

/** ERR_SHM_CORRUPT for a section whose claim lock is not its own. */
const lockCorrupt = (key, { name, lock }, why) => corrupt(key, 'lock', { name, lock, why })

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

function retiredError (key, retired, section) {
  return failure('ERR_SHM_TABLE_RETIRED', { key, retired, section })
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

  /** The committed version (0 before the first publish). */
  get version () { return this.#reading((handle) => binding.sectionVersion(handle, this.#where)) }

  /** Whether this object holds the section's claim. */
  get claimed () { return this.#claimed }

  /** sectionRead, with the section's name in ERR_SHM_READ_STARVED. */
  #read (handle, target) {
    try {
      return binding.sectionRead(handle, this.#where, target, this.#out)
    } catch (error) {
      if (error.code !== 'ERR_SHM_READ_STARVED') throw error
      throw failure(error.code, { key: this.#table.key, section: this.name, ms: READ_MAX_MS })
    }
  }

  /** { version, data }: a copy of the last complete payload. */
  read () {
    return this.#reading((handle) => {
      const data = this.#read(handle, undefined) // one call into the addon: a Buffer of exactly the payload
      return { version: this.#out[0], data }
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
    this.#reading((handle) => binding.sectionVersion(handle, this.#where)) // a closed or removed table throws at once; a replaced one is followed
    let timeout, signal, spin
    try {
      ({ timeout, signal, spin } = waitOptions(options))
    } catch (error) {
      return Promise.reject(error)
    }
    // The addon checks the timeout as given; after a spin or after following a replaced table, what is left of it.
    const deadline = typeof timeout === 'number' ? Date.now() + timeout : Infinity
    let first = true
    if (spin !== undefined && !signal?.aborted) {
      try { // checks sinceVersion, timeout and spin as sectionWait and waitSync do
        const spun = this.#reading((handle) => binding.sectionSpin(handle, this.#where, sinceVersion, timeout, spin))
        if (spun !== sinceVersion) return Promise.resolve(spun)
      } catch (error) {
        return Promise.reject(error)
      }
      first = false
    }
    let settle
    const promise = new Promise((resolve, reject) => { settle = { resolve, reject } })
    const cancel = () => binding.sectionWaitCancel(cancel.id)
    const finish = (how, value) => { signal?.removeEventListener('abort', cancel); settle[how](value) }
    // The addon checks sinceVersion and timeout, with waitSync's words, and
    // ends the wait at once when the version already differs.
    const start = () => {
      const left = first || deadline === Infinity ? timeout : Math.max(0, deadline - Date.now())
      first = false
      const id = binding.sectionWait(this.#open(), this.#where, sinceVersion, left, (version, retired) => {
        this.#waits.delete(id)
        if (signal?.aborted) return finish('reject', signal.reason)
        if (!retired || this.#table.closed) return finish('resolve', version)
        try {
          const after = this.version // follows, or throws
          if (after !== sinceVersion || Date.now() >= deadline) return finish('resolve', after)
          start()
        } catch (error) {
          finish('reject', error)
        }
      })
      cancel.id = id
      this.#waits.add(id)
    }
    try {
      start()
    } catch (error) {
      return Promise.reject(error)
    }
    if (signal?.aborted) cancel() // a rejection, as for a later abort
    else signal?.addEventListener('abort', cancel, { once: true })
    return promise
  }

  /**
   * Blocks this thread until the version differs from sinceVersion or the
   * timeout (ms) passes: waitSync(since, timeoutMs) or waitSync(since, { timeout, spin }),
   * spin in µs of checking in a tight loop before sleeping.
   */
  waitSync (sinceVersion, options) {
    const { timeout, spin } = typeof options === 'object' && options !== null ? options : { timeout: options }
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
        writer: binding.sectionClaimant(handle, this.#where),
        lastWriterPid,
        publishedAt: version ? new Date(publishedUs / 1000) : null
      }
    })
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

/** Checks a layout ({ mode, sections }) as create and apply take it. */
function checkLayout (key, { mode = 0o644, sections } = {}) {
  if (key === 0) {
    throw failure('ERR_OUT_OF_RANGE', { argument: 'key' })
  }
  if (!Array.isArray(sections) || sections.length === 0 || sections.length > MAX_SECTIONS) {
    throw failure('ERR_INVALID_ARG_TYPE', { max: MAX_SECTIONS })
  }
  const seen = new Set()
  for (const { name, size } of sections) {
    // A lone surrogate would be written as U+FFFD: the table would not hold the name given.
    if (typeof name !== 'string' || !name || Buffer.byteLength(name) > NAME_SIZE || name.includes('\0') || seen.has(name) || Buffer.from(name).toString() !== name) {
      throw failure('ERR_INVALID_ARG_VALUE', { name, max: NAME_SIZE })
    }
    if (!Number.isSafeInteger(size) || size < 1) {
      throw failure('ERR_OUT_OF_RANGE', { argument: 'size', name, size })
    }
    seen.add(name)
  }
  return { mode: mode & 0o777, sections }
}

/** A new claim lock at a free key nobody can guess; returns { key, id }. */
function createLock (mode) {
  for (;;) {
    const key = crypto.randomInt(1, 0x7fffffff)
    try {
      const id = binding.sectionLockCreate(key, mode)
      /* c8 ignore next -- Windows has no claim locks (NO_LOCK): tested by the Windows C tests under Wine */
      return { key: id === NO_LOCK ? 0 : key, id }
    } catch (error) {
      if (error.code !== 'EEXIST') throw error // taken: another key
    }
  }
}

/**
 * Makes a table: the segment (it must not exist) and one claim lock per
 * section, recorded in the table; writes the carried-over payloads, then the
 * header, its magic last, so that no one attaches a half-made table.
 */
function make (key, { mode, sections }, carried = new Map()) {
  const plan = layout(sections)
  const segment = open(key, 'n', mode, plan.size, 'sections.create')
  const locks = []
  try {
    for (const entry of plan.entries) {
      entry.lock = createLock(mode)
      if (entry.lock.id !== NO_LOCK) locks.push(entry.lock.id)
    }
    for (const entry of plan.entries) {
      const last = carried.get(entry.name)
      if (last && last.data.length <= entry.capacity) writeCarried(segment, entry, last)
    }
    const header = encodeHeader(plan, mode)
    segment.write(header.subarray(8), 8)
    segment.write(header.subarray(0, 8), 0)
    return new SectionTable(segment, { mode, entries: plan.entries })
  } catch (error) {
    for (const id of locks) binding.sectionLockRemove(id)
    segment.delete()
    segment.close()
    throw error
  }
}

/** A carried-over payload: slot 0 holds it, committed with its old version. */
function writeCarried (segment, entry, { version, data, publishedUs, pid }) {
  const slot = Buffer.alloc(64)
  slot.writeBigUInt64LE(BigInt(version), 8)
  slot.writeBigUInt64LE(BigInt(data.length), 16)
  slot.writeBigUInt64LE(BigInt(publishedUs), 24)
  slot.writeUInt32LE(pid, 32)
  segment.write(data, entry.data[0])
  segment.write(slot, entry.control + 64)
  const commit = Buffer.alloc(8)
  commit.writeBigUInt64LE(BigInt(version) * 2n)
  segment.write(commit, entry.control)
}

/**
 * The central manager's call: creates the segment (it must not exist),
 * writes the table and returns it attached read-write.
 */
function create (key, layoutOptions) {
  return make(key, checkLayout(key, layoutOptions))
}

/** Attaches to a section table by key; readOnly attaches with 'a'. */
function attach (key, { readOnly = false } = {}) {
  return attachOnce(key, readOnly)
}

/**
 * Retires every section of a table attached read-write (how: 'replaced' or
 * 'removed'): waiters wake, readers and writers notice. rooms[i] receives the
 * last payload of section i (empty rooms take none). Returns the payloads
 * taken, by name.
 */
function retire (table, how, rooms) {
  const last = new Map()
  const out = new Float64Array(4)
  const handle = handleOf(segmentOf(table))
  table.sections.forEach((section, i) => {
    const where = new Float64Array([section.offsets.control, ...section.offsets.data, section.capacity])
    const copied = binding.sectionRetire(handle, where, how === 'removed' ? 2 : 1, rooms[i], out)
    if (copied && out[0] > 0) last.set(section.name, { version: out[0], data: rooms[i].subarray(0, out[1]), publishedUs: out[2], pid: out[3] })
  })
  return last
}

/**
 * Takes a table from its key (IPC_RMID: it goes at its last detach), then
 * retires it, then removes the claim locks it owns. Retired tables are never
 * at their key, so a control block that says "retired" in the table at the
 * key is damage. Returns the ids removed and the last payloads (a removal
 * keeps none). What can fail for want of memory is had before anything changes.
 */
function destroy (table, how) {
  const segment = segmentOf(table)
  const owner = segment.stat()
  const mine = table.sections.filter(({ entry }) => entry.lock.id !== NO_LOCK && lockProblem(entry, owner) === null)
  const rooms = table.sections.map(({ capacity }) => Buffer.alloc(how === 'replaced' ? capacity : 0))
  segment.delete()
  const last = retire(table, how, rooms)
  for (const { entry } of mine) binding.sectionLockRemove(entry.lock.id)
  return { segment: segment.id, locks: mine.map(({ entry }) => entry.lock.id), last }
}

/**
 * Deletes a section table: retires it (every process using it notices), then
 * removes its segment and the claim locks it owns. A segment that is not a
 * section table is refused (ERR_SHM_NOT_SECTIONS) and nothing is deleted.
 * Returns { segment, locks }: the ids removed.
 */
function remove (key) {
  const table = attachOnce(key, false, false)
  try {
    const { segment, locks } = destroy(table, 'removed')
    return { segment, locks }
  } finally {
    table.close()
  }
}

/** Whether a table holds exactly this layout, with every claim lock its own. */
function sameLayout (table, { mode, sections }) {
  const owner = segmentOf(table).stat()
  return table.mode === mode && table.sections.length === sections.length &&
    sections.every(({ name, size }, i) => table.sections[i].name === name && table.sections[i].capacity === size) &&
    table.sections.every(({ entry }) => lockProblem(entry, owner) === null)
}

/**
 * The central manager, live: makes the table at key hold this layout. Creates
 * it if missing; leaves it if it already holds the layout; otherwise retires
 * the old table (every reader, writer and waiter notices at once), removes it
 * with its claim locks, and creates the new one carrying over the last
 * payload (with its version) of every section whose name survives and whose
 * new capacity holds it. A segment that is not a section table is refused.
 * Returns { action: 'created' | 'unchanged' | 'replaced', table, carried, dropped }.
 */
function apply (key, layoutOptions) {
  const wanted = checkLayout(key, layoutOptions)
  let old
  try {
    old = attachOnce(key, false, false)
  } catch (error) {
    if (error.code !== 'ENOENT') throw error
    return { action: 'created', table: make(key, wanted), carried: [], dropped: [] }
  }
  if (sameLayout(old, wanted)) return { action: 'unchanged', table: old, carried: [], dropped: [] }
  let last
  try {
    last = destroy(old, 'replaced').last
  } finally {
    old.close()
  }
  const table = make(key, wanted, last)
  const carried = []
  const dropped = []
  for (const [name, { version, data }] of last) {
    const section = table.sections.find((s) => s.name === name)
    const row = { name, version, length: data.length }
    if (section && data.length <= section.capacity) carried.push(row)
    else dropped.push({ ...row, why: section ? `it needs ${data.length} bytes; the new capacity is ${section.capacity}` : 'no section of that name now' })
  }
  return { action: 'replaced', table, carried, dropped }
}

/**
 * How wait() sleeps in this thread: 'io_uring' (the event loop sleeps on the
 * futex itself: Linux 6.7+, where io_uring is allowed) or 'threads' (helper
 * threads; also when NODEJS_SHM_WAIT_THREADS=1).
 */
const waitMechanism = () => binding.waitMechanism()

module.exports = { create, attach, apply, remove, waitMechanism }
