'use strict'
// Claim locks: one System V semaphore set per section, made by the manager
// with the table and recorded in it (docs/sections.md, section 5). Whether a
// lock is the one its table records is checked here.

const crypto = require('node:crypto')
const binding = require('./binding')
const { NO_LOCK, corrupt } = require('./section-layout')

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

/** Why a section's claim lock is not the one its table records ('foreign' or an errno name), or null. */
function lockProblem ({ lock }, owner) {
  return binding.sectionLockCheck(lock.id, lock.key, owner.uid, owner.cuid)
}

/** ERR_SHM_CORRUPT for a section whose claim lock is not its own. */
const lockCorrupt = (key, { name, lock }, why) => corrupt(key, 'lock', { name, lock, why })

module.exports = { createLock, lockProblem, lockCorrupt }
