'use strict'
// What the system knows of segments: stat(key), list(), remove(key), and
// ftok(), checked against the kernel (/proc/sysvipc/shm) and against PHP.
const t = require('tap')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const shm = require('..')
const { keyFor, segments, segmentByKey, cleanupAfter, php, requirePHP, asNobody, openSegment: open } = require('./helpers')

cleanupAfter(t)

const { hex } = require('../lib/util')
const FIELDS = ['key', 'id', 'size', 'mode', 'uid', 'gid', 'cuid', 'cgid', 'cpid', 'lpid', 'attachments', 'atime',
  'dtime', 'ctime', 'markedForDeletion']

/** A kernel row (helpers.segments()) in the shape stat() returns. */
function fromKernel (row) {
  const date = (seconds) => (seconds === 0 ? null : new Date(seconds * 1000))
  return {
    key: row.key,
    id: row.shmid,
    size: row.size,
    mode: row.perms & 0o777,
    uid: row.uid,
    gid: row.gid,
    cuid: row.cuid,
    cgid: row.cgid,
    cpid: row.cpid,
    lpid: row.lpid,
    attachments: row.nattch,
    atime: date(row.atime),
    dtime: date(row.dtime),
    ctime: date(row.ctime),
    markedForDeletion: (row.perms & 0o1000) !== 0
  }
}

function tempDir (t, name = 'nodejs-shm-ftok-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), name))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('stat(key) is what the kernel knows, with times as Dates', async (t) => {
  const key = keyFor(0)
  const seg = open(t, key, 'n', 0o640, 1000)
  const st = shm.stat(key)
  t.same(Object.keys(st), FIELDS, 'every field, in order')
  t.same(st, fromKernel(segmentByKey(key)), 'as /proc/sysvipc/shm has it')
  t.match(st, { key, id: seg.id, size: 1000, mode: 0o640, uid: 0, cpid: process.pid, lpid: process.pid, attachments: 1 })
  t.ok(st.atime instanceof Date && st.ctime instanceof Date, 'attach and change times are Dates')
  t.ok(Math.abs(st.ctime - Date.now()) < 60e3, 'and recent')
  t.equal(st.dtime, null, 'never detached: null')
  shm.open(key, 'a').close()
  t.ok(shm.stat(key).dtime instanceof Date, 'a detach sets dtime')
  t.equal(shm.stat(key).attachments, 1)
})

