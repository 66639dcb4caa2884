'use strict'
// Which way wait() sleeps is observable (sections.waitMechanism()) and is the
// fast one wherever the kernel offers it: io_uring's futex wait (Linux 6.7+,
// unless io_uring is disabled) puts the sleep in the event loop itself, one
// wake-up per publish; helper threads need two. NODEJS_SHM_WAIT_THREADS=1
// forces the helper threads (sections-wake-threads.test.js runs the wake tests so).
const t = require('tap')
const fs = require('node:fs')
const os = require('node:os')
const { spawnSync } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const shm = require('..')
const { ROOT } = require('./helpers')

/** True where io_uring's FUTEX_WAIT exists and io_uring is not switched off for processes. */
function kernelOffersIoUringFutex () {
  if (process.platform !== 'linux') return false
  const [major, minor] = os.release().split('.').map(Number)
  if (major < 6 || (major === 6 && minor < 7)) return false
  try {
    return fs.readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim() === '0'
  } catch {
    return true // kernels without the switch (before 6.6) cannot disable it
  }
}

const expected = kernelOffersIoUringFutex() ? 'io_uring' : 'threads'

t.test(`this kernel (${os.release()}) gets ${expected}`, async (t) => {
  t.equal(shm.sections.waitMechanism(), expected, 'the main thread')
  const worker = new Worker(`const { parentPort } = require('node:worker_threads')
    parentPort.postMessage(require(${JSON.stringify(ROOT)}).sections.waitMechanism())`, { eval: true })
  const [answer] = await require('node:events').once(worker, 'message')
  t.equal(answer, expected, 'a worker thread, which has its own')
})

t.test('NODEJS_SHM_WAIT_THREADS=1 forces helper threads', async (t) => {
  const child = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(ROOT)}).sections.waitMechanism())`], {
    env: { ...process.env, NODEJS_SHM_WAIT_THREADS: '1' },
    encoding: 'utf8'
  })
  t.equal(child.stdout, 'threads', child.stderr)
})
