'use strict'
/*
 * shm.js: the addon, the benchmark's keys and segments, and page-aligned memory.
 *
 * Keys: the bench range of test/keys.js (0x6Fpppp00-0x6Fppppff). A segment is
 * marked for deletion as soon as it is open (the mapping stays usable), so
 * none outlives this process, even one killed with SIGKILL; on exit, Ctrl-C
 * and uncaught exceptions every handle is closed and every segment and
 * semaphore set still carrying one of our keys is removed.
 */
const path = require('node:path')
const { RANGES, keyRange, removeOwned } = require('../test/keys')

const ROOT = path.join(__dirname, '..')
const KEYS = keyRange(RANGES.bench)

let addonFile = path.join(ROOT, 'lib', 'binding.js')
let addon = null
/** --addon: benchmark another build (before/after a change). */
function useAddon (file) { addonFile = path.resolve(file) }

function load () {
  if (addon) return addon
  try {
    addon = require(addonFile)
  } catch (cause) {
    throw new Error(`Cannot load the addon (${addonFile}); build it first with \`npm run build\`: ${cause.message}`, { cause })
  }
  hookCleanup()
  return addon
}

let nextKey = 0
/** A fresh key of ours (256 per process). */
function newKey () {
  hookCleanup()
  if (nextKey > 255) throw new Error('bench: out of keys (256 per process)')
  return KEYS.key(nextKey++)
}

const open = new Set()
/**
 * Creates a segment of size bytes (mode 'n', 0600); returns { handle, key }.
 * It is marked for deletion at once unless keep is true (a later
 * cross-process benchmark needs the key to stay findable until cleanup()).
 */
function segment (size, { keep = false } = {}) {
  const shm = load()
  const key = newKey()
  const handle = shm.openSHM(key, 'n', 0o600, size)
  if (!handle) throw shm.lastErrorSHM()
  open.add(handle)
  if (!keep && !shm.deleteSHM(handle)) throw shm.lastErrorSHM()
  return { handle, key }
}

/** Closes every handle and removes every segment and semaphore set with one of our keys. */
function cleanup () {
  for (const handle of open) {
    try {
      addon.deleteSHM(handle)
      addon.closeSHM(handle)
    } catch {}
  }
  open.clear()
  try { removeOwned(KEYS, { semaphores: true }) } catch {}
}

let hooked = false
function hookCleanup () {
  if (hooked) return
  hooked = true
  process.once('exit', cleanup)
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
    process.once(signal, () => {
      cleanup()
      process.stderr.write(`\nbench: interrupted (${signal}); segments removed\n`)
      process.exit(128 + number) // 'exit' listeners (peers/children.js's cleanup) still run
    })
  }
  process.once('uncaughtException', (error) => {
    cleanup()
    process.stderr.write(`bench: ${error && error.stack ? error.stack : error}\n`)
    process.exit(1)
  })
}

/*
 * Page-aligned memory: V8 maps a WebAssembly.Memory at a page boundary, so
 * views into one have a known page offset, which an ordinary Buffer does not;
 * the groups need that to put (dst - src) mod 4096 where they want it.
 */
const PAGE = 4096
let pool = null
let poolUsed = 0
function aligned (bytes, pageOffset = 0) {
  const need = Math.ceil((bytes + pageOffset) / PAGE) * PAGE
  if (!pool || poolUsed + need > pool.buffer.byteLength) {
    const pages = Math.max(32, Math.ceil(need / 65536)) // 64 KB wasm pages: 2 MB or more
    pool = new WebAssembly.Memory({ initial: pages, maximum: pages })
    poolUsed = 0
  }
  const view = Buffer.from(pool.buffer, poolUsed + pageOffset, bytes)
  poolUsed += need
  return view.fill(0x5a)
}

module.exports = {
  get addon () { return load() },
  get addonFile () { return addon ? addonFile : null },
  useAddon,
  hookCleanup,
  newKey,
  segment,
  cleanup,
  aligned
}