t.test('stat(key) misuse', async (t) => {
  t.throws(() => shm.stat(String(keyFor(1))), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => shm.stat(1.5), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => shm.stat(2 ** 32), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => shm.stat(), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
})

t.test('stat(key) of a negative key reports the key as given', async (t) => {
  const key = keyFor(2) | 0x80000000 // never created
  t.ok(key < 0, 'a negative key_t')
  t.throws(() => shm.stat(key), { code: 'ENOENT', key, message: `ENOENT: no segment with key ${hex(key)} (shmget: No such file or directory)` })
  t.throws(() => shm.stat(key >>> 0), { code: 'ENOENT', key, message: `ENOENT: no segment with key ${hex(key)} (shmget: No such file or directory)` },
    'its unsigned spelling names the same key')
})

t.test('list() has every segment, with the fields of stat()', async (t) => {
  const plain = open(t, keyFor(3), 'n', 0o600, 123)
  const shared = open(t, keyFor(4), 'n', 0o644, 4567)
  open(t, keyFor(4), 'a')
  const marked = open(t, keyFor(5), 'n', 0o600, 89)
  marked.delete()
  const before = segments()
  const rows = shm.list()
  const after = segments()
  t.ok(Array.isArray(rows), 'an array')
  for (const row of rows) t.same(Object.keys(row), FIELDS, `segment ${row.id} has every field`)
  const byId = (id) => rows.find((row) => row.id === id)
  t.same(byId(plain.id), shm.stat(keyFor(3)), 'a segment as stat(key) sees it')
  t.same(byId(shared.id), shm.stat(keyFor(4)), 'with two attachments')
  t.equal(byId(shared.id).attachments, 2)
  t.same(byId(marked.id), marked.stat(), 'a segment marked for deletion, as segment.stat() sees it')
  t.match(byId(marked.id), { key: 0, markedForDeletion: true, size: 89 })
  for (const seg of [plain, shared, marked]) {
    t.same(byId(seg.id), fromKernel(after.find((row) => row.shmid === seg.id)), `segment ${seg.id} as the kernel lists it`)
  }
  // Other test files make and drop segments meanwhile: one there before and after list() was there during it.
  const throughout = before.filter((row) => after.some((later) => later.shmid === row.shmid))
  t.same(throughout.filter((row) => !byId(row.shmid)), [], `all ${throughout.length} segments there throughout are listed`)
})

t.test('list() where segments cannot be listed: ERR_SHM_UNSUPPORTED', async (t) => {
  const missing = path.join(tempDir(t), 'sysvipc', 'shm')
  const error = (() => { try { shm.list(missing) } catch (e) { return e } })()
  t.match(error, {
    name: 'Error',
    code: 'ERR_SHM_UNSUPPORTED',
    message: `Listing segments needs ${missing} (Linux); use ipcs -m on this system`
  })
  t.equal(error.cause.code, 'ENOENT', 'the cause is why the file could not be read')
})

t.test('remove(key) marks for deletion without attaching', async (t) => {
  const idle = keyFor(6)
  shm.open(idle, 'n', 0o600, 16).close()
  t.equal(shm.remove(idle), undefined)
  t.equal(segmentByKey(idle), undefined, 'a segment nobody attaches goes at once')

  const busy = keyFor(7)
  const seg = shm.open(busy, 'n', 0o600, 16)
  const { id } = seg
  shm.remove(busy)
  t.equal(segmentByKey(busy), undefined, 'the key is free at once')
  t.match(shm.list().find((row) => row.id === id), { key: 0, markedForDeletion: true, attachments: 1 },
    'an attached segment waits for its last detach')
  seg.write('still usable')
  t.equal(seg.read(0, 12).toString(), 'still usable')
  seg.close()
  t.equal(shm.list().find((row) => row.id === id), undefined, 'and then goes')
  t.throws(() => shm.remove('1'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'misuse')
})

t.test('ftok() gives the key PHP\'s ftok() gives', async (t) => {
  requirePHP()
  const dir = tempDir(t)
  const file = path.join(dir, 'file')
  fs.writeFileSync(file, '')
  const accented = path.join(dir, 'clé été')
  fs.mkdirSync(accented)
  const paths = [__filename, '/', os.tmpdir(), dir, file, accented]
  const projects = [0x00, 0x01, 0x41, 0x5a, 0x61, 0x7a, 0x7f]
  const cases = paths.flatMap((p) => projects.map((project) => [p, project]))
  const run = php(['-r', 'foreach (json_decode($argv[1]) as [$p, $b]) echo ftok($p, chr($b)), "\\n";', JSON.stringify(cases)])
  t.equal(run.status, 0, 'php runs', { stderr: run.stderr })
  const expected = run.stdout.trim().split('\n').map(Number)
  t.equal(expected.length, cases.length)
  const keys = cases.map(([p, project]) => shm.ftok(p, String.fromCharCode(project)))
  t.same(keys, expected, `${cases.length} paths and project characters, "\\0" included`)
  t.ok(keys.every(Number.isInteger), 'integers')
  t.equal(new Set(keys).size, keys.length, 'all different')
  t.equal(shm.ftok(file, 'a'), shm.ftok(file, 'a'), 'the same every time')
})

t.test('ftok() with project bytes 0x80-0xff gives PHP\'s negative keys', async (t) => {
  requirePHP()
  const bytes = [0x80, 0xa9, 0xfe, 0xff]
  const run = php(['-r', 'foreach (json_decode($argv[1]) as $b) echo ftok($argv[2], chr($b)), "\\n";', JSON.stringify(bytes), __filename])
  const expected = run.stdout.trim().split('\n').map(Number)
  t.ok(expected.every((key) => key < 0), 'PHP gives negative keys')
  for (const [i, byte] of bytes.entries()) {
    let key
    try {
      key = shm.ftok(__filename, String.fromCharCode(byte))
    } catch (error) {
      key = error
    }
    t.equal(key, expected[i], `project byte 0x${byte.toString(16)}`)
  }
})

t.test('ftok() of a path that cannot be stat\'ed: an Error with code, errno, syscall and path', async (t) => {
  const dir = tempDir(t)
  const missing = path.join(dir, 'missing')
  t.throws(() => shm.ftok(missing, 'a'), {
    name: 'Error',
    code: 'ENOENT',
    errno: -2,
    syscall: 'ftok',
    path: missing,
    message: `ENOENT: ftok() failed for '${missing}': ftok: No such file or directory`
  }, 'a missing path')
  fs.writeFileSync(path.join(dir, 'file'), '')
  const hidden = path.join(dir, 'file')
  t.throws(() => asNobody(() => shm.ftok(hidden, 'a')), {
    code: 'EACCES',
    errno: -13,
    syscall: 'ftok',
    path: hidden
  }, 'a path in a folder the user may not search (mkdtemp makes it 0700)')
  t.equal(php(['-r', 'echo @ftok($argv[1], "a");', missing]).stdout, '-1', 'where PHP returns -1')
})

t.test('ftok() of a path through a file names the failure', async (t) => {
  const through = path.join(__filename, 'x')
  t.throws(() => shm.ftok(through, 'a'), {
    code: 'ENOTDIR',
    errno: -20,
    syscall: 'ftok',
    path: through,
    message: `ENOTDIR: ftok() failed for '${through}': ftok: Not a directory`
  })
})

t.test('ftok() misuse', async (t) => {
  const value = (message) => ({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', message })
  t.throws(() => shm.ftok('', 'a'),
    value("The \"path\" argument must be a non-empty string without NUL bytes. Received type string ('')"), 'empty path')
  t.throws(() => shm.ftok('/tmp\0/x', 'a'), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }, 'NUL in the path')
  t.throws(() => shm.ftok('/', ''),
    value("The \"projectId\" argument must be a single character from '\\u0000' to '\\u00ff' (one byte, as PHP's). " +
      "Received type string ('')"), 'no project')
  t.throws(() => shm.ftok('/', 'ab'), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }, 'two characters')
  t.throws(() => shm.ftok('/', '€'), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }, 'a character beyond one byte')
  t.throws(() => shm.ftok(Buffer.from('/'), 'a'), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
    message: 'The "path" argument must be of type string. Received an instance of Buffer'
  })
  t.throws(() => shm.ftok('/', 97), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
    message: 'The "projectId" argument must be of type string. Received type number (97)'
  })
  t.throws(() => shm.ftok('/'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, 'no project at all')
})
