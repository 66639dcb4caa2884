'use strict'
// Error hints speak the API the user called: what sections.create and
// sections.attach advise is a sections call or option, never a shmop flag,
// and no message of the Segment or sections API names an internal handle.
const t = require('tap')
const shm = require('..')
const { keyFor, cleanupTablesAfter, asNobody } = require('./helpers')

cleanupTablesAfter(t)

const hex = (key) => '0x' + (key >>> 0).toString(16).padStart(8, '0')

t.test('sections.attach as a user without write permission suggests { readOnly: true }', async (t) => {
  const key = keyFor(0)
  const table = shm.sections.create(key, { mode: 0o644, sections: [{ name: 's', size: 8 }] })
  t.teardown(() => { table.close(); shm.sections.remove(key) })
  const error = asNobody(() => { try { shm.sections.attach(key) } catch (error) { return error } })
  t.match(error, {
    name: 'ShmError',
    code: 'EACCES',
    syscall: 'shmat',
    message: `EACCES: permission denied attaching the section table ${hex(key)} for writing; ` +
      'attach it with { readOnly: true } to read it (shmat: Permission denied)'
  })
  t.equal(asNobody(() => shm.sections.attach(key, { readOnly: true }).section('s').version), 0, 'and that works')
})

t.test('sections.create on a key in use points to sections.attach and sections.apply', async (t) => {
  const key = keyFor(1)
  const table = shm.sections.create(key, { mode: 0o600, sections: [{ name: 's', size: 8 }] })
  t.teardown(() => { table.close(); shm.sections.remove(key) })
  t.throws(() => shm.sections.create(key, { sections: [{ name: 's', size: 8 }] }), {
    name: 'ShmError',
    code: 'EEXIST',
    message: `EEXIST: a segment with key ${hex(key)} already exists; use sections.attach(${hex(key)}) to use the table in it, ` +
      `or sections.apply(${hex(key)}, layout) to give it a new layout (every process using it follows) (shmget: File exists)`
  })
})

t.test('sections.attach of a missing key points to sections.create and sections.apply', async (t) => {
  const key = keyFor(2)
  t.throws(() => shm.sections.attach(key), {
    code: 'ENOENT',
    message: `ENOENT: no segment with key ${hex(key)}; sections.create() or sections.apply() lays out a new section table (shmget: No such file or directory)`
  })
})

t.test('Segment#write on a read-only segment names no handle', async (t) => {
  const key = keyFor(3)
  const writer = shm.open(key, 'n', 0o600, 16)
  const reader = shm.open(key, 'a')
  t.teardown(() => { reader.close(); writer.delete(); writer.close() })
  t.throws(() => reader.write('x'), {
    name: 'Error',
    code: 'ERR_SHM_READ_ONLY',
    message: `The segment with key ${hex(key)} was opened read-only ('a') and cannot be written; open it with 'w' or 'c' to write`
  })
})
