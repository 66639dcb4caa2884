'use strict'
// The bytes of a section table (docs/sections.md, sections 1 and 2): where the
// sections lie, the header and table a manager writes, and the checks every
// process makes before it trusts them. Pure: no system call here.

const { failure } = require('./errors')
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

module.exports = { NO_LOCK, layout, encodeHeader, decodeHeader, checkLayout, writeCarried, corrupt }
