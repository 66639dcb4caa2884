'use strict'
// Node and Node in separate processes share a segment: writes in one are seen
// in the other, several processes attach at once, and nothing is deleted or
// detached implicitly (not at exit, not when killed, not on garbage collection).
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { shm, keyFor, segmentByKey, segmentById, sysvMappings, cleanupAfter, openHandle: open } = require('./helpers')
const { forkPeer } = require('./fixtures/node-peers')

cleanupAfter(t)

const EXIT_FIXTURE = path.join(__dirname, 'fixtures', 'node-exit.js')

const text = (bytes) => Buffer.from(bytes).toString()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('a write in one process is read in the other, both ways', async (t) => {
  const key = keyFor(0)
  const mine = open(t, key, 'c', 0o600, 4096)
  shm.writeSHM(mine, 'from the parent', 0)

  const peer = forkPeer(t)
  const theirs = await peer.call('openSHM', key, 'w', 0, 0)
  t.ok(theirs >= 1, 'the child attaches with w')
  t.equal(await peer.call('sizeSHM', theirs), 4096, 'the child sees the size')
  t.equal(segmentByKey(key).nattch, 2, 'both processes are attached')
  t.equal(text(await peer.call('readSHM', theirs, 0, 15)), 'from the parent', 'the child reads the parent')

  t.equal(await peer.call('writeSHM', theirs, Buffer.from('from the child'), 100), 14, 'the child writes')
  t.equal(shm.readSHM(mine, 100, 14).toString(), 'from the child', 'the parent reads the child')

  // Turns: each side reads the other's last number and writes the next one.
  const counter = Buffer.alloc(4)
  let mismatches = 0
  for (let n = 0; n < 200; n += 2) {
    counter.writeUInt32LE(n)
    shm.writeSHM(mine, counter, 512)
    const seen = Buffer.from(await peer.call('readSHM', theirs, 512, 4)).readUInt32LE()
    if (seen !== n) mismatches++
    counter.writeUInt32LE(n + 1)
    await peer.call('writeSHM', theirs, counter, 512)
    if (shm.readSHM(mine, 512, 4).readUInt32LE() !== n + 1) mismatches++
  }
  t.equal(mismatches, 0, '200 alternating writes are each seen at once by the other process')

  t.equal(await peer.call('closeSHM', theirs), 1, 'the child closes its handle')
  t.equal(segmentByKey(key).nattch, 1, 'only the parent is attached now')
  t.equal(shm.readSHM(mine, 0, 15).toString(), 'from the parent', 'closing in the child deleted nothing')
})

t.test('a segment deleted by its creator stays usable by the processes still attached', async (t) => {
  const key = keyFor(1)
  const peer = forkPeer(t)
  const theirs = await peer.call('openSHM', key, 'n', 0o644, 1000)
  t.ok(theirs >= 1, 'the child creates the segment with n')
  await peer.call('writeSHM', theirs, 'written by the creator', 0)
  const { shmid } = segmentByKey(key)

  const mine = open(t, key, 'a', 0, 0)
  t.equal(shm.readSHM(mine, 0, 22).toString(), 'written by the creator', 'the parent reads it read-only')
  t.throws(() => shm.writeSHM(mine, 'x', 0), { code: 'ERR_SHM_READ_ONLY' }, "the parent's 'a' handle refuses writes")

  t.equal(await peer.call('deleteSHM', theirs), 1, 'the child deletes it')
  t.equal(segmentByKey(key), undefined, 'the key is free at once')
  t.equal(segmentById(shmid).nattch, 2, 'the segment itself lives on, attached twice')
  t.equal(shm.readSHM(mine, 0, 22).toString(), 'written by the creator', 'the parent still reads it')
  t.equal(shm.sizeSHM(mine), 1000, 'and its size')

  const fresh = open(t, key, 'n', 0o600, 10)
  t.not(segmentByKey(key).shmid, shmid, 'the key now names a new segment')
  t.equal(shm.readSHM(fresh, 0, 10).toString('hex'), '00'.repeat(10), 'which starts zeroed')

  await peer.exit(0)
  t.equal(segmentById(shmid).nattch, 1, "the child's exit detached only the child")
  t.equal(shm.closeSHM(mine), 1, 'the parent closes the last attachment')
  t.equal(segmentById(shmid), undefined, 'and the deleted segment goes away')
})

