'use strict'
// Sections: one segment cut into named sections, each with one writer at a
// time and any number of readers (the "simple SHM manager" of the original
// TODO). This file is the manager's side: create, apply, remove. The layout
// is specified byte by byte in docs/sections.md (lib/section-layout.js); a
// table and its sections are lib/section-table.js and lib/section.js; the
// protocol itself is src/sections.c.

const binding = require('./binding')
const { open, handleOf } = require('./segment')
const { NO_LOCK, layout, encodeHeader, checkLayout, writeCarried } = require('./section-layout')
const { createLock, lockProblem } = require('./claim-locks')
const { SectionTable, attachOnce, segmentOf } = require('./section-table')

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
