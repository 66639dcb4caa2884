'use strict'
// Views and copies at any size end in a view or an error with a code, never in
// a signal: a view of 1 GiB or more (nan's NewBuffer asserts below the largest
// Buffer), a section read into a target that lies in a huge view (copied aside
// through a buffer the payload's size, not the target's), and a segment in
// huge pages made with SHM_NORESERVE by PHP when no huge page is free (SIGBUS
// at first touch, unless populated first).
const t = require('tap')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const shm = require('..')
const { keyFor, cleanupTablesAfter, php, requirePHP } = require('./helpers')

cleanupTablesAfter(t)
requirePHP()

const run = (key, which) => spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures', 'views-large.js'), JSON.stringify({ key, case: which })], { encoding: 'utf8', timeout: 60000 })

t.test('view() of a segment of 1 GiB and more is a view', async (t) => {
  const child = run(keyFor(0), 'view')
  t.equal(child.signal, null, 'no signal', { stderr: child.stderr })
  t.same(JSON.parse(child.stdout), { length: 2 ** 30 + 4096, last: 42 }, 'as long as the segment, over its memory')
})

t.test('readInto() a target in a 512 MiB view copies aside only the payload', async (t) => {
  const child = run(keyFor(2), 'readInto')
  t.equal(child.signal, null, 'no signal', { stderr: child.stderr })
  const seen = JSON.parse(child.stdout)
  t.same(seen.got, { version: 1, length: 5 })
  t.equal(seen.text, 'hello')
  // Before, a temporary as large as the target: 512 MiB allocated and zeroed (0.4 s).
  t.ok(seen.grewKiB < 64 * 1024, `the process grew by ${seen.grewKiB} KiB`)
  t.ok(seen.ms < 200, `in ${seen.ms.toFixed(2)} ms`)
  t.same(seen.again, { version: 2, length: 6 }, 'a target over the section\'s own data area')
  t.equal(seen.own, 'world!')
})

t.test('no memory for the copy aside is ENOMEM (syscall malloc), never an abort', async (t) => {
  const child = run(keyFor(6), 'enomem')
  t.equal(child.signal, null, 'no signal', { stderr: child.stderr })
  t.same(JSON.parse(child.stdout), {
    name: 'ShmError',
    code: 'ENOMEM',
    syscall: 'malloc',
    message: `ENOMEM: not enough memory for a temporary copy of ${64 * 2 ** 20} bytes (malloc: Cannot allocate memory)`
  })
})

t.test('a segment PHP made in huge pages with SHM_NORESERVE is an error to attach when too few are free, never SIGBUS', async (t) => {
  const key = keyFor(4)
  const meminfo = fs.readFileSync('/proc/meminfo', 'utf8')
  const free = Number(/HugePages_Free:\s+(\d+)/.exec(meminfo)[1])
  const pageKiB = Number(/Hugepagesize:\s+(\d+) kB/.exec(meminfo)[1])
  const size = (free + 1) * pageKiB * 1024 // more than the free huge pages
  const made = php(['-r', 'var_export(shmop_open((int) $argv[1], "n", 0600 | 04000 | 010000, (int) $argv[2]) !== false);', String(key), String(size)])
  t.equal(made.stdout, 'true', 'PHP made it (SHM_HUGETLB | SHM_NORESERVE: nothing is reserved)', { stderr: made.stderr })
  const attach = `
const shm = require(${JSON.stringify(path.join(__dirname, '..'))})
const key = Number(process.argv[1])
const codes = []
for (const open of [() => shm.open(key, 'a'), () => shm.open(key, 'w'), () => shm.sections.attach(key, { readOnly: true })]) {
  try { open(); codes.push('attached') } catch (error) { codes.push([error.code, error.syscall, error.message]) }
}
codes.push([shm.openSHM(key, 'a', 0, 0), shm.lastErrorSHM().code])
console.log(JSON.stringify(codes))`
  const child = spawnSync(process.execPath, ['-e', attach, String(key)], { encoding: 'utf8', timeout: 60000 })
  t.equal(child.signal, null, 'no signal', { stderr: child.stderr })
  const codes = JSON.parse(child.stdout)
  const words = 'the segment with key 0x' + (key >>> 0).toString(16) + ' lives in huge pages (SHM_HUGETLB) that were not reserved ' +
    '(SHM_NORESERVE), and too few are free to back it: touching it would kill the process with SIGBUS. ' +
    'Free or add huge pages (vm.nr_hugepages), or have its creator reserve them (no SHM_NORESERVE) (madvise: Cannot allocate memory)'
  t.same(codes.slice(0, 3), Array(3).fill(['ENOMEM', 'madvise', `ENOMEM: ${words}`]), 'Segment and sections: ENOMEM, from madvise')
  t.same(codes[3], [0, 'ENOMEM'], 'openSHM: 0, and ENOMEM in lastErrorSHM()')
  shm.remove(key)
})
