'use strict'
// The addon in worker_threads: it loads in any number of threads at once and
// in threads that come and go; its handles belong to the process (any thread
// may use or close them); lastErrorSHM() belongs to each thread; and threads
// racing a close never read unmapped memory.
const t = require('tap')
const { spawnSync } = require('node:child_process')
const { once } = require('node:events')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { shm, keyFor, segmentByKey, sysvMappings, cleanupAfter, openHandle: open } = require('./helpers')
const { workerPeer, WORKER_EXEC_ARGV } = require('./fixtures/node-peers')

cleanupAfter(t)

const BUSY = path.join(__dirname, 'fixtures', 'node-worker-busy.js')
const RACE = path.join(__dirname, 'fixtures', 'node-race.js')

t.test('loads in the main thread and in eight workers at once', async (t) => {
  const shared = open(t, keyFor(0), 'c', 0o600, 8 * 16)
  const peers = Array.from({ length: 8 }, () => workerPeer(t))
  const ids = await Promise.all(peers.map((peer) => peer.call('threadId')))
  t.equal(new Set(ids).size, 8, 'eight threads run the addon')

  // Each thread creates, writes, reads back and deletes a segment of its own...
  const own = await Promise.all(peers.map(async (peer, i) => {
    const key = keyFor(1 + i)
    const h = await peer.call('openSHM', key, 'n', 0o600, 100)
    await peer.call('writeSHM', h, `thread ${i}`, 0)
    const back = Buffer.from(await peer.call('readSHM', h, 0, 8)).toString()
    return { back, deleted: await peer.call('deleteSHM', h), closed: await peer.call('closeSHM', h), key }
  }))
  own.forEach(({ back, deleted, closed, key }, i) => {
    t.same({ back, deleted, closed }, { back: `thread ${i}`, deleted: 1, closed: 1 }, `worker ${i} round trip`)
    t.equal(segmentByKey(key), undefined, `worker ${i} deleted its segment`)
  })
  // ...and all write to one segment that the main thread reads.
  const handles = await Promise.all(peers.map((peer) => peer.call('openSHM', keyFor(0), 'w', 0, 0)))
  t.equal(new Set([shared, ...handles]).size, 9, 'every open in every thread gets a new handle')
  await Promise.all(peers.map((peer, i) => peer.call('writeSHM', handles[i], Buffer.alloc(16, i + 1), i * 16)))
  const expected = Buffer.concat(peers.map((_, i) => Buffer.alloc(16, i + 1)))
  t.same(shm.readSHM(shared, 0, 0), expected, 'the main thread reads what all eight wrote')
  t.equal(segmentByKey(keyFor(0)).nattch, 9, 'one process, nine attachments')
  await Promise.all(peers.map((peer, i) => peer.call('closeSHM', handles[i])))
})

t.test('workers created and terminated again and again, at any moment', async (t) => {
  const expected = Buffer.from('still here')
  const h = open(t, keyFor(10), 'c', 0o600, expected.length)
  shm.writeSHM(h, expected, 0)
  const maps = sysvMappings()
  const errors = []
  let ended = 0
  for (let round = 0; round < 15; round++) {
    const start = (calls) => {
      const worker = new Worker(BUSY, { workerData: { handle: h, expected, calls }, execArgv: WORKER_EXEC_ARGV })
      worker.on('error', (error) => errors.push(error))
      return worker
    }
    const early = start(Infinity) // terminated while it may still be loading the addon
    const busy = [start(Infinity), start(Infinity)]
    const finishing = start(500) // ends by itself
    const exits = [early, ...busy, finishing].map((worker) => once(worker, 'exit'))
    early.terminate()
    await Promise.all(busy.map((worker) => once(worker, 'message')))
    await new Promise((resolve) => setTimeout(resolve, round % 5))
    busy.forEach((worker) => worker.terminate())
    await Promise.all(exits)
    ended += exits.length
  }
  t.same(errors, [], `${ended} workers ran and ended without an error`)
  t.same(shm.readSHM(h, 0, 0), expected, 'the main thread still reads the handle they used')
  t.equal(sysvMappings(), maps, 'no mapping came or went with the workers')
})

