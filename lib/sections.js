'use strict'
// Sections: one segment cut into named sections, each with one writer at a
// time and any number of readers (the "simple SHM manager" of the original
// TODO). The layout is specified byte by byte in docs/sections.md; this file
// writes and checks the header and table, and src/sections.c does the rest.

const binding = require('./binding')
const { open, handleOf } = require('./segment')
const { failure } = require('./errors')
const crc32 = require('./crc32')

const MAGIC = Buffer.from('NJSHMSEC', 'latin1')
const LAYOUT_VERSION = 1
const BYTE_ORDER = 0x01020304
const HEADER_SIZE = 64
const ENTRY_SIZE = 64
const NAME_SIZE = 32
const CONTROL_SIZE = 192
const MAX_SECTIONS = 65536
// ignoreBOM: a name's leading U+FEFF is part of it, as PHP and the creator see it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

const align64 = (n) => Math.ceil(n / 64) * 64
// Data areas start 24 bytes past a 64-byte boundary: where PHP's strings keep
// their bytes, so PHP's copies of whole payloads avoid memcpy's slow case.
const dataStart = (n) => align64(n) + 24

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
      return { name, control: align64(headerSize) + CONTROL_SIZE * i, capacity: size, data: [data0, data1] }
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
  entries.forEach(({ name, control, capacity, data }, i) => {
    const at = HEADER_SIZE + ENTRY_SIZE * i
    header.write(name, at, NAME_SIZE, 'utf8')
    header.writeBigUInt64LE(BigInt(control), at + 32)
    header.writeBigUInt64LE(BigInt(capacity), at + 40)
    header.writeBigUInt64LE(BigInt(data[0]), at + 48)
    header.writeBigUInt64LE(BigInt(data[1]), at + 56)
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
    const entry = { name, control: u64(header, at + 32), capacity: u64(header, at + 40), data: [u64(header, at + 48), u64(header, at + 56)] }
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

class SectionTable {
  #segment
  #sections = new Map()
  #lock = undefined

  constructor (segment, { mode, entries }) {
    this.#segment = segment
    this.mode = mode
    for (const entry of entries) this.#sections.set(entry.name, new Section(this, segment, entry))
    this.key = segment.key
    this.readOnly = segment.readOnly
    this.names = [...this.#sections.keys()]
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

  /** The claim lock (a semaphore set shared with PHP, with the table's mode), opened on first use. */
  lock () {
    this.#lock ??= binding.sectionLockOpen(this.key, this.mode)
    return this.#lock
  }

  /** Releases the claims held through this table, cancels its waits, and detaches. */
  close () {
    if (this.#segment.closed) return
    try {
      for (const section of this.#sections.values()) section.detach()
      for (const section of this.#sections.values()) section.release()
    } finally {
      this.#segment.close() // also when a release fails (the table was removed: its claim lock is gone)
    }
  }

  [Symbol.dispose] () { this.close() }
}

class Section {
  #table
  #segment
  #handle
  #where
  #claimed = false
  #waits = new Set()
  #out = new Float64Array(4)

  constructor (table, segment, entry) {
    this.#table = table
    this.#segment = segment
    this.#handle = handleOf(segment)
    this.#where = new Float64Array([entry.control, entry.data[0], entry.data[1], entry.capacity])
    this.name = entry.name
    this.capacity = entry.capacity
    this.offsets = { control: entry.control, data: entry.data }
  }

  /** The segment's handle, or ERR_SHM_CLOSED. */
  #open () {
    if (this.#segment.closed) throw failure('ERR_SHM_CLOSED', { key: this.#table.key })
    return this.#handle
  }

  /** The committed version (0 before the first publish). */
  get version () { return binding.sectionVersion(this.#open(), this.#where) }

  /** Whether this object holds the section's claim. */
  get claimed () { return this.#claimed }

  /** { version, data }: a copy of the last complete payload. */
  read () {
    const handle = this.#open()
    let data = Buffer.alloc(0)
    while (!binding.sectionRead(handle, this.#where, data, this.#out)) data = Buffer.allocUnsafe(this.#out[1])
    // A later version may be shorter than the one the buffer was sized for.
    return { version: this.#out[0], data: data.subarray(0, this.#out[1]) }
  }

  /** Copies the last complete payload into buffer; returns { version, length }. */
  readInto (buffer) {
    if (!binding.sectionRead(this.#open(), this.#where, buffer, this.#out)) {
      const [version, length] = this.#out
      throw failure('ERR_OUT_OF_RANGE', { argument: 'buffer', room: buffer.byteLength, version, length })
    }
    return { version: this.#out[0], length: this.#out[1] }
  }

  /** Becomes the section's single writer, or ERR_SHM_SECTION_BUSY. */
  claim () {
    if (this.#claimed) return
    const handle = this.#open()
    // Before lock(): a read-only table must not create the claim lock (as this user) on its way to failing.
    if (this.#table.readOnly) throw failure('ERR_SHM_READ_ONLY', { operation: 'claim' })
    const holder = binding.sectionClaim(handle, this.#where, this.#table.lock(), true)
    if (holder !== 0) {
      throw failure('ERR_SHM_SECTION_BUSY', { key: this.#table.key, section: this.name, pid: holder })
    }
    this.#claimed = true
  }

  /** Stops being the section's writer. */
  release () {
    if (!this.#claimed) return
    this.#claimed = false
    binding.sectionRelease(this.#open(), this.#where, this.#table.lock())
  }

  /** Publishes data (Buffer, TypedArray, DataView or string) as the next version; returns it. */
  publish (data) {
    const handle = this.#open()
    if (!this.#claimed) {
      throw failure('ERR_SHM_NOT_WRITER', { section: this.name })
    }
    return binding.sectionPublish(handle, this.#where, data)
  }

  /**
   * Resolves with the version once it differs from sinceVersion, or with the
   * same version when timeout (ms) passes; rejects with signal.reason on abort.
   * Waits on another thread: the event loop stays free.
   */
  wait (sinceVersion, { timeout, signal } = {}) {
    if (signal?.aborted) return Promise.reject(signal.reason) // a rejection, as for a later abort
    const handle = this.#open()
    const now = binding.sectionVersion(handle, this.#where)
    if (now !== sinceVersion) return Promise.resolve(now)
    return new Promise((resolve, reject) => {
      const id = binding.sectionWait(handle, this.#where, sinceVersion, timeout, (version) => {
        this.#waits.delete(id)
        signal?.removeEventListener('abort', cancel)
        if (signal?.aborted) reject(signal.reason)
        else resolve(version)
      })
      const cancel = () => binding.sectionWaitCancel(id)
      this.#waits.add(id)
      signal?.addEventListener('abort', cancel, { once: true })
    })
  }

  /** Blocks this thread until the version differs from sinceVersion or timeoutMs passes. */
  waitSync (sinceVersion, timeoutMs) {
    return binding.sectionWaitSync(this.#open(), this.#where, sinceVersion, timeoutMs)
  }

  /** What a table listing shows: versions, length, writer, last publish. */
  info () {
    const handle = this.#open()
    binding.sectionRead(handle, this.#where, Buffer.alloc(0), this.#out)
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
  }

  /** On table close: ends pending waits (before any release, which may fail). */
  detach () {
    for (const id of this.#waits) binding.sectionWaitCancel(id)
  }
}

/**
 * The central manager's call: creates the segment (it must not exist),
 * writes the table and returns it attached read-write.
 */
function create (key, { mode = 0o644, sections } = {}) {
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
  const plan = layout(sections)
  const segment = open(key, 'n', mode, plan.size)
  segment.write(encodeHeader(plan, mode & 0o777), 0)
  return new SectionTable(segment, { mode: mode & 0o777, entries: plan.entries })
}

/** Attaches to a section table by key; readOnly attaches with 'a'. */
function attach (key, { readOnly = false } = {}) {
  const segment = open(key, readOnly ? 'a' : 'w')
  try {
    return new SectionTable(segment, decodeHeader(segment.key, segment.size, (start, length) => segment.read(start, length)))
  } catch (error) {
    segment.close()
    throw error
  }
}

/** Deletes a section table: its segment and its claim lock. */
function remove (key) {
  binding.removeKeySHM(key)
  try {
    binding.sectionLockRemove(key)
  } catch (error) {
    if (error.code !== 'ENOENT') throw error // a table never claimed has no lock
  }
}

/**
 * How wait() sleeps in this thread: 'io_uring' (the event loop sleeps on the
 * futex itself: Linux 6.7+, where io_uring is allowed) or 'threads' (helper
 * threads; also when NODEJS_SHM_WAIT_THREADS=1).
 */
const waitMechanism = () => binding.waitMechanism()

module.exports = { create, attach, remove, waitMechanism }
