'use strict'
// The modern API: require('nodejs-shm'), open() and Segment, and ShmError's
// explanation of every operating-system failure.
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { inspect } = require('node:util')
const shm = require('..')
const addon = require('../build/Release/shm.node')
const { keyFor, segmentByKey, segmentById, cleanupAfter, unprivilegedPackage, asNobody, openSegment: open } = require('./helpers')

cleanupAfter(t)

const FIXTURES = path.join(__dirname, 'fixtures')
const { hex } = require('../lib/util')

/** Runs fn, which must throw; returns what it threw. */
function thrown (fn) {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

/** Runs a fixture as a child (node, or argv[0] given); returns its parsed JSON output. */
function child (t, args, options = {}) {
  const run = spawnSync(options.command ?? process.execPath, args, { encoding: 'utf8', ...options })
  t.equal(run.status, 0, `${path.basename(args.find((a) => a.endsWith('.js')))} exits with 0`, { stderr: run.stderr })
  return JSON.parse(run.stdout)
}

t.test('require(\'nodejs-shm\') exports the modern API and the original functions', async (t) => {
  t.same(Object.keys(shm).sort(), ['Bridge', 'Segment', 'ShmError', 'bridge', 'closeSHM', 'deleteSHM', 'ftok', 'lastErrorSHM', 'list',
    'open', 'openSHM', 'readSHM', 'remove', 'sections', 'sizeSHM', 'stat', 'writeSHM'], 'these and no others')
  for (const name of ['openSHM', 'sizeSHM', 'writeSHM', 'deleteSHM', 'closeSHM', 'lastErrorSHM']) {
    t.equal(shm[name], addon[name], `${name} is the addon's own function`)
  }
  // lib/read-shm.js, which the addon embeds when it is built.
  t.equal(shm.readSHM.toString(), addon.readSHM.toString(), "readSHM is made from the same source as the addon's")
  for (const name of ['open', 'stat', 'list', 'ftok', 'remove']) t.type(shm[name], 'function', name)
  t.equal(require(path.join(__dirname, '..', 'package.json')).main, 'index.js', 'package.json main is index.js')
})

t.test('open() creates and attaches with PHP\'s flags', async (t) => {
  const key = keyFor(0)
  const created = open(t, key, 'n', 0o640, 100)
  t.ok(created instanceof shm.Segment, 'a Segment')
  t.same({ ...created }, { key, id: segmentByKey(key).shmid, size: 100, readOnly: false }, 'key, id, size, readOnly')
  t.equal(created.closed, false, 'not closed')
  t.equal(segmentByKey(key).perms & 0o777, 0o640, 'mode as given')
  const writer = open(t, key, 'w')
  const reader = open(t, key, 'a')
  const either = open(t, key, 'c', 0o644, 10)
  t.same([writer.id, reader.id, either.id], [created.id, created.id, created.id], "'w', 'a' and 'c' attach it")
  t.same([writer.size, reader.size, either.size], [100, 100, 100], 'each sees the kernel\'s size, not the one asked')
  t.same([writer.readOnly, reader.readOnly, either.readOnly], [false, true, false], "only 'a' is read-only")
  t.equal(segmentByKey(key).nattch, 4, 'four attachments')
  t.throws(() => { created.size = 1 }, TypeError, 'size cannot be assigned')
  t.throws(() => { created.closed = true }, TypeError, 'closed cannot be assigned')
  t.equal(inspect(created), `Segment { key: ${hex(key)}, id: ${created.id}, size: 100, readOnly: false, closed: false }`)
})

t.test('mode defaults to 0o644 when creating', async (t) => {
  open(t, keyFor(1), 'c', undefined, 10)
  open(t, keyFor(2), 'n', undefined, 10)
  t.equal(segmentByKey(keyFor(1)).perms & 0o777, 0o644, "'c'")
  t.equal(segmentByKey(keyFor(2)).perms & 0o777, 0o644, "'n'")
})

t.test('mode defaults to 0 when attaching: another user reads a 0644 segment with the defaults', async (t) => {
  const key = keyFor(3)
  const secret = keyFor(22)
  open(t, key, 'n', 0o644, 32).write('for any reader')
  open(t, secret, 'n', 0o600, 32)
  const user = unprivilegedPackage(t, [path.join(FIXTURES, 'modern-reader.js')])
  const result = child(t, [path.join(user.dir, 'test', 'fixtures', 'modern-reader.js'), String(key), String(secret)],
    { uid: user.uid, gid: user.gid, env: user.env })
  t.equal(result.uid, user.uid, 'the child runs as that user')
  t.same(result.defaults, { value: { readOnly: true, text: 'for any reader' } }, "open(key, 'a') reads it")
  t.same(result.writer.error, {
    name: 'ShmError',
    code: 'EACCES',
    syscall: 'shmat',
    message: `EACCES: permission denied attaching the segment with key ${hex(key)} read-write; ` +
      "open it with 'a' to read it (shmat: Permission denied)"
  }, "open(key, 'w') may not attach read-write")
  t.same(result.asking0644.error, {
    name: 'ShmError',
    code: 'EACCES',
    syscall: 'shmget',
    message: `EACCES: permission denied on the segment with key ${hex(key)}: the mode asks for permissions ` +
      "it does not grant; attach with mode 0 (or 0o444 with 'a') (shmget: Permission denied)"
  }, 'asking for 0o644 is refused: the default 0 is what lets it in')
  t.same(result.secret.error, {
    name: 'ShmError',
    code: 'EACCES',
    syscall: 'shmctl',
    message: `EACCES: permission denied reading the segment with key ${hex(secret)} (shmctl: Permission denied)`
  }, 'a 0600 segment of root is not readable, even with mode 0')
  t.equal(segmentByKey(key).nattch, 1, 'the refused opens left no attachment')
})

t.test('read() copies', async (t) => {
  const seg = open(t, keyFor(4), 'n', 0o600, 10)
  seg.write('0123456789')
  t.equal(seg.read().toString(), '0123456789', 'all of it by default')
  t.equal(seg.read(4).toString(), '456789', 'from start to the end')
  t.equal(seg.read(2, 3).toString(), '234', 'length bytes from start')
  t.equal(seg.read(10).length, 0, 'start == size reads nothing')
  const copy = seg.read()
  copy.fill(0)
  t.equal(seg.read().toString(), '0123456789', 'changing the copy changes nothing')
  t.throws(() => seg.read(11), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'start past the end')
  t.throws(() => seg.read(5, 6), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'length past the end')
  t.throws(() => seg.read('1'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'nothing is coerced')
})

t.test('readInto() copies into the target and returns the bytes copied', async (t) => {
  const seg = open(t, keyFor(5), 'n', 0o600, 10)
  seg.write('0123456789')
  const target = Buffer.alloc(16, '.')
  t.equal(seg.readInto(target), 10, 'all that fits: the whole segment')
  t.equal(target.toString(), '0123456789......', 'into the target itself')
  const small = Buffer.alloc(4, '.')
  t.equal(seg.readInto(small), 4, 'all that fits: the target is full')
  t.equal(small.toString(), '0123')
  t.equal(seg.readInto(small, 1), 3, 'after targetOffset')
  t.equal(small.toString(), '0012')
  t.equal(seg.readInto(small, 0, 8), 2, 'from start')
  t.equal(small.toString(), '8912')
  t.equal(seg.readInto(small, 1, 3, 2), 2, 'exactly length bytes')
  t.equal(small.toString(), '8342')
  t.equal(seg.readInto(small, 4), 0, 'no room left: nothing')
  t.equal(seg.readInto(small, 0, 10), 0, 'start at the end: nothing')
  const words = new Uint16Array(3)
  t.equal(seg.readInto(words), 6, 'a TypedArray counts in bytes')
  t.equal(Buffer.from(words.buffer).toString(), '012345')
  const view = new DataView(new ArrayBuffer(12), 2, 8)
  t.equal(seg.readInto(view, 0, 2), 8, 'a DataView, at its own offset')
  t.equal(Buffer.from(view.buffer).toString('latin1'), '\0\x0023456789\0\0')
  t.throws(() => seg.readInto('target'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'a string target')
  t.throws(() => seg.readInto(small, '1'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'a string offset')
  t.throws(() => seg.readInto(small, 0, '1'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'a string start')
  t.throws(() => seg.readInto(small, NaN), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'NaN offset')
  t.throws(() => seg.readInto(small, 5), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'offset past the target')
  t.throws(() => seg.readInto(small, 0, 11), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'start past the end')
  t.throws(() => seg.readInto(small, 0, 0, 5), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'more than fits')
  t.equal(small.toString(), '8342', 'a refused call copies nothing')
  const gone = new ArrayBuffer(8)
  const detached = [new DataView(gone), new Uint8Array(gone)]
  structuredClone(gone, { transfer: [gone] })
  for (const target of detached) {
    t.equal(seg.readInto(target), 0, `a ${target.constructor.name} whose buffer was transferred has no room`)
    t.throws(() => seg.readInto(target, 0, 0, 1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'not even for one byte')
  }
})

t.test('write() writes at offset, cut at the end', async (t) => {
  const seg = open(t, keyFor(6), 'n', 0o600, 8)
  t.equal(seg.write('héllo'), 6, 'a string, as UTF-8')
  t.equal(seg.read(0, 6).toString(), 'héllo')
  t.equal(seg.write(Buffer.from('XY'), 6), 2, 'a Buffer at offset')
  t.equal(seg.write(new Uint8Array([0x41, 0x42, 0x43]), 6), 2, 'cut at the end')
  t.equal(seg.read().toString(), 'hélloAB')
  t.equal(seg.write('more', 8), 0, 'offset == size writes nothing')
  t.throws(() => seg.write('x', 9), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'offset past the end')
  t.throws(() => seg.write(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'a number is no data')
  const reader = open(t, keyFor(6), 'a')
  t.throws(() => reader.write('x'), {
    name: 'Error',
    code: 'ERR_SHM_READ_ONLY',
    message: `The segment with key ${hex(reader.key)} was opened read-only ('a') and cannot be written; open it with 'w' or 'c' to write`
  }, "not through 'a'")
  t.throws(() => reader.write(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'arguments are checked first')
  t.equal(reader.read().toString(), 'hélloAB', 'the refused write changed nothing')
})

t.test('strings are written as Buffer.from() encodes them, lone surrogates and all, on every Node', async (t) => {
  // Node 24 sizes a lone surrogate as 2 UTF-8 bytes but writes U+FFFD (3): a
  // string sized by Node alone lost its last bytes.
  const shm = require('..')
  const seg = open(t, keyFor(30), 'n', 0o600, 64)
  for (const text of ['\ud83d'.repeat(10), 'a\udc00b', '\ud83d\ude00\ud83d', 'plain ascii', '']) {
    const bytes = Buffer.from(text)
    seg.write(Buffer.alloc(64))
    t.equal(seg.write(text), bytes.length, `write(${JSON.stringify(text)}): ${bytes.length} bytes`)
    t.same(seg.read(0, 64).subarray(0, bytes.length), bytes, '... as Buffer.from() has them')
    const handle = shm.openSHM(keyFor(30), 'w', 0, 0)
    t.equal(shm.writeSHM(handle, text, 0, bytes.length), bytes.length, '... and writeSHM(handle, text, 0, all of them)')
    shm.closeSHM(handle)
  }
})

t.test('stat() describes the open segment', async (t) => {
  const key = keyFor(7)
  const seg = open(t, key, 'n', 0o600, 64)
  const st = seg.stat()
  t.same(st, shm.stat(key), 'the same as stat(key)')
  t.match(st, { key, id: seg.id, size: 64, mode: 0o600, cpid: process.pid, attachments: 1, markedForDeletion: false })
})

t.test('delete() marks the segment; it stays usable until closed', async (t) => {
  const key = keyFor(8)
  const seg = shm.open(key, 'n', 0o600, 16)
  const { id } = seg
  t.equal(seg.delete(), undefined)
  t.equal(segmentByKey(key), undefined, 'the key is free at once')
  t.equal(seg.write('still here'), 10, 'it can still be written')
  t.equal(seg.read(0, 10).toString(), 'still here', 'and read')
  t.equal(seg.stat().markedForDeletion, true, 'marked for deletion')
  const again = open(t, key, 'n', 0o600, 16)
  t.not(again.id, id, 'the key names a new segment')
  seg.close()
  t.equal(segmentById(id), undefined, 'gone at the last detach')
})

t.test('delete() by a user who does not own the segment: ShmError EPERM', async (t) => {
  const key = keyFor(9)
  open(t, key, 'n', 0o644, 16)
  const error = asNobody(() => {
    const seg = shm.open(key, 'a')
    try {
      return thrown(() => seg.delete())
    } finally {
      seg.close()
    }
  })
  t.ok(error instanceof shm.ShmError, 'a ShmError')
  t.match(error, {
    code: 'EPERM',
    errno: -1,
    syscall: 'shmctl',
    key,
    message: `EPERM: only the owner or creator of the segment with key ${hex(key)} (or root) can delete it ` +
      '(shmctl: Operation not permitted)'
  })
  t.ok(segmentByKey(key), 'the segment is still there')
})

t.test('close() detaches, never deletes, and is final', async (t) => {
  const key = keyFor(10)
  const seg = shm.open(key, 'n', 0o600, 16)
  t.equal(segmentByKey(key).nattch, 1)
  t.equal(seg.close(), undefined)
  t.equal(seg.closed, true, 'closed')
  t.equal(segmentByKey(key).nattch, 0, 'detached')
  t.equal(segmentByKey(key).size, 16, 'not deleted')
  t.equal(seg.close(), undefined, 'a second close() does nothing')
  t.same({ ...seg }, { key, id: seg.id, size: 16, readOnly: false }, 'its description remains')
  const closed = { name: 'Error', code: 'ERR_SHM_CLOSED', message: `The segment with key ${hex(key)} (id ${seg.id}) is closed` }
  t.throws(() => seg.read(), closed, 'read()')
  t.throws(() => seg.readInto(Buffer.alloc(1)), closed, 'readInto()')
  t.throws(() => seg.write('x'), closed, 'write()')
  t.throws(() => seg.view(), closed, 'view()')
  t.throws(() => seg.stat(), closed, 'stat()')
  t.throws(() => seg.delete(), closed, 'delete()')
  t.ok(segmentByKey(key), 'still not deleted')
  t.match(inspect(seg), /closed: true }$/)
})

t.test('[Symbol.dispose]() closes (what `using` calls)', async (t) => {
  const key = keyFor(11)
  const seg = shm.open(key, 'n', 0o600, 16)
  t.type(seg[Symbol.dispose], 'function')
  seg[Symbol.dispose]()
  t.equal(seg.closed, true, 'closed')
  t.equal(segmentByKey(key).nattch, 0, 'detached, not deleted')
  seg[Symbol.dispose]()
  t.equal(seg.closed, true, 'twice is fine')
})

t.test('Segment cannot be constructed directly', async (t) => {
  const illegal = { name: 'TypeError', code: 'ERR_ILLEGAL_CONSTRUCTOR', message: 'Segment cannot be constructed directly; use open()' }
  t.throws(() => new shm.Segment(), illegal)
  t.throws(() => new shm.Segment(Symbol('Segment constructor'), 1), illegal, 'not even with a look-alike token')
})

t.test('a Segment garbage-collected while open is detached, not deleted', async (t) => {
  const key = keyFor(12)
  shm.open(key, 'n', 0o600, 64).close()
  const result = child(t, ['--expose-gc', path.join(FIXTURES, 'modern-gc.js'), 'segment', String(key)])
  t.match(result, { before: 0, held: 1, after: 0, size: 64 }, 'attached, then detached by the collector')
  t.ok(result.rounds >= 1, `after ${result.rounds} gc() rounds`)
  t.same(shm.open(key, 'a').read(0, 27).toString(), 'held by a forgotten Segment', 'the segment and its data remain')
})

t.test('misuse throws as the raw API does, and nothing is coerced', async (t) => {
  const key = keyFor(13)
  let called = 0
  const sneaky = { valueOf: () => { called++; return key } }
  t.throws(() => shm.open(sneaky, 'c', 0o600, 8), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'key')
  t.throws(() => shm.open(String(key), 'c'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'key as a string')
  t.throws(() => shm.open(key, 'c', sneaky, 8), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'mode')
  t.throws(() => shm.open(key, 'c', 0o600, sneaky), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'size')
  t.throws(() => shm.open(key, 99), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'flags')
  t.throws(() => shm.open(key, 'x'), {
    name: 'RangeError',
    code: 'ERR_INVALID_ARG_VALUE',
    message: "The \"flags\" argument must be one of 'a', 'c', 'w' or 'n'. Received type string ('x')"
  })
  t.throws(() => shm.open(key, 'cw', 0o600, 8), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }, 'two letters')
  t.throws(() => shm.open(key, 'c'), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, "'c' needs a size")
  t.throws(() => shm.open(key, 'n', 0o600, 1.5), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'a whole size')
  t.throws(() => shm.open(2 ** 32, 'a'), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, 'key out of range')
  t.equal(called, 0, 'valueOf never ran')
  t.equal(segmentByKey(key), undefined, 'nothing was created')
})

t.test('ShmError: what failed, what it means, what to do', async (t) => {
  const key = keyFor(14)
  const noSegment = (flags) => thrown(() => shm.open(key, flags))

  t.test('is an Error with code, errno, syscall, key and the raw error as cause', async (t) => {
    const error = noSegment('w')
    t.ok(error instanceof shm.ShmError, 'a ShmError')
    t.ok(error instanceof Error, 'an Error')
    t.equal(error.name, 'ShmError')
    t.same({ code: error.code, errno: error.errno, syscall: error.syscall, key: error.key },
      { code: 'ENOENT', errno: -2, syscall: 'shmget', key })
    t.equal(error.cause.code, 'ENOENT', 'the cause is the addon\'s report')
    t.match(error.stack, /^ShmError: ENOENT: /, 'the stack starts with name and message')
  })

  t.test("ENOENT opening with 'a' or 'w'", async (t) => {
    for (const flags of ['a', 'w']) {
      t.equal(noSegment(flags).message,
        `ENOENT: no segment with key ${hex(key)}; create it with 'c' or 'n' (shmget: No such file or directory)`, flags)
    }
  })

  t.test('ENOENT for stat() and remove()', async (t) => {
    const message = `ENOENT: no segment with key ${hex(key)} (shmget: No such file or directory)`
    t.throws(() => shm.stat(key), { name: 'ShmError', code: 'ENOENT', syscall: 'shmget', key, message })
    t.throws(() => shm.remove(key), { name: 'ShmError', code: 'ENOENT', syscall: 'shmget', key, message })
  })

  t.test("EEXIST opening an existing key with 'n'", async (t) => {
    open(t, key, 'n', 0o600, 16)
    t.throws(() => shm.open(key, 'n', 0o600, 16), {
      name: 'ShmError',
      code: 'EEXIST',
      errno: -17,
      message: `EEXIST: a segment with key ${hex(key)} already exists; open it with 'c', 'w' or 'a', ` +
        'or delete it first (shmget: File exists)'
    })
  })

  t.test("EINVAL opening with 'c' and a size larger than the segment's: the message gives its size", async (t) => {
    open(t, keyFor(15), 'n', 0o600, 100)
    t.throws(() => shm.open(keyFor(15), 'c', 0o600, 101), {
      name: 'ShmError',
      code: 'EINVAL',
      errno: -22,
      key: keyFor(15),
      message: `EINVAL: the segment with key ${hex(keyFor(15))} has 100 bytes, fewer than the 101 asked for; ` +
        'ask for at most 100, or delete it first (segments cannot grow) (shmget: Invalid argument)'
    })
  })

  t.test('EINVAL for key 0, IPC_PRIVATE', async (t) => {
    const message = "EINVAL: key 0 is IPC_PRIVATE: a private segment cannot be found by key; create one with 'c' or 'n' " +
      '(shmget: Invalid argument)'
    t.throws(() => shm.open(0, 'a'), { name: 'ShmError', code: 'EINVAL', key: 0, message }, "open(0, 'a')")
    t.throws(() => shm.open(0, 'w'), { name: 'ShmError', code: 'EINVAL', key: 0, message }, "open(0, 'w')")
    t.throws(() => shm.stat(0), { name: 'ShmError', code: 'EINVAL', key: 0, message }, 'stat(0)')
    t.throws(() => shm.remove(0), { name: 'ShmError', code: 'EINVAL', key: 0, message }, 'remove(0)')
  })

  t.test('EINVAL and ENOSPC against the kernel limits (in an IPC namespace of its own)', async (t) => {
    const limitKey = keyFor(16)
    const result = child(t, ['--ipc', process.execPath, path.join(FIXTURES, 'modern-limits.js'), String(limitKey)],
      { command: 'unshare' })
    const tooLarge = {
      name: 'ShmError',
      code: 'EINVAL',
      syscall: 'shmget',
      key: limitKey,
      message: 'EINVAL: the system refused a segment of 4097 bytes: more than kernel.shmmax allows? ' +
        '(raise it with sysctl -w kernel.<name>=<value>) (shmget: Invalid argument)'
    }
    t.same(result.tooLargeN.error, tooLarge, "'n' beyond kernel.shmmax")
    t.same(result.tooLargeC.error, tooLarge, "'c' beyond kernel.shmmax, with no segment to compare")
    t.same(result.first, { value: 4096 }, 'one segment fits under kernel.shmmni = 1')
    t.same(result.second.error, {
      name: 'ShmError',
      code: 'ENOSPC',
      syscall: 'shmget',
      key: limitKey + 1,
      message: 'ENOSPC: the system limit on segments (kernel.shmmni) or on shared memory in all (kernel.shmall) ' +
        'is reached (raise it with sysctl -w kernel.<name>=<value>) (shmget: No space left on device)'
    }, 'a second one does not')
    t.same(result.listEmpty, [], 'list() of a namespace without segments is empty')
    t.same(result.listOne, [{ key: limitKey, size: 4096 }], 'list() sees the one segment of that namespace')
    t.equal(segmentByKey(limitKey), undefined, 'nothing of that namespace is seen here')
  })

  t.test('ENOMEM for a segment larger than memory', async (t) => {
    t.throws(() => shm.open(keyFor(17), 'n', 0o600, 2 ** 40), {
      name: 'ShmError',
      code: 'ENOMEM',
      errno: -12,
      syscall: 'shmget',
      message: 'ENOMEM: not enough memory for a segment of 1099511627776 bytes (kernel.shmall, or the memory ' +
        'overcommit policy) (shmget: Cannot allocate memory)'
    })
    t.equal(segmentByKey(keyFor(17)), undefined, 'nothing was created')
  })

  t.test('EACCES at each stage, for a user the mode does not admit', async (t) => {
    const shared = keyFor(18)
    const secret = keyFor(19)
    open(t, shared, 'n', 0o644, 16)
    open(t, secret, 'n', 0o600, 16)
    const [atShmget, atShmctl, atShmat, statting] = asNobody(() => [
      thrown(() => shm.open(shared, 'w', 0o666)),
      thrown(() => shm.open(secret, 'a')),
      thrown(() => shm.open(shared, 'w')),
      thrown(() => shm.stat(secret))
    ])
    t.match(atShmget, {
      name: 'ShmError',
      code: 'EACCES',
      errno: -13,
      syscall: 'shmget',
      message: `EACCES: permission denied on the segment with key ${hex(shared)}: the mode asks for permissions it ` +
        "does not grant; attach with mode 0 (or 0o444 with 'a') (shmget: Permission denied)"
    }, 'asking for more than the mode grants')
    t.match(atShmctl, {
      name: 'ShmError',
      code: 'EACCES',
      syscall: 'shmctl',
      message: `EACCES: permission denied reading the segment with key ${hex(secret)} (shmctl: Permission denied)`
    }, 'attaching a segment it may not read')
    t.match(atShmat, {
      name: 'ShmError',
      code: 'EACCES',
      syscall: 'shmat',
      message: `EACCES: permission denied attaching the segment with key ${hex(shared)} read-write; ` +
        "open it with 'a' to read it (shmat: Permission denied)"
    }, 'attaching read-write a segment it may only read')
    t.match(statting, {
      name: 'ShmError',
      code: 'EACCES',
      syscall: 'shmctl',
      key: secret,
      message: `EACCES: permission denied reading the segment with key ${hex(secret)} (shmctl: Permission denied)`
    }, 'stat() of a segment it may not read')
    t.equal(segmentByKey(shared).nattch, 1, 'no failed open left an attachment')
  })

  t.test('EPERM asking for huge pages without the right to', async (t) => {
    const hugeKey = keyFor(20)
    const error = asNobody(() => thrown(() => shm.open(hugeKey, 'n', 0o4600, 4096)))
    t.match(error, {
      name: 'ShmError',
      code: 'EPERM',
      syscall: 'shmget',
      message: 'EPERM: huge pages (SHM_HUGETLB, 0o4000 in the mode) need CAP_IPC_LOCK or the group in ' +
        'vm.hugetlb_shm_group (shmget: Operation not permitted)'
    })
    t.equal(segmentByKey(hugeKey), undefined, 'nothing was created')
  })

  t.test('EPERM removing a segment the user does not own', async (t) => {
    const owned = keyFor(21)
    open(t, owned, 'n', 0o666, 16)
    t.throws(() => asNobody(() => shm.remove(owned)), {
      name: 'ShmError',
      code: 'EPERM',
      syscall: 'shmctl',
      key: owned,
      message: `EPERM: only the owner or creator of the segment with key ${hex(owned)} (or root) can delete it ` +
        '(shmctl: Operation not permitted)'
    })
    t.equal(segmentByKey(owned).perms & 0o1000, 0, 'not marked for deletion')
  })
})
