'use strict'
// The wake-up tests again, with waits on helper threads instead of io_uring:
// what Node does where io_uring's futex wait (Linux 6.7+) is missing or
// disabled. NODEJS_SHM_WAIT_THREADS=1 makes the addon choose that way here.
const t = require('tap')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { keyFor, cleanupAfter, unprivilegedPackage } = require('./helpers')

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

// Where no thread can be started (a container's pids limit, or RLIMIT_NPROC as
// here, for a user other than root), a wait is refused with a code at once: it
// never hangs and never takes the process down.
const NO_THREADS = `
const { execFileSync } = require('node:child_process')
const shm = require(process.argv[1])
const key = Number(process.argv[2])
const table = shm.sections.create(key, { mode: 0o600, sections: [{ name: 's', size: 8 }] })
execFileSync('prlimit', ['--pid', String(process.pid), '--nproc=1']) // no more threads for this user
const finish = (result) => {
  table.close()
  shm.sections.remove(key)
  console.log(JSON.stringify(result))
}
table.section('s').wait(0, { timeout: 60000 }).then((version) => finish({ version }),
  (error) => finish({ name: error.name, code: error.code, message: error.message }))
`

t.test('a wait that cannot start a helper thread rejects with ERR_SHM_WAIT_FAILED', async (t) => {
  cleanupAfter(t)
  const user = unprivilegedPackage(t)
  const run = spawnSync(process.execPath, ['-e', NO_THREADS, user.dir, String(keyFor(0))], {
    encoding: 'utf8',
    cwd: user.dir, // Node 24+ fails on a package.json it may not read above the working directory
    uid: user.uid,
    gid: user.gid,
    env: { ...user.env, NODEJS_SHM_WAIT_THREADS: '1' },
    timeout: 60000
  })
  t.equal(run.status, 0, 'the child exits with 0', { stderr: run.stderr })
  t.same(JSON.parse(run.stdout), { name: 'Error', code: 'ERR_SHM_WAIT_FAILED', message: 'Could not start a thread to wait on' })
})
