'use strict'
// Segment#view(): a Buffer over the segment's memory. The choice made (see
// index.d.ts): a view keeps the mapping alive after close() until it is
// garbage-collected, so it never points at unmapped memory and never crashes.
const t = require('tap')
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')
const { constants } = require('node:buffer')
const { once } = require('node:events')
const path = require('node:path')
const { MessageChannel, Worker } = require('node:worker_threads')
const shm = require('..')
const { keyFor, segmentByKey, cleanupAfter, openSegment: open } = require('./helpers')

cleanupAfter(t)

const GC = path.join(__dirname, 'fixtures', 'modern-gc.js')

t.test('a view aliases the segment: no copy, both ways', async (t) => {
  const key = keyFor(0)
  const seg = open(t, key, 'n', 0o600, 32)
  const other = open(t, key, 'w') // a second attachment: another mapping of the same memory
  const view = seg.view()
  t.ok(Buffer.isBuffer(view), 'a Buffer')
  t.equal(view.length, 32, 'as long as the segment')
  view.write('through the view')
  t.equal(other.read(0, 16).toString(), 'through the view', 'a write to the view is in the segment')
  const raw = shm.openSHM(key, 'a', 0, 0)
  t.equal(shm.readSHM(raw, 0, 16).toString(), 'through the view', 'for any attachment, in the original API too')
  shm.closeSHM(raw)
  other.write('into the segment', 16)
  t.equal(view.toString('latin1', 16), 'into the segment', 'a write to the segment is in the view')
  const second = seg.view()
  t.not(second, view, 'each call makes a new Buffer')
  second[0] = 0x54
  t.equal(view[0], 0x54, 'over the same memory')
})

t.test('view() of a read-only segment throws, since a write through it would crash', async (t) => {
  const key = keyFor(1)
  open(t, key, 'n', 0o600, 16)
  const reader = open(t, key, 'a')
  t.throws(() => reader.view(), {
    name: 'Error',
    code: 'ERR_SHM_READ_ONLY',
    message: "A segment opened read-only ('a') has no view: a write through it would crash the process. " +
      "Use read() or readInto(), or open it with 'w'"
  })
  t.equal(segmentByKey(key).nattch, 2, 'the refused view holds nothing')
})

t.test('view() of a segment larger than a Buffer throws ERR_BUFFER_TOO_LARGE', async (t) => {
  if (constants.MAX_LENGTH + 4096 > Number.MAX_SAFE_INTEGER) {
    // Node 22+: a Buffer may be as long as any segment the kernel allows, so no view is refused.
    const shmmax = Number(fs.readFileSync('/proc/sys/kernel/shmmax', 'utf8'))
    t.ok(Math.min(shmmax, Number.MAX_SAFE_INTEGER) <= constants.MAX_LENGTH, `every segment (shmmax ${shmmax}) fits in a Buffer of up to ${constants.MAX_LENGTH} bytes`)
    return
  }
  const key = keyFor(8)
  const size = constants.MAX_LENGTH + 4096
  // SHM_NORESERVE: no memory is set aside, none is touched (not under vm.overcommit_memory=2).
  const seg = open(t, key, 'n', 0o10600, size)
  t.throws(() => seg.view(), {
    name: 'RangeError',
    code: 'ERR_BUFFER_TOO_LARGE',
    message: `A segment of ${size} bytes is larger than a Buffer can be (${constants.MAX_LENGTH} bytes); ` +
      'use read() or readInto() on parts of it'
  })
  t.equal(segmentByKey(key).nattch, 1, 'the refused view holds nothing')
  seg.delete() // gone once closed
})

t.test('a view survives close(): same memory, still writable, still attached', async (t) => {
  const key = keyFor(2)
  const seg = shm.open(key, 'n', 0o600, 16)
  const view = seg.view()
  view.write('before close')
  seg.close()
  t.equal(seg.closed, true)
  t.throws(() => seg.view(), { code: 'ERR_SHM_CLOSED' }, 'no new views from a closed Segment')
  t.equal(view.toString('latin1', 0, 12), 'before close', 'the view still reads')
  view.write('after close!')
  const reader = open(t, key, 'a')
  t.equal(reader.read(0, 12).toString(), 'after close!', 'and writes the segment itself')
  t.equal(segmentByKey(key).nattch, 2, 'the view keeps its attachment')
})

t.test('a view survives delete() and close(): the memory lives while the view does', async (t) => {
  const key = keyFor(3)
  const seg = shm.open(key, 'n', 0o600, 16)
  const { id } = seg
  const view = seg.view()
  seg.delete()
  seg.close()
  t.equal(segmentByKey(key), undefined, 'the key is free')
  view.write('deleted, alive')
  t.equal(view.toString('latin1', 0, 14), 'deleted, alive', 'the view reads and writes')
  const row = shm.list().find((s) => s.id === id)
  t.match(row, { key: 0, attachments: 1, markedForDeletion: true }, 'the kernel keeps it for the view')
})

