'use strict'
// What the system knows of segments: stat by key, the list of all, ftok, remove.

const fs = require('node:fs')
const binding = require('./binding')
const { failure } = require('./errors')

/** The kernel's description of the segment with this key. */
function stat (key) {
  return binding.statKeySHM(key)
}

/** Marks the segment with this key for deletion, without attaching to it. */
function remove (key) {
  binding.removeKeySHM(key)
}

/** The key PHP's ftok() and C's ftok(3) give for a path and a one-character project id. */
function ftok (path, projectId) {
  return binding.ftokSHM(path, projectId)
}

const date = (seconds) => (seconds === 0 ? null : new Date(seconds * 1000))
const SHM_DEST = 0o1000

/** One row of /proc/sysvipc/shm, in the shape stat() returns. */
function procRow (names, line) {
  const cell = {}
  const values = line.trim().split(/\s+/)
  names.forEach((name, i) => { cell[name] = values[i] })
  const perms = parseInt(cell.perms, 8)
  return {
    key: Number(cell.key),
    id: Number(cell.shmid),
    size: Number(cell.size),
    mode: perms & 0o777,
    uid: Number(cell.uid),
    gid: Number(cell.gid),
    cuid: Number(cell.cuid),
    cgid: Number(cell.cgid),
    cpid: Number(cell.cpid),
    lpid: Number(cell.lpid),
    attachments: Number(cell.nattch),
    atime: date(Number(cell.atime)),
    dtime: date(Number(cell.dtime)),
    ctime: date(Number(cell.ctime)),
    markedForDeletion: (perms & SHM_DEST) !== 0
  }
}

/**
 * Every System V segment this user can see. Linux lists them in
 * /proc/sysvipc/shm; other systems have no portable way to enumerate them.
 */
function list (procFile = '/proc/sysvipc/shm') {
  let text
  try {
    text = fs.readFileSync(procFile, 'latin1')
  } catch (cause) {
    throw failure('ERR_SHM_UNSUPPORTED', { procFile }, cause)
  }
  const [head, ...lines] = text.trim().split('\n')
  const names = head.trim().split(/\s+/)
  return lines.map((line) => procRow(names, line))
}

module.exports = { stat, remove, ftok, list }
