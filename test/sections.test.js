'use strict'
/*
 * shm.sections: the API of lib/sections.js (create, attach, remove; tables and
 * sections), the bytes it lays out (docs/sections.md), its errors, and the
 * CLI's `sections` command. The guarantees have files of their own:
 * sections-torn, -crash, -claims, -validation, -fuzz and -wake; PHP's side is
 * in sections-php.
 */
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const shm = require('..')
const binding = require('../lib/binding')
const crc32 = require('../lib/crc32')
const { keyFor, segments, segmentByKey, segmentById, semaphores, semaphoreByKey, cleanupTablesAfter } = require('./helpers')
const { peer } = require('./fixtures/sections-common')

cleanupTablesAfter(t)

const CLI = path.join(__dirname, '..', 'bin', 'nodejs-shm.js')
const { hex } = require('../lib/util')
const align64 = (n) => Math.ceil(n / 64) * 64

function create (t, key, options) {
  const table = shm.sections.create(key, options)
  t.teardown(() => { table.close(); shm.sections.remove(key) })
  return table
}

t.test('create: the header, table and placement of docs/sections.md', async (t) => {
  const key = keyFor(1)
  const before = Date.now()
  const table = create(t, key, { mode: 0o640, sections: [{ name: 'prices', size: 100000 }, { name: 'x', size: 1 }, { name: 'orders', size: 1000 }] })
  t.match(table, { key, mode: 0o640, readOnly: false, closed: false, names: ['prices', 'x', 'orders'] })
  t.same(table.sections.map((s) => s.name), table.names, 'sections, in table order')
  t.equal(table.section('x'), table.section('x'), 'one object per section')

  // Placement (§1.4): controls after the table, then both data areas of each section in turn.
  const H = 64 + 80 * 3
  let end = align64(H) + 192 * 3
  table.sections.forEach((section, i) => {
    const data0 = align64(end) + 24
    const data1 = align64(data0 + section.capacity) + 24
    end = data1 + section.capacity
    t.same(section.offsets, { control: align64(H) + 192 * i, data: [data0, data1] }, `${section.name}: offsets`)
  })
  t.equal(table.section('prices').capacity, 100000)
  const kernel = segmentByKey(key)
  t.equal(kernel.size, end, 'the segment is exactly as large as laid out')
  t.equal(kernel.perms & 0o777, 0o640, 'with the mode asked for')

  // Header (§1.1) and entries (§1.2).
  const raw = shm.open(key, 'a')
  t.teardown(() => raw.close())
  const header = raw.read(0, H)
  t.equal(header.toString('latin1', 0, 8), 'NJSHMSEC', 'magic')
  t.same([8, 12, 16, 20].map((at) => header.readUInt32LE(at)), [1, 0x01020304, H, 3], 'layout version, byte-order mark, header size, count')
  t.same(header.subarray(12, 16), Buffer.from([4, 3, 2, 1]), 'byte-order mark stored little-endian')
  t.equal(Number(header.readBigUInt64LE(24)), end, 'laid-out size')
  const created = Number(header.readBigUInt64LE(32))
  t.ok(created >= before && created <= Date.now(), 'created: ms since the epoch')
  t.same([header.readUInt32LE(40), header.readUInt32LE(44)], [process.pid, 0o640], 'creator pid, mode')
  t.same(header.subarray(48, 60), Buffer.alloc(12), 'reserved bytes are zero')
  const zeroed = Buffer.from(header)
  zeroed.writeUInt32LE(0, 60)
  t.equal(header.readUInt32LE(60), crc32(zeroed), 'CRC-32 of [0, H) with its own field zeroed')
  table.sections.forEach((section, i) => {
    const at = 64 + 80 * i
    t.same(header.subarray(at, at + 32), Buffer.concat([Buffer.from(section.name), Buffer.alloc(32 - section.name.length)]), `${section.name}: name, NUL-padded`)
    t.same([32, 40, 48, 56].map((o) => Number(header.readBigUInt64LE(at + o))),
      [section.offsets.control, section.capacity, ...section.offsets.data], `${section.name}: control, capacity, data 0, data 1`)
    const lock = semaphores().find((s) => s.semid === header.readInt32LE(at + 68))
    t.match(lock, { key: header.readInt32LE(at + 64), nsems: 3, perms: 0o640 }, `${section.name}: its claim lock, made with the table, at the key recorded`)
    t.same(header.subarray(at + 72, at + 80), Buffer.alloc(8), `${section.name}: reserved bytes are zero`)
  })
  t.same(raw.read(align64(H), 192 * 3), Buffer.alloc(192 * 3), 'control blocks start zeroed')
})

