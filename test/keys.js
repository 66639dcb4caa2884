'use strict'
/*
 * keys.js: the System V keys the tests and benchmarks make, the kernel's
 * tables of System V objects, and their removal. It needs no addon, so the
 * benchmarks and test/c.test.js use it as the tests do.
 *
 * Each process owns 256 keys, 0xTTpppp00-0xTTppppff with pppp = pid & 0xffff,
 * so that test files tap runs in parallel, and a benchmark beside them, never
 * share a key. TT says who makes them (RANGES).
 */
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')

const RANGES = {
  cTests: 0x6c, // test/c/harness.c
  matrix: 0x6d, // scripts/node-matrix.js's install check (pid & 0xffffff, one key)
  tests: 0x6e, // test/helpers.js
  bench: 0x6f // bench/: segments and section tables
}

/** A process's 256 keys in a range: { base, key(n), owns(key) }. */
function keyRange (top, pid = process.pid) {
  const base = ((top << 24) | ((pid & 0xffff) << 8)) | 0
  return {
    base,
    key (n) {
      if (!Number.isInteger(n) || n < 0 || n > 255) throw new RangeError(`key index ${n}`)
      return base + n
    },
    owns: (key) => ((key >>> 0) & 0xffffff00) === (base >>> 0)
  }
}

/*
 * Rows of /proc/sysvipc/shm or /proc/sysvipc/sem, with the kernel's column
 * names and numbers as numbers (key signed, as the kernel prints it; perms
 * octal). It does not use lib/introspect.js on purpose: the tests hold list()
 * and stat() to it.
 */
function sysvipc (kind) {
  const [head, ...rows] = fs.readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n')
  const names = head.trim().split(/\s+/)
  return rows.map((row) => {
    const cells = row.trim().split(/\s+/)
    return Object.fromEntries(names.map((name, i) => [name, name === 'perms' ? parseInt(cells[i], 8) : Number(cells[i])]))
  })
}

/** Removes a segment ('-m') or semaphore set ('-s') by id, quietly when it is gone. */
const ipcrm = (flag, id) => spawnSync('ipcrm', [flag, String(id)], { stdio: 'ignore' })

/** Removes every segment, and with semaphores: true every semaphore set, with a key the range owns. */
function removeOwned (range, { semaphores = false } = {}) {
  for (const s of sysvipc('shm')) if (s.key !== 0 && range.owns(s.key) && !removedTable(s.key)) ipcrm('-m', s.shmid)
  if (!semaphores) return
  for (const s of sysvipc('sem')) if (s.key !== 0 && range.owns(s.key)) ipcrm('-s', s.semid)
}

/**
 * Removes the section table at key with its claim locks, which sit at keys
 * nobody can guess (so no range owns them); false if it is not a table.
 */
function removedTable (key) {
  try {
    require('..').sections.remove(key)
    return true
  } catch {
    return false
  }
}

module.exports = { RANGES, keyRange, sysvipc, ipcrm, removeOwned }