// Node marks a view's memory untransferable. Node 20 then leaves it out of a
// transfer list (the receiver gets a copy); Node 21 and later throw DataCloneError.
const TRANSFER_THROWS = Number(process.versions.node.split('.')[0]) >= 21

t.test('views cannot be transferred: the memory never moves, and nothing breaks', async (t) => {
  const seg = open(t, keyFor(4), 'n', 0o600, 16)
  const view = seg.view()
  view.write('mine')
  const plain = new Uint8Array(4)
  structuredClone(plain, { transfer: [plain.buffer] })
  t.equal(plain.length, 0, 'an ordinary buffer in a transfer list moves (and is detached here)')

  const { port1, port2 } = new MessageChannel()
  t.teardown(() => port1.close())
  const worker = new Worker('require("node:worker_threads").parentPort.once("message", () => {})', { eval: true })
  t.teardown(() => worker.terminate())
  const transfers = {
    structuredClone: () => structuredClone(view, { transfer: [view.buffer] }),
    'MessagePort#postMessage': () => port2.postMessage(view, [view.buffer]),
    'Worker#postMessage': () => worker.postMessage(view, [view.buffer])
  }
  for (const [name, transfer] of Object.entries(transfers)) {
    if (TRANSFER_THROWS) {
      t.throws(transfer, { name: 'DataCloneError' }, `${name} throws`)
    } else {
      t.doesNotThrow(transfer, `${name}: Node ${process.versions.node} leaves the view out of the transfer list`)
    }
    t.equal(view.length, 16, `${name}: the view is not detached`)
  }
  if (!TRANSFER_THROWS) {
    const [received] = await once(port1, 'message')
    t.equal(received.buffer === view.buffer, false, 'the receiver got its own buffer')
    t.equal(Buffer.from(received).toString('latin1', 0, 4), 'mine', 'a copy of the view')
    const copy = structuredClone(view, { transfer: [view.buffer] })
    copy.fill(0)
    t.equal(seg.read(0, 4).toString(), 'mine', 'changing the copy changes nothing')
  }
  t.equal(view.toString('latin1', 0, 4), 'mine', 'the view still reads the segment')
  view.write('ours')
  t.equal(seg.read(0, 4).toString(), 'ours', 'and still writes it')
  const copy = structuredClone(view)
  copy.fill(0)
  t.equal(seg.read(0, 4).toString(), 'ours', 'a clone without transfer is a copy')
})

t.test('a closed Segment\'s view is detached once collected; the segment is not deleted', async (t) => {
  const key = keyFor(5)
  shm.open(key, 'n', 0o600, 64).close()
  const run = spawnSync(process.execPath, ['--expose-gc', GC, 'view', String(key)], { encoding: 'utf8' })
  t.equal(run.status, 0, 'the child exits with 0', { stderr: run.stderr })
  const result = JSON.parse(run.stdout)
  t.match(result, { before: 0, afterClose: 1, closed: true, viewAfterGc: 'written after close()' },
    'after close() the view keeps its attachment, also through gc() while referenced')
  t.match(result, { held: 1, after: 0, size: 64 }, 'forgotten and collected, it detaches; the segment remains')
  t.ok(result.rounds >= 1, `after ${result.rounds} gc() rounds`)
  const seg = open(t, key, 'a')
  t.equal(seg.read(0, 21).toString(), 'written after close()', 'with what the view wrote')
})

t.test('a deleted segment\'s last view, once collected, takes the segment with it', async (t) => {
  const key = keyFor(7)
  shm.open(key, 'n', 0o600, 64).close()
  const run = spawnSync(process.execPath, ['--expose-gc', GC, 'deleted', String(key)], { encoding: 'utf8' })
  t.equal(run.status, 0, 'the child exits with 0', { stderr: run.stderr })
  const result = JSON.parse(run.stdout)
  t.match(result, { before: 0, afterClose: 1, closed: true, viewAfterGc: 'written after close()' },
    'after delete() and close() the view keeps the memory, also through gc() while referenced')
  t.match(result, { held: 1, after: 0, size: null }, 'collected, it detaches the last attachment: delete() takes effect')
  t.ok(result.rounds >= 1, `after ${result.rounds} gc() rounds`)
  t.equal(segmentByKey(key), undefined, 'the key is free')
})

t.test('a process may exit with views of closed and deleted segments alive', async (t) => {
  const key = keyFor(6)
  const code = `
    const shm = require(${JSON.stringify(path.join(__dirname, '..'))})
    const seg = shm.open(${key}, 'n', 0o600, 16)
    const view = seg.view()
    seg.delete()
    seg.close()
    view.write('bye')
    process.stdout.write(view.toString('latin1', 0, 3))
  `
  const run = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' })
  t.same({ status: run.status, signal: run.signal, stdout: run.stdout }, { status: 0, signal: null, stdout: 'bye' })
  t.equal(segmentByKey(key), undefined, 'the deleted segment went with the process')
})
