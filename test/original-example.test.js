'use strict'
// `node test/test.js`, the original README's example, runs as it always did.
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { segmentByKey, removeId } = require('./helpers')

const KEY = 1236 // the example's own key

t.test('the original example writes, reads back, deletes and closes', (t) => {
  const before = segmentByKey(KEY)
  t.equal(before, undefined, 'key 1236 is free before the example runs')
  if (!before) {
    t.teardown(() => {
      const left = segmentByKey(KEY)
      if (left) removeId(left.shmid)
    })
  }
  const run = spawnSync(process.execPath, [path.join(__dirname, 'test.js')], { encoding: 'utf8' })
  t.equal(run.status, 0, 'exits with 0')
  const lines = run.stdout.split('\n')
  t.match(run.stdout, /^Object:\n/, 'prints the module object first')
  for (const name of ['openSHM', 'sizeSHM', 'writeSHM', 'readSHM', 'deleteSHM', 'closeSHM']) {
    t.match(run.stdout, new RegExp(`${name}: \\[Function: ${name}\\]`), `the module has ${name}`)
  }
  t.ok(lines.includes('opened shmkey: 1236  shmid: 1'), 'prints its handle')
  t.ok(lines.includes("writing '1234567890', written: 10"), 'writes 10 bytes')
  t.ok(lines.includes('readed(HEXA): 31 32 33 34 35 36 37 38 39 30'), 'reads them back as hex')
  t.ok(lines.includes('waiting 10 secs to detach and close'), 'waits')
  t.ok(lines.includes('detatch retval: 1'), 'deleteSHM returns 1 after the wait')
  t.ok(lines.includes('close retval: 1'), 'closeSHM returns 1 after the wait')
  t.equal(segmentByKey(KEY), undefined, 'the segment is gone afterwards')
  t.end()
})