t.test('the table checksum is CRC-32 (IEEE 802.3): known vectors, and zlib where it has crc32', async (t) => {
  // The check values of the CRC catalogue and zlib; 0..255 reaches every entry of the table.
  const vectors = [
    ['', 0],
    ['a', 0xe8b7be43],
    ['123456789', 0xcbf43926],
    ['The quick brown fox jumps over the lazy dog', 0x414fa339],
    [Buffer.alloc(32), 0x190a55ad],
    [Buffer.alloc(32, 0xff), 0xff6cab0b],
    [Buffer.from(Array.from({ length: 256 }, (_, i) => i)), 0x29058c73]
  ]
  for (const [input, expected] of vectors) {
    const bytes = Buffer.from(input)
    t.equal(crc32(bytes), expected, `lib/crc32 of ${bytes.length} bytes`)
    if (require('node:zlib').crc32) t.equal(require('node:zlib').crc32(bytes), expected, `zlib.crc32 of ${bytes.length} bytes`)
  }
})

t.test('publish and read: the two slots of §1.3 and §6', async (t) => {
  const key = keyFor(2)
  const table = create(t, key, { sections: [{ name: 's', size: 100 }, { name: 'other', size: 10 }] })
  const s = table.section('s')
  const raw = shm.open(key, 'a')
  t.teardown(() => raw.close())
  const control = s.offsets.control
  const slot = (i) => {
    const h = raw.read(control + 64 + 64 * i, 64)
    return { seq: h.readUInt32LE(0), version: Number(h.readBigUInt64LE(8)), length: Number(h.readBigUInt64LE(16)), publishedUs: Number(h.readBigUInt64LE(24)), pid: h.readUInt32LE(32) }
  }
  const commit = () => Number(raw.read(control, 8).readBigUInt64LE())

  t.same(s.read(), { version: 0, data: Buffer.alloc(0) }, 'nothing published yet: version 0, no bytes')
  t.same(s.readInto(Buffer.alloc(4)), { version: 0, length: 0 })
  t.equal(s.version, 0)
  t.match(s.info(), { name: 's', offset: s.offsets.data[0], capacity: 100, length: 0, version: 0, writer: null, lastWriterPid: 0, publishedAt: null })

  s.claim()
  const before = Date.now() * 1000
  t.equal(s.publish('first'), 1, 'the first publish is version 1')
  t.equal(commit(), 1 * 2 + 1, 'commit: version 1 in slot 1 (the slot readers were not reading)')
  t.match(slot(1), { seq: 2, version: 1, length: 5, pid: process.pid }, 'slot 1: even seq, version, length, pid')
  t.ok(slot(1).publishedUs >= before && slot(1).publishedUs <= Date.now() * 1000 + 1000, 'published: µs since the epoch')
  t.same(raw.read(s.offsets.data[1], 5), Buffer.from('first'), 'the payload is in data area 1')
  t.equal(s.publish(Buffer.from('second!')), 2)
  t.equal(commit(), 2 * 2 + 0, 'version 2 in slot 0')
  t.match(slot(0), { seq: 2, version: 2, length: 7 })
  t.match(slot(1), { version: 1 }, 'slot 1 keeps version 1')
  t.same(raw.read(s.offsets.data[0], 7), Buffer.from('second!'))
  t.equal(table.section('other').version, 0, 'the other section is untouched')

  // Every kind of data; read() gives a copy of exactly the payload.
  t.equal(s.publish(new Uint16Array([0x4241, 0x4443])), 3, 'a TypedArray')
  t.same(s.read(), { version: 3, data: Buffer.from('ABCD') })
  const xyz = Buffer.from('xyz')
  t.equal(s.publish(new DataView(xyz.buffer, xyz.byteOffset, 3)), 4, 'a DataView')
  const shorter = s.read().data
  t.same(shorter, Buffer.from('xyz'), 'a payload shorter than the last read')
  t.same(Buffer.from(shorter.buffer, shorter.byteOffset + 3, 1), Buffer.alloc(1), 'with the rest of its memory cleared')
  const full = Buffer.alloc(100, 7)
  t.equal(s.publish(full), 5, 'exactly the capacity')
  const copy = s.read().data
  copy[0] = 99
  t.same(s.read().data, full, 'read() returns a copy')
  t.equal(s.publish(''), 6, 'an empty payload')
  t.same(s.read(), { version: 6, data: Buffer.alloc(0) })
  t.same(s.readInto(Buffer.alloc(0)), { version: 6, length: 0 }, 'fits an empty buffer')

  t.throws(() => s.publish(Buffer.alloc(101)), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /capacity/ }, 'more than the capacity: RangeError')
  t.throws(() => s.publish(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'not data: TypeError')
  t.equal(s.version, 6, 'and nothing was published')

  s.publish('0123456789')
  const target = Buffer.alloc(20, '-')
  t.same(s.readInto(target), { version: 7, length: 10 }, 'readInto: version and length')
  t.equal(target.toString(), '0123456789----------', 'only the payload\'s bytes are written')
  t.throws(() => s.readInto(Buffer.alloc(9, '-')), {
    name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: 'The buffer (9 bytes) is too small for version 7 (10 bytes)'
  }, 'too small: RangeError')
  t.same(s.readInto(new Uint8Array(16)), { version: 7, length: 10 }, 'any TypedArray')
  t.throws(() => s.readInto('room'), { code: 'ERR_INVALID_ARG_TYPE' })

  const info = s.info()
  t.match(info, { name: 's', offset: s.offsets.data[0], capacity: 100, length: 10, version: 7, writer: { pid: process.pid, alive: true, self: true }, lastWriterPid: process.pid })
  t.ok(info.publishedAt instanceof Date && Math.abs(info.publishedAt - Date.now()) < 60000, 'publishedAt: a Date')
})

