'use strict'
// The wake-up tests again, with waits on helper threads instead of io_uring:
// what Node does where io_uring's futex wait (Linux 6.7+) is missing or
// disabled. NODEJS_SHM_WAIT_THREADS=1 makes the addon choose that way here.
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

t.test('sections-wake.test.js passes with waits on helper threads', async (t) => {
  const run = spawnSync(process.execPath, [path.join(__dirname, 'sections-wake.test.js')], {
    encoding: 'utf8',
    env: { ...process.env, NODEJS_SHM_WAIT_THREADS: '1' },
    timeout: 120000
  })
  const failed = run.stdout.split('\n').filter((line) => /^\s*not ok /.test(line))
  t.same(failed, [], 'no assertion fails')
  t.equal(run.signal, null, 'no signal')
  t.equal(run.status, 0, 'exit status 0')
  const plan = Number(/^1\.\.(\d+)$/m.exec(run.stdout)?.[1])
  const passed = run.stdout.match(/^ok \d+ - /gm)?.length
  t.ok(plan >= 7 && passed === plan, `all ${plan} of its tests ran and passed (${passed})`)
})
