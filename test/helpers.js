'use strict'
// Shared by the tests: unique keys, cleanup of every segment a test makes,
// the kernel's view of segments, and children run as PHP or as another user.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { isDeepStrictEqual } = require('node:util')
const { RANGES, keyRange, sysvipc, ipcrm, removeOwned } = require('./keys')

const ROOT = path.join(__dirname, '..')
const ADDON = path.join(ROOT, 'build', 'Release', 'shm.node')
const shm = require(ADDON)

// Keys: tap runs test files in parallel, so each file (process) gets its own
// 256 keys, 0x6Exxxx00-0x6Exxxxff, made from its pid: keyFor(0..255).
const KEYS = keyRange(RANGES.tests)
const keyFor = KEYS.key

/** Rows of /proc/sysvipc/shm, with numbers as numbers (key signed, as the kernel prints it). */
const segments = () => sysvipc('shm')
/** The kernel's row for a key, or undefined. */
const segmentByKey = (key) => segments().find((s) => s.key === (key | 0))
/** The kernel's row for a shmid, or undefined. */
const segmentById = (id) => segments().find((s) => s.shmid === id)

/** How many System V segments a process has mapped (its /proc/<pid>/maps lines for /SYSV...). */
function sysvMappings (pid = 'self') {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((line) => / \/SYSV[0-9a-f]{8}\b/.test(line)).length
}

/** Removes a segment by shmid (ipcrm), ignoring one that is already gone. */
const removeId = (id) => ipcrm('-m', id)

/**
 * Call at the top of a test file: every segment with one of this file's keys
 * is removed when the file's tests end, also when they fail.
 */
function cleanupAfter (t) {
  const remove = () => removeOwned(KEYS)
  remove()
  t.teardown(remove)
  process.once('exit', remove)
}

/** Rows of /proc/sysvipc/sem (semaphore sets), with numbers as numbers. */
const semaphores = () => sysvipc('sem')

/** The kernel's row for the semaphore set with this key (a section table's claim lock), or undefined. */
const semaphoreByKey = (key) => semaphores().find((s) => s.key === (key | 0))

/** Removes the section tables at this process's keys with their claim locks (which have random keys). */
function removeOurTables () {
  for (const seg of segments()) {
    if (seg.key === 0 || !KEYS.owns(seg.key)) continue
    try {
      require(ROOT).sections.remove(seg.key)
    } catch {} // not a table: removeOwned removes it
  }
}

/** cleanupAfter(t) for section tables: the tables with their claim locks, then other segments and semaphore sets with this file's keys. */
function cleanupTablesAfter (t) {
  const remove = () => { removeOurTables(); removeOwned(KEYS, { semaphores: true }) }
  remove()
  t.teardown(remove)
  process.once('exit', remove)
}

/** shm.open(...args) through the package (require('..')), closed when the test ends. */
function openSegment (t, ...args) {
  const seg = require(ROOT).open(...args)
  t.teardown(() => seg.close())
  return seg
}

/** openSHM() in this process, asserted to succeed; the handle is closed when the test ends. */
function openHandle (t, key, flags, mode, size) {
  const handle = shm.openSHM(key, flags, mode, size)
  t.ok(handle >= 1, `openSHM(${key}, '${flags}') in this process`, { error: shm.lastErrorSHM() })
  t.teardown(() => shm.closeSHM(handle))
  return handle
}

/** Runs PHP code (php -r) or a script file; returns { status, stdout, stderr }. */
function php (args, options = {}) {
  const result = spawnSync('php', args, { encoding: 'utf8', ...options })
  if (result.error) throw result.error
  return result
}

/** The PHP CLI with shmop, or a thrown Error saying what to install. */
function requirePHP () {
  const probe = spawnSync('php', ['-r', 'echo function_exists("shmop_open") ? "ok" : "no";'], { encoding: 'utf8' })
  if (probe.error || probe.stdout !== 'ok') {
    throw new Error('these tests need the PHP CLI with shmop: apt-get install -y php-cli')
  }
}

/*
 * Children under another uid. The checkout may sit where that user cannot read
 * (CI clones under /root), so the child gets copies in a world-readable temp
 * folder: the addon and whatever files the test names.
 */
const NOBODY = 65534
function unprivileged (t, files = []) {
  if (process.getuid() !== 0) return { uid: process.getuid(), gid: process.getgid(), dir: ROOT, asRoot: false }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-'))
  fs.chmodSync(dir, 0o755)
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const file of [ADDON, ...files]) fs.copyFileSync(file, path.join(dir, path.basename(file)))
  for (const name of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, name), 0o755)
  return { uid: NOBODY, gid: NOBODY, dir, asRoot: true }
}

/*
 * unprivileged(t), with the package itself (index.js, lib/, bin/, the addon
 * in build/Release/ and node-gyp-build) and the named files copied to their paths under the temp
 * folder, as in the checkout: a copied fixture's require('../..') loads the copy.
 * `env` is this process's environment without NODE_OPTIONS, where tap puts
 * loaders from the checkout that the other user may not be able to read.
 */
function unprivilegedPackage (t, files = []) {
  const { NODE_OPTIONS, ...env } = process.env
  const child = { ...unprivileged(t), env }
  if (!child.asRoot) return child
  // The package's own files and its runtime dependency that loads the addon.
  const own = ['lib', 'bin', 'node_modules/node-gyp-build'].flatMap((dir) => fs.readdirSync(path.join(ROOT, dir)).map((name) => path.join(dir, name)))
  for (const file of ['index.js', ...own, ADDON, ...files].map((file) => path.relative(ROOT, path.resolve(ROOT, file)))) {
    fs.mkdirSync(path.join(child.dir, path.dirname(file)), { recursive: true })
    for (let dir = path.dirname(file); dir !== '.'; dir = path.dirname(dir)) fs.chmodSync(path.join(child.dir, dir), 0o755)
    fs.copyFileSync(path.join(ROOT, file), path.join(child.dir, file))
    fs.chmodSync(path.join(child.dir, file), 0o755)
  }
  return child
}

/*
 * Runs fn with the effective uid and gid of nobody, then returns to root. Only
 * the effective ids change, so this process still reads the checkout (and its
 * coverage counts); the kernel checks IPC permissions against them, and root's
 * capabilities are off while the effective uid is not 0.
 */
function asNobody (fn) {
  if (process.getuid() !== 0) throw new Error('acting as another user needs root')
  process.setegid(NOBODY)
  process.seteuid(NOBODY)
  try {
    return fn()
  } finally {
    process.seteuid(0)
    process.setegid(0)
  }
}

/** The middle value of an odd count of numbers (the upper middle of an even count). */
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/**
 * The first value of read() that equals want (deeply), or its last value after
 * ms: for counts another thread keeps, which may pass through other values on
 * the way (a sleeper un-counts and re-counts itself at every wake). It returns
 * the snapshot it compared, never a fresh read, which could land in such a
 * passage.
 */
async function settles (read, want, ms = 5000) {
  for (const started = Date.now(); ; await new Promise((resolve) => setTimeout(resolve, 5))) {
    const value = read()
    if (isDeepStrictEqual(value, want) || Date.now() - started >= ms) return value
  }
}

module.exports = {
  settles,
  ROOT,
  ADDON,
  shm,
  keyFor,
  segments,
  segmentByKey,
  segmentById,
  sysvMappings,
  removeId,
  cleanupAfter,
  semaphores,
  semaphoreByKey,
  cleanupTablesAfter,
  openSegment,
  openHandle,
  php,
  requirePHP,
  unprivileged,
  unprivilegedPackage,
  asNobody,
  NOBODY,
  median
}