t.test('read() after a longer payload: a Buffer that does not keep the longer one\'s memory alive', async (t) => {
  const s = create(t, keyFor(17), { sections: [{ name: 's', size: 100000 }] }).section('s')
  s.claim()
  s.publish(Buffer.alloc(100000, 1))
  t.same(s.read().data, Buffer.alloc(100000, 1))
  s.publish(Buffer.alloc(90000, 2))
  const near = s.read().data
  t.same(near, Buffer.alloc(90000, 2), 'a little shorter')
  t.same(Buffer.from(near.buffer, near.byteOffset + 90000, 10000), Buffer.alloc(10000), 'the start of the longer one\'s Buffer, the rest of its memory cleared')
  s.publish(Buffer.alloc(1000, 3))
  const small = s.read().data
  t.same(small, Buffer.alloc(1000, 3), 'much shorter')
  t.ok(small.buffer.byteLength < 90000, `a Buffer of its own (over ${small.buffer.byteLength} bytes)`)
})

t.test('section names are UTF-8, up to 32 bytes', async (t) => {
  const key = keyFor(3)
  const names = ['prix €', '価格', '📈 chart', 'é'.repeat(16), 'x'.repeat(32), '\ufeffbom', 'a b\tc']
  create(t, key, { sections: names.map((name) => ({ name, size: 8 })) })
  const table = shm.sections.attach(key)
  t.teardown(() => table.close())
  t.same(table.names, names, 'attach reads the names back')
  for (const name of names) t.equal(table.section(name).name, name)
  t.throws(() => table.section('prix'), {
    name: 'RangeError', code: 'ERR_SHM_NO_SUCH_SECTION', message: `No section named "prix" in table ${hex(key)}; it has ${names.map((n) => JSON.stringify(n)).join(', ')}`
  })
})