t.test('several processes at once: one segment, each sees all the others write', async (t) => {
  const key = keyFor(2)
  const SLOT = 1024
  const peers = Array.from({ length: 4 }, () => forkPeer(t))
  await Promise.all(peers.map((peer) => peer.call('threadId'))) // all are running

  // All four race to create the same key with 'c'.
  const handles = await Promise.all(peers.map((peer) => peer.call('openSHM', key, 'c', 0o600, SLOT * peers.length)))
  t.ok(handles.every((h) => h >= 1), 'every child opens the key')
  t.equal(segmentByKey(key).nattch, peers.length, 'they share one segment')
  t.equal(segmentByKey(key).size, SLOT * peers.length, 'with the size asked for')

  await Promise.all(peers.map((peer, i) => peer.call('writeSHM', handles[i], Buffer.alloc(SLOT, 0x41 + i), i * SLOT)))
  const expected = Buffer.concat(peers.map((_, i) => Buffer.alloc(SLOT, 0x41 + i)))
  const seen = await Promise.all(peers.map((peer, i) => peer.call('readSHM', handles[i], 0, 0)))
  seen.forEach((bytes, i) => t.same(Buffer.from(bytes), expected, `child ${i} reads every child's slot`))

  await Promise.all(peers.map((peer) => peer.exit(0)))
  const after = segmentByKey(key)
  t.ok(after, 'the segment outlives all the processes that had it open')
  t.equal(after.nattch, 0, 'with no attachment left')
  const mine = open(t, key, 'a', 0, 0)
  t.same(shm.readSHM(mine, 0, 0), expected, 'and with all the data')
})

t.test('a child killed in the middle of writing leaves the segment and its data', async (t) => {
  const key = keyFor(3)
  const mine = open(t, key, 'c', 0o600, 4096)
  const keep = Buffer.alloc(4000, 'keep me ')
  shm.writeSHM(mine, keep, 96)

  const peer = forkPeer(t)
  const theirs = await peer.call('openSHM', key, 'w', 0, 0)
  const looping = peer.call('writeLoop', theirs, 0).catch((error) => error)
  let count = 0
  for (let tries = 0; count < 10000 && tries < 5000; tries++) {
    await sleep(2)
    count = shm.readSHM(mine, 0, 4).readUInt32LE()
  }
  t.ok(count >= 10000, `the child is writing in a loop (${count} writes seen)`)
  const { shmid } = segmentByKey(key)
  t.equal(segmentById(shmid).nattch, 2, 'the child is attached while it writes')

  peer.child.kill('SIGKILL')
  const [code, signal] = await peer.exited
  t.same({ code, signal }, { code: null, signal: 'SIGKILL' }, 'the child died of SIGKILL')
  t.match(await looping, { message: /ended before answering/ }, 'its loop never returned')

  const after = segmentByKey(key)
  t.equal(after && after.shmid, shmid, 'the segment is still there, under the same key')
  t.equal(after.nattch, 1, 'the kernel detached the dead child; the parent stays attached')
  t.ok(shm.readSHM(mine, 0, 4).readUInt32LE() >= count, 'the counter keeps its last value')
  t.same(shm.readSHM(mine, 96, keep.length), keep, 'the bytes the child never wrote are intact')
})

t.test('a process that ends without closing deletes nothing, however it ends', async (t) => {
  const ends = [
    { how: 'return', status: 0, signal: null },
    { how: 'exit', status: 7, signal: null },
    { how: 'throw', status: 1, signal: null },
    { how: 'signal', status: null, signal: 'SIGTERM' },
    { how: 'gc', status: 0, signal: null, flags: ['--expose-gc'] }
  ]
  for (const [i, { how, status, signal, flags = [] }] of ends.entries()) {
    const key = keyFor(10 + i)
    const message = `ended by ${how}`
    const run = spawnSync(process.execPath, [...flags, EXIT_FIXTURE, String(key), message, how], { encoding: 'utf8' })
    t.same({ status: run.status, signal: run.signal }, { status, signal }, `${how}: the child ends as planned`)
    const seg = segmentByKey(key)
    t.ok(seg, `${how}: the segment still exists`)
    t.equal(seg && seg.nattch, 0, `${how}: no attachment is left`)
    const mine = open(t, key, 'a', 0, 0)
    t.equal(shm.readSHM(mine, 0, message.length).toString(), message, `${how}: the data is intact`)
    if (how === 'gc') {
      t.same(JSON.parse(run.stdout), { before: 1, after: 1 }, 'gc: garbage collection detached nothing')
    }
  }
})

t.test('one process can attach the same segment twice: two handles, two mappings', (t) => {
  const key = keyFor(20)
  const maps = sysvMappings()
  const first = open(t, key, 'c', 0o600, 64)
  const second = open(t, key, 'w', 0, 0)
  const third = open(t, key, 'a', 0, 0)
  t.equal(new Set([first, second, third]).size, 3, 'each open gets its own handle')
  t.equal(segmentByKey(key).nattch, 3, 'and its own attachment')
  t.equal(sysvMappings(), maps + 3, 'and its own mapping')

  shm.writeSHM(second, 'shared', 0)
  t.equal(shm.readSHM(first, 0, 6).toString(), 'shared', 'a write through one handle is read through another')
  t.equal(shm.closeSHM(first), 1, 'closing one handle')
  t.equal(segmentByKey(key).nattch, 2, 'detaches that one mapping only')
  t.equal(shm.readSHM(third, 0, 6).toString(), 'shared', 'the others still work')
  t.throws(() => shm.sizeSHM(first), { code: 'ERR_SHM_BAD_HANDLE' }, 'the closed handle is refused')
  t.end()
})
