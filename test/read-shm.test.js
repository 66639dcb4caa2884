'use strict'
// readSHM as require('nodejs-shm') makes it (lib/read-shm.js, the text the
// addon also embeds): its cache of segment sizes stays bounded, and a copy
// that cannot be allocated is an Error with a code, not a crash.
const t = require('tap')
const { spawnSync } = require('node:child_process')
const { constants } = require('node:buffer')
const shm = require('..')
const { keyFor, cleanupAfter, ROOT } = require('./helpers')

cleanupAfter(t)

t.test('more handles than the size cache keeps (4096) all read right', async (t) => {
  const key = keyFor(0)
  const first = shm.openSHM(key, 'n', 0o600, 64)
  t.teardown(() => shm.deleteSHM(first) && shm.closeSHM(first))
  shm.writeSHM(first, 'the same bytes', 0)
  const handles = Array.from({ length: 4100 }, () => shm.openSHM(key, 'a', 0, 0))
  t.teardown(() => handles.forEach((handle) => shm.closeSHM(handle)))
  t.notOk(handles.includes(0), 'every handle opened')
  const wrong = handles.filter((handle, i) => shm.readSHM(handle, 0, 14 - (i % 2)).toString() !== 'the same bytes'.slice(0, 14 - (i % 2)))
  t.same(wrong, [], 'each reads its bytes, first through the checks, then from the cache')
  t.same(handles.filter((handle) => shm.readSHM(handle, 4, 4).toString() !== 'same'), [], 'and again, after the cache was cleared')
})

t.test('a whole read of a segment larger than a Buffer is ERR_BUFFER_TOO_LARGE, also once its size is known', async (t) => {
  if (constants.MAX_LENGTH + 4096 > Number.MAX_SAFE_INTEGER) {
    // Node 22+: a Buffer may be as long as any segment the kernel allows, so no read is refused.
    const shmmax = Number(require('node:fs').readFileSync('/proc/sys/kernel/shmmax', 'utf8'))
    t.ok(Math.min(shmmax, Number.MAX_SAFE_INTEGER) <= constants.MAX_LENGTH, `every segment (shmmax ${shmmax}) fits in a Buffer of up to ${constants.MAX_LENGTH} bytes`)
    return
  }
  const size = constants.MAX_LENGTH + 4096
  // SHM_NORESERVE: no memory is set aside, none is touched (not under vm.overcommit_memory=2).
  const handle = shm.openSHM(keyFor(2), 'n', 0o10600, size)
  t.not(handle, 0, 'a segment larger than a Buffer', { error: shm.lastErrorSHM() })
  t.teardown(() => shm.deleteSHM(handle) && shm.closeSHM(handle))
  const tooLarge = { name: 'RangeError', code: 'ERR_BUFFER_TOO_LARGE', message: /^Cannot read \d+ bytes into one Buffer/ }
  t.throws(() => shm.readSHM(handle, 0, 0), tooLarge, 'before its size is known')
  t.equal(shm.readSHM(handle, size - 2, 0).length, 2, 'its end reads')
  t.throws(() => shm.readSHM(handle, 0, 0), tooLarge, 'and after')
})

// A process limited in address space (RLIMIT_AS, as in a memory-limited
// container): the segment is attached, but there is no room for its copy.
const CHILD = `
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const shm = require(${JSON.stringify(ROOT)})
const [key, size] = process.argv.slice(1).map(Number)
const handle = shm.openSHM(key, 'n', 0o600, size)
try {
  shm.writeSHM(handle, 'still readable', 0)
  const vm = Number(fs.readFileSync('/proc/self/status', 'utf8').match(/VmSize:\\s+(\\d+)/)[1]) * 1024
  execFileSync('prlimit', ['--pid', String(process.pid), '--as=' + (vm + size / 2)])
  let error
  try { shm.readSHM(handle, 0, 0) } catch (caught) { error = caught }
  console.log(JSON.stringify({
    name: error?.name, code: error?.code, message: error?.message, cause: error?.cause?.name,
    after: shm.readSHM(handle, 0, 14).toString()
  }))
} finally {
  shm.deleteSHM(handle)
  shm.closeSHM(handle)
}
`

t.test('a copy larger than the memory left is ERR_MEMORY_ALLOCATION_FAILED, and the process goes on', async (t) => {
  const size = 1024 * 1024 * 1024
  const run = spawnSync(process.execPath, ['-e', CHILD, String(keyFor(1)), String(size)], { encoding: 'utf8' })
  t.equal(run.status, 0, 'the child exits with 0', { stderr: run.stderr })
  t.same(JSON.parse(run.stdout), {
    name: 'Error',
    code: 'ERR_MEMORY_ALLOCATION_FAILED',
    message: `Cannot allocate ${size} bytes for the copy`,
    cause: 'RangeError',
    after: 'still readable'
  })
})