t.test('bad configurations: TypeError or RangeError, and no segment', async (t) => {
  const key = keyFor(4)
  const cases = [
    [undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [{}, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [{ sections: [] }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [{ sections: { name: 'a', size: 1 } }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [{ sections: Array.from({ length: 65537 }, (_, i) => ({ name: `s${i}`, size: 1 })) }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [{ sections: [{ name: '', size: 1 }] }, 'RangeError', 'ERR_INVALID_ARG_VALUE'],
    [{ sections: [{ size: 1 }] }, 'RangeError', 'ERR_INVALID_ARG_VALUE'],
    [{ sections: [{ name: 7, size: 1 }] }, 'RangeError', 'ERR_INVALID_ARG_VALUE'],
    [{ sections: [{ name: 'x'.repeat(33), size: 1 }] }, 'RangeError', 'ERR_INVALID_ARG_VALUE'],
    [{ sections: [{ name: 'é'.repeat(16) + 'x', size: 1 }] }, 'RangeError', 'ERR_INVALID_ARG_VALUE'],
    [{ sections: [{ name: 'a\0b', size: 1 }] }, 'RangeError', 'ERR_INVALID_ARG_VALUE'],
    [{ sections: [{ name: 'a', size: 1 }, { name: 'a', size: 2 }] }, 'RangeError', 'ERR_INVALID_ARG_VALUE'],
    [{ sections: [{ name: 'lone \ud800', size: 1 }] }, 'RangeError', 'ERR_INVALID_ARG_VALUE'],
    [{ sections: [{ name: 'a', size: 0 }] }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [{ sections: [{ name: 'a', size: -1 }] }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [{ sections: [{ name: 'a', size: 1.5 }] }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [{ sections: [{ name: 'a', size: '10' }] }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [{ sections: [{ name: 'a' }] }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    [{ sections: [{ name: 'a', size: 2 ** 53 }] }, 'RangeError', 'ERR_OUT_OF_RANGE']
  ]
  for (const [options, name, code] of cases) {
    const label = JSON.stringify(options)?.slice(0, 80) ?? 'no options'
    t.throws(() => shm.sections.create(key, options), { name, code }, label)
  }
  t.equal(segmentByKey(key), undefined, 'no segment was made')
  // Two distinct lone surrogates would both be written as U+FFFD: a table that could never be attached.
  t.throws(() => shm.sections.create(key, { sections: [{ name: '\ud800', size: 1 }, { name: '\udfff', size: 1 }] }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => shm.sections.create(key, { sections: [{ name: 'huge', size: 2 ** 40 }] }), { name: 'ShmError' }, 'a size the system refuses: the ShmError of open()')
  t.equal(segmentByKey(key), undefined)
})

t.test('create on an existing key; attach to none; the default mode', async (t) => {
  const key = keyFor(5)
  const table = create(t, key, { sections: [{ name: 'a', size: 10 }] })
  t.equal(table.mode, 0o644, 'mode defaults to 0o644')
  t.equal(segmentByKey(key).perms & 0o777, 0o644)
  table.section('a').claim()
  table.section('a').publish('kept')
  t.throws(() => shm.sections.create(key, { sections: [{ name: 'b', size: 10 }] }), { name: 'ShmError', code: 'EEXIST', message: /already exists/ })
  t.same(shm.sections.attach(key, { readOnly: true }).section('a').read(), { version: 1, data: Buffer.from('kept') }, 'the table is unchanged')
  const plain = shm.sections.attach(key)
  t.equal(plain.readOnly, false, 'attach() without options is read-write')
  plain.close()
  t.throws(() => shm.sections.attach(keyFor(6)), { name: 'ShmError', code: 'ENOENT' })
  t.throws(() => shm.sections.remove(keyFor(6)), { name: 'ShmError', code: 'ENOENT' })
  const privateSegments = segments().filter((seg) => seg.key === 0).length
  t.throws(() => shm.sections.create(0, { sections: [{ name: 'a', size: 10 }] }),
    { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /must not be 0 \(IPC_PRIVATE\)/ }, 'key 0 makes no table')
  t.equal(segments().filter((seg) => seg.key === 0).length, privateSegments, '... nor a private segment')
  t.throws(() => shm.sections.attach(0), { name: 'ShmError', code: 'EINVAL', message: /IPC_PRIVATE/ })
})

t.test('close(), [Symbol.dispose], and a closed table', async (t) => {
  const key = keyFor(7)
  create(t, key, { sections: [{ name: 'a', size: 10 }] })
  const table = shm.sections.attach(key)
  const a = table.section('a')
  const attachments = segmentByKey(key).nattch
  table[Symbol.dispose]()
  t.ok(table.closed, 'disposed is closed')
  t.equal(segmentByKey(key).nattch, attachments - 1, 'and detached')
  for (const [label, call] of [['version', () => a.version], ['read', () => a.read()], ['readInto', () => a.readInto(Buffer.alloc(10))],
    ['claim', () => a.claim()], ['publish', () => a.publish('x')], ['info', () => a.info()], ['waitSync', () => a.waitSync(0, 0)]]) {
    t.throws(call, { code: 'ERR_SHM_CLOSED', message: `The section table ${hex(key)} is closed` }, label)
  }
  a.release() // not claimed: nothing to do
  table.close() // again: nothing to do
})

t.test('remove() deletes the segment and every claim lock the table owns, and only a table', async (t) => {
  const key = keyFor(8)
  const table = shm.sections.create(key, { mode: 0o600, sections: [{ name: 'a', size: 10 }, { name: 'b', size: 10 }] })
  const ids = table.sections.map((section) => section.entry.lock.id)
  const ipcs = () => spawnSync('ipcs', ['-s'], { encoding: 'utf8' }).stdout
  for (const id of ids) {
    t.match(semaphores().find((s) => s.semid === id), { nsems: 3, perms: 0o600 }, `claim lock ${id}: made with the table, 3 semaphores as PHP's sem_get, the table's mode`)
  }
  t.equal(semaphoreByKey(key), undefined, 'no semaphore set has the table\'s own key')
  t.ok(ipcs().includes(` ${ids[0]} `), 'ipcs -s lists the claim locks')
  table.section('a').claim()
  const shmid = segmentByKey(key).shmid
  const removed = shm.sections.remove(key)
  t.same(removed, { segment: shmid, locks: ids }, 'it says what it removed: the segment and claim lock ids')
  t.equal(segmentByKey(key), undefined, 'the segment has left its key')
  t.same(semaphores().filter((s) => ids.includes(s.semid)), [], 'the claim locks are gone')
  t.doesNotThrow(() => table.close(), 'close() of the table that held a claim does not throw')
  t.equal(segmentById(removed.segment), undefined, 'the segment went with the last detach')
  t.throws(() => shm.sections.remove(key), { code: 'ENOENT' }, 'removing it again: ENOENT')

  const plain = keyFor(9)
  const segment = shm.open(plain, 'n', 0o600, 4096)
  t.teardown(() => { segment.delete(); segment.close() })
  t.throws(() => shm.sections.remove(plain), { code: 'ERR_SHM_NOT_SECTIONS' }, 'a plain segment (a PHP shmop one) is refused')
  t.ok(segmentByKey(plain), 'and nothing is deleted')
})

t.test('a table removed while in use: everyone notices, close() never throws', async (t) => {
  const gone = keyFor(12)
  const removed = shm.sections.create(gone, { sections: [{ name: 'a', size: 10 }, { name: 'b', size: 10 }] })
  const reader = shm.sections.attach(gone, { readOnly: true })
  t.teardown(() => reader.close())
  removed.section('a').claim()
  removed.section('a').publish('x')
  const waiting = reader.section('b').wait(0)
  const started = Date.now()
  shm.sections.remove(gone)
  await t.rejects(waiting, { code: 'ERR_SHM_TABLE_RETIRED', message: /was removed by its manager \(sections\.remove\); attach the table again/ }, 'a pending wait ends at once, with the reason')
  t.ok(Date.now() - started < 500, `and at once (${Date.now() - started} ms)`)
  t.throws(() => reader.section('a').read(), { code: 'ERR_SHM_TABLE_RETIRED' }, 'a reader is told')
  t.throws(() => reader.section('a').waitSync(1, 1000), { code: 'ERR_SHM_TABLE_RETIRED' }, 'waitSync too')
  t.throws(() => removed.section('a').publish('y'), { code: 'ERR_SHM_TABLE_RETIRED', message: /was removed by its manager while this process held section 'a': the claim ended/ }, 'the writer is told its claim ended')
  t.notOk(removed.section('a').claimed)
  t.throws(() => removed.section('b').claim(), { code: 'ERR_SHM_TABLE_RETIRED' }, 'and cannot claim again there')
  t.doesNotThrow(() => removed.close(), 'close() does not throw')
  t.ok(removed.closed)

  // A claim lock that someone else removed: attach names it; remove() still removes the rest.
  const broken = keyFor(10)
  const table = shm.sections.create(broken, { mode: 0o600, sections: [{ name: 'a', size: 10 }, { name: 'b', size: 10 }] })
  const [a, b] = table.sections.map((section) => section.entry.lock)
  binding.sectionLockRemove(a.id)
  t.throws(() => shm.sections.attach(broken), {
    code: 'ERR_SHM_CORRUPT',
    message: `The section table in segment ${hex(broken)} is corrupt: section 'a': its claim lock (semaphore set id ${a.id}, key ${hex(a.key)}) cannot be used (EINVAL: it was removed)`
  }, 'attach names the missing claim lock')
  t.throws(() => table.section('a').claim(), { code: 'ERR_SHM_CORRUPT', message: /section 'a': its claim lock .* cannot be used/ }, 'and so does claim() on a table attached before')
  table.close()
  t.same(shm.sections.remove(broken).locks, [b.id], 'remove() removes the claim lock that is left')
})

t.test('nodejs-shm sections KEY', async (t) => {
  const key = keyFor(13)
  const table = create(t, key, { mode: 0o600, sections: [{ name: 'live', size: 100 }, { name: 'dead', size: 50 }, { name: 'empty €', size: 10 }] })
  const live = table.section('live')
  live.claim()
  live.publish('twelve bytes')
  live.publish('now 7 bytes'.slice(0, 7))
  const dead = peer(t, process.execPath, [path.join(__dirname, 'fixtures', 'sections-peer.js')])
  await dead.call('attach', { key })
  await dead.call('claim', { name: 'dead' })
  await dead.call('publish', { name: 'dead', hex: '00' })
  dead.child.kill('SIGKILL')
  await dead.exited
  const cli = (...args) => spawnSync(process.execPath, [CLI, 'sections', ...args], { encoding: 'utf8' })

  const run = cli(hex(key))
  t.same({ status: run.status, stderr: run.stderr }, { status: 0, stderr: '' }, 'sections KEY')
  const rows = run.stdout.trimEnd().split('\n').map((line) => line.split(/ {2,}/))
  t.same(rows[0], ['name', 'offset', 'capacity', 'length', 'version', 'writer', 'alive', 'last publish'], 'the header line')
  const [liveInfo, deadInfo] = [live.info(), table.section('dead').info()]
  t.same(rows[1], ['live', String(live.offsets.data[0]), '100', '7', '2', String(process.pid), 'yes', liveInfo.publishedAt.toISOString()], 'a live writer')
  t.same(rows[2], ['dead', String(table.section('dead').offsets.data[0]), '50', '1', '1', String(dead.pid), 'no', deadInfo.publishedAt.toISOString()], 'a dead writer')
  t.same(rows[3], ['empty €', String(table.section('empty €').offsets.data[0]), '10', '0', '0', '-', '-', '-'], 'never claimed, never published')
  t.equal(cli(String(key)).stdout, run.stdout, 'a decimal KEY')

  const json = cli(hex(key), '--json')
  t.equal(json.status, 0, 'sections KEY --json')
  t.same(JSON.parse(json.stdout), [
    { ...liveInfo, writer: { pid: process.pid, alive: true, self: false }, publishedAt: liveInfo.publishedAt.toISOString() },
    { ...deadInfo, publishedAt: deadInfo.publishedAt.toISOString() },
    { ...table.section('empty €').info() }
  ], 'the same, as JSON (self: the CLI is not the writer)')

  const plain = shm.open(keyFor(14), 'n', 0o600, 100)
  t.teardown(() => { plain.delete(); plain.close() })
  const notTable = cli(hex(keyFor(14)))
  t.same({ status: notTable.status, stdout: notTable.stdout }, { status: 1, stdout: '' }, 'not a table: exit 1')
  t.equal(notTable.stderr, `nodejs-shm: ERR_SHM_NOT_SECTIONS: Segment ${hex(keyFor(14))} is not a section table (no "NJSHMSEC" at its start)\n`)
  const none = cli(hex(keyFor(15)))
  t.equal(none.status, 1, 'no segment: exit 1')
  t.match(none.stderr, /^nodejs-shm: ENOENT: no segment with key/)
  t.equal(cli().status, 2, 'no KEY: a usage error')
  const help = cli('--help')
  t.match(help.stdout, /^Usage: nodejs-shm sections KEY \[--json\]\n\nShow a section table/)
  t.equal(table.section('live').info().writer.self, true, 'the CLI attached read-only and released nothing')
})

t.test('create: a claim lock key that is taken is passed over; a failure undoes what it made', async (t) => {
  const binding = require('../lib/binding')
  const taken = keyFor(200)
  const free = keyFor(201)
  const takenId = binding.sectionLockCreate(taken, 0o600)
  t.teardown(() => binding.sectionLockRemove(takenId))
  const keys = [taken, free]
  const sections = t.mockRequire('../lib/sections.js', { 'node:crypto': { randomInt: () => keys.shift() } })
  const key = keyFor(202)
  const table = sections.create(key, { mode: 0o600, sections: [{ name: 'a', size: 8 }] })
  t.equal(table.section('a').entry.lock.key, free, 'the key another set has is passed over (EEXIST)')
  table.close()
  sections.remove(key)

  let calls = 0
  const failing = t.mockRequire('../lib/sections.js', {
    'node:crypto': { randomInt: () => keyFor(203 + calls) },
    '../lib/binding.js': {
      ...binding,
      sectionLockCreate (lockKey, mode) {
        if (++calls === 2) throw Object.assign(new Error('ENOSPC: no room for a semaphore set'), { code: 'ENOSPC' })
        return binding.sectionLockCreate(lockKey, mode)
      }
    }
  })
  t.throws(() => failing.create(key, { mode: 0o600, sections: [{ name: 'a', size: 8 }, { name: 'b', size: 8 }] }), { code: 'ENOSPC' }, 'the failure is thrown')
  t.equal(segmentByKey(key), undefined, 'the segment is gone')
  t.equal(semaphoreByKey(keyFor(203)), undefined, 'and so is the claim lock it made first')
})
