'use strict'
// What pending waits cost: the waits of a thread on one section share one
// sleeper (one futex sleep on the ring, or one helper thread), so idle CPU does
// not grow with their number; ending a wait wakes no other, so closing N waits
// costs O(N). Both ways of waiting: io_uring (where the kernel has it) and
// helper threads (NODEJS_SHM_WAIT_THREADS=1, as under Docker's seccomp profile).
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { keyFor, cleanupTablesAfter } = require('./helpers')

cleanupTablesAfter(t)

for (const [n, threads] of [[0, false], [2, true]]) {
  t.test(`1 000 idle waits use little CPU, 3 000 waits close at once (${threads ? 'helper threads' : 'default'})`, async (t) => {
    const run = spawnSync(process.execPath, [path.join(__dirname, 'fixtures', 'sections-wait-cost.js'),
      JSON.stringify({ key: keyFor(n), idle: 1000, seconds: 3, many: 3000, sections: 100 })], {
      encoding: 'utf8',
      env: { ...process.env, NODEJS_SHM_WAIT_THREADS: threads ? '1' : '0' },
      timeout: 120000
    })
    t.equal(run.status, 0, 'the child ran', { stderr: run.stderr, signal: run.signal })
    const { cpu, closeMs, settled } = JSON.parse(run.stdout)
    // One poller at 100 wake-ups a second costs well under 5% of a core; one
    // per wait cost about half of one (1 000 x 100 wake-ups a second).
    t.ok(cpu < 0.1, `1 000 idle waits used ${(cpu * 100).toFixed(1)}% of a core`)
    t.equal(settled, 3000, 'every wait settled')
    // Before, 1 500 waits on helper threads took 4 s to close, and 3 000 did not in 100 s.
    t.ok(closeMs < 2000, `3 000 waits on 100 sections closed in ${Math.round(closeMs)} ms`)
    t.comment(`${threads ? 'helper threads' : 'default'}: idle CPU of 1 000 waits ${(cpu * 100).toFixed(2)}% of a core; closing 3 000 waits ${Math.round(closeMs)} ms`)
  })
}
