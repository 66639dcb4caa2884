'use strict'
/*
 * shm.js: the addon, the benchmark's own segments, and page-aligned memory.
 *
 * Keys: 0x6F000000 | (pid & 0xffff) << 8 | n, a range no test uses (the tests
 * use 0x6E......). Every segment is marked for deletion as soon as it is open
 * (IPC_RMID: the mapping stays usable, the key is freed at once), so none can
 * outlive this process, even one killed with SIGKILL. On exit, Ctrl-C and
 * uncaught exceptions every handle is closed and any segment still carrying
 * one of these keys is removed.
 */
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')

/**
 * Loads the addon. Another engineer may be rebuilding it while the benchmark
 * starts, so a failed load is retried a few times before giving up.
 */
let addonPath = null // --addon: benchmark another build (before/after a change)
function useAddon (file) { addonPath = path.resolve(file) }

function loadAddon () {
  const candidates = addonPath ? [addonPath]
    : [path.join(ROOT, 'lib', 'binding.js'), path.join(ROOT, 'build', 'Release', 'shm.node')]
  let lastError
  for (let attempt = 0; attempt < 5; attempt++) {
    for (const file of candidates) {
      if (!fs.existsSync(file)) continue
      try {
        const addon = require(file)
        if (typeof addon.readSHM === 'function') {
          loaded = file
          return { addon, file }
        }
      } catch (error) {
        lastError = error
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000)
  }
  const error = new Error('Cannot load the addon; build it first with `npx node-gyp build`' +
    (lastError ? `: ${lastError.message}` : ''))
  error.cause = lastError
  throw error
}

const KEY_BASE = (0x6f000000 | ((process.pid & 0xffff) << 8)) | 0
const isOurKey = (key) => ((key >>> 0) & 0xffffff00) === (KEY_BASE >>> 0)

let addon
let loaded = null // the file the addon came from
const open = new Set()
let nextKey = 0
let hooked = false

/**
 * Creates a segment of size bytes (mode 'n', 0600) and returns its handle.
 * It is marked for deletion at once unless keep is true (a later cross-process
 * benchmark needs the key to stay findable until cleanup()).
 */
function segment (size, { keep = false } = {}) {
  if (!addon) addon = loadAddon().addon
  hookCleanup()
  if (nextKey > 255) throw new Error('bench/shm.js: out of keys (256 per process)')
  const key = KEY_BASE + nextKey++
  const handle = addon.openSHM(key, 'n', 0o600, size)
  if (!handle) throw addon.lastErrorSHM()
  open.add(handle)
  if (!keep && !addon.deleteSHM(handle)) throw addon.lastErrorSHM()
  return { handle, key }
}

/** Closes every handle and removes every segment that still has one of our keys. */
function cleanup () {
  for (const handle of open) {
    try {
      addon.deleteSHM(handle)
      addon.closeSHM(handle)
    } catch {}
  }
  open.clear()
  try {
    const rows = fs.readFileSync('/proc/sysvipc/shm', 'utf8').trim().split('\n').slice(1)
    for (const row of rows) {
      const [key, shmid] = row.trim().split(/\s+/).map(Number)
      if (key !== 0 && isOurKey(key)) spawnSync('ipcrm', ['-m', String(shmid)], { stdio: 'ignore' })
    }
  } catch {}
}

function hookCleanup () {
  if (hooked) return
  hooked = true
  process.once('exit', cleanup)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      cleanup()
      process.stderr.write(`\nbench: interrupted (${signal}); segments removed\n`)
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1))
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
 * views into one have a known page offset, which an ordinary Buffer (from
 * malloc) does not. The benchmark needs that to put (dst - src) mod 4096 where
 * it wants it. aligned(bytes, pageOffset) carves a Buffer out of a pool.
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
  view.fill(0x5a)
  return view
}

module.exports = {
  get addon () { return addon || (addon = loadAddon().addon) },
  get addonFile () { return loaded },
  loadAddon,
  useAddon,
  segment,
  cleanup,
  aligned,
  PAGE,
  KEY_BASE
}