t.test('a handle opened in one thread works in every other; a close anywhere closes it everywhere', async (t) => {
  const key = keyFor(20)
  const mine = open(t, key, 'c', 0o600, 64)
  const peer = workerPeer(t)
  t.equal(await peer.call('writeSHM', mine, 'main opened it', 0), 14, "a worker writes through the main thread's handle")
  t.equal(shm.readSHM(mine, 0, 14).toString(), 'main opened it', 'the main thread reads it')

  const theirs = await peer.call('openSHM', key, 'w', 0, 0)
  t.equal(shm.writeSHM(theirs, 'the worker opened it', 20), 20, "the main thread writes through the worker's handle")
  t.equal(Buffer.from(await peer.call('readSHM', theirs, 20, 20)).toString(), 'the worker opened it', 'the worker reads it')

  const another = await peer.call('openSHM', key, 'w', 0, 0)
  t.equal(shm.closeSHM(another), 1, "the main thread closes a worker's handle")
  await t.rejects(peer.call('sizeSHM', another), { code: 'ERR_SHM_BAD_HANDLE' }, 'the worker can no longer use it')

  const [exitCode] = await peer.exit(0)
  t.equal(exitCode, 0, 'the worker ends without closing its handle')
  t.equal(segmentByKey(key).nattch, 2, "the worker's end detached nothing")
  t.equal(shm.readSHM(theirs, 20, 20).toString(), 'the worker opened it', "the worker's handle outlives the worker")
  t.equal(shm.closeSHM(theirs), 1, 'and the main thread closes it')
  t.equal(segmentByKey(key).nattch, 1, 'which detaches it')
})

t.test('lastErrorSHM() is per thread', async (t) => {
  const missing = keyFor(30)
  const existing = keyFor(31)
  open(t, existing, 'c', 0o600, 16)
  t.equal(shm.openSHM(missing, 'a', 0, 0), 0, 'the main thread fails to attach a missing key')
  t.match(shm.lastErrorSHM(), { code: 'ENOENT', key: missing }, 'and its lastErrorSHM() says why')

  const [first, second] = [workerPeer(t), workerPeer(t)]
  t.equal(await first.call('lastErrorSHM'), null, "a new worker starts with no error, not the main thread's")
  t.equal(await first.call('openSHM', existing, 'n', 0o600, 16), 0, "the worker's open with n fails")
  t.equal(await second.call('closeSHM', 123456789), 0, 'the other worker closes a handle that was never open')
  t.match(await first.call('lastErrorSHM'), { code: 'EEXIST', errno: -17, syscall: 'shmget', key: existing },
    'the first worker sees its own error')
  t.match(await second.call('lastErrorSHM'), { code: 'ERR_SHM_BAD_HANDLE', message: /Handle 123456789 / },
    'the second worker sees its own error')
  t.match(shm.lastErrorSHM(), { code: 'ENOENT', key: missing }, 'the main thread still sees its own')

  t.equal(shm.closeSHM(987654321), 0, 'a failure in the main thread')
  t.match(await first.call('lastErrorSHM'), { code: 'EEXIST' }, 'does not show up in a worker')
})

t.test('threads racing a close: every call succeeds or throws ERR_SHM_BAD_HANDLE', (t) => {
  // In a child process, so that a crash fails this test instead of ending the file.
  const run = spawnSync(process.execPath, [RACE, String(keyFor(40)), String(keyFor(41)), '2000'], { encoding: 'utf8' })
  t.same({ status: run.status, signal: run.signal }, { status: 0, signal: null }, 'the racing process exits normally', {
    stderr: run.stderr
  })
  const results = JSON.parse(run.stdout)
  t.same(results.closer.unexpected, [], 'every closeSHM() of a published handle returned 1')
  t.ok(results.closer.rounds >= 50, `the closer opened and closed ${results.closer.rounds} handles under the hammers`)
  t.same(results.churn.unexpected, [], 'the churn thread read the right bytes and closed every handle')
  t.ok(results.churn.opened >= 300, `the churn thread opened and closed ${results.churn.opened} handles meanwhile`)
  results.hammers.forEach((counts, i) => {
    t.same(counts.unexpected, [], `hammer ${i}: no wrong result, no other error, no refused handle accepted again`)
    t.ok(counts.ok > 0 && counts.badHandle > 0, `hammer ${i}: ${counts.ok} calls worked, ${counts.badHandle} were refused`)
  })
  const meanwhile = results.hammers.reduce((sum, counts) => sum + counts.closedMeanwhile, 0)
  t.ok(meanwhile > 0, `${meanwhile} calls completed correctly while their handle was being closed`)
  t.equal(segmentByKey(keyFor(40)), undefined, 'the racing process deleted its segments')
  t.equal(segmentByKey(keyFor(41)), undefined, 'both of them')
  t.end()
})
