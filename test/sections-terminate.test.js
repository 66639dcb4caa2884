'use strict'
// A worker blocked in section.waitSync() is terminated promptly: V8's
// TerminateExecution does not interrupt a futex sleep, so waitSync sleeps in
// slices and looks up between them (src/shm-sections.cc, Terminating).
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { keyFor, cleanupTablesAfter } = require('./helpers')

cleanupTablesAfter(t)

for (const [n, timeout] of [[0, null], [1, 60000]]) {
  t.test(`worker.terminate() ends a worker in waitSync(v${timeout ? `, ${timeout}` : ''}) within a second`, async (t) => {
    const run = spawnSync(process.execPath, [path.join(__dirname, 'fixtures', 'sections-terminate.js'), JSON.stringify({ key: keyFor(n), timeout })], {
      encoding: 'utf8',
      timeout: 30000 // before the fix: no timeout never ended, a timeout was waited out
    })
    t.equal(run.signal, null, 'the process ends by itself', { stderr: run.stderr })
    t.equal(run.status, 0, 'with status 0', { stderr: run.stderr })
    const { ms } = JSON.parse(run.stdout)
    t.ok(ms < 1000, `terminate() took ${Math.round(ms)} ms`)
    t.comment(`terminate() of a worker blocked in waitSync: ${Math.round(ms)} ms`)
  })
}
