'use strict'
/*
 * One writer per section, as users deploy: the guarantee rests on each
 * section's claim lock (a semaphore taken with SEM_UNDO | IPC_NOWAIT), which
 * the kernel tracks per IPC namespace, never on whether a pid is visible.
 *   - writers in another PID namespace (unshare --pid: containers of one pod,
 *     docker --ipc=host), Node and PHP, against writers in this one;
 *   - a private /proc mounted hidepid=2 with the other writer as uid 65534;
 *   - a semaphore set pre-created by uid 65534 (at the table's key, or at a
 *     claim lock's key after that lock was removed): a clear error, no hang.
 * In every case exactly one claim wins while the holder lives, and after
 * SIGKILL the other writer takes over at once. The figures (takeovers tried,
 * takeovers that wrongly succeeded) are printed at the end.
 */
const t = require('tap')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP, unprivilegedPackage, semaphores } = require('./helpers')
const { peer } = require('./fixtures/sections-common')

cleanupTablesAfter(t)
requirePHP()

const PHP_FILES = ['php/autoload.php', ...fs.readdirSync(path.join(__dirname, '..', 'php', 'src')).map((f) => `php/src/${f}`),
  'test/fixtures/sections-peer.php', 'test/fixtures/sections-payload.php', 'test/fixtures/sections-peer.js']
const figures = { tried: 0, wronglySucceeded: 0, takenOverAtOnce: 0, takeoversAfterKill: 0 }

const LANGUAGES = {
  node: (dir = path.join(__dirname, '..')) => [process.execPath, path.join(dir, 'test', 'fixtures', 'sections-peer.js')],
  php: (dir = path.join(__dirname, '..')) => ['php', path.join(dir, 'test', 'fixtures', 'sections-peer.php')]
}

/** A peer in this process's namespaces. */
function localPeer (t, language) {
  const [command, ...args] = LANGUAGES[language]()
  return peer(t, command, args)
}

/** A peer in a new PID namespace (same IPC namespace); `kill()` SIGKILLs the peer itself, then resolves when it is gone. */
function pidNamespacePeer (t, language) {
  const p = peer(t, 'unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', ...LANGUAGES[language]()])
  return { ...p, kill: () => killInside(p) }
}

/** A peer as uid 65534 under a private /proc mounted hidepid=2 (unshare --mount). */
function hiddenPeer (t, language, user) {
  const [command, ...args] = LANGUAGES[language](user.dir)
  const script = 'mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid 65534 --regid 65534 --clear-groups "$@"'
  const p = peer(t, 'unshare', ['--mount', 'sh', '-c', script, 'sh', command, ...args], { env: user.env })
  return { ...p, kill: () => killInside(p) }
}

/** The process a wrapper (unshare, sh) runs: the child at the end of the chain. */
function innermost (pid) {
  for (;;) {
    const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)
    if (children.length === 0) return pid
    pid = Number(children[0])
  }
}

async function killInside (p) {
  process.kill(innermost(p.pid), 'SIGKILL')
  await p.exited
}

/** claim() by whatever `attempt` is; counts it as a takeover tried while the holder lives. */
async function contend (t, label, attempt) {
  figures.tried++
  try {
    await attempt()
    figures.wronglySucceeded++
    t.fail(`${label}: the claim succeeded while the holder lives`)
  } catch (error) {
    t.equal(error.code, 'ERR_SHM_SECTION_BUSY', `${label}: busy`)
  }
}

/** After the holder's SIGKILL, the claim must succeed at its first try. */
async function takeOver (t, label, attempt) {
  figures.takeoversAfterKill++
  try {
    await attempt()
    figures.takenOverAtOnce++
    t.pass(`${label}: taken over at once`)
  } catch (error) {
    t.fail(`${label}: ${error.code} ${error.message}`)
  }
}

function table (t, key, mode = 0o600) {
  const made = shm.sections.create(key, { mode, sections: [{ name: 'a', size: 64 }] })
  t.teardown(() => { made.close(); shm.sections.remove(key) })
  return made
}

let n = 0
for (const holderLanguage of ['node', 'php']) {
  for (const contenderLanguage of ['node', 'php']) {
    t.test(`PID namespaces: a ${holderLanguage} holder in another PID namespace, a ${contenderLanguage} contender here, and back`, async (t) => {
      const key = keyFor(++n)
      const mine = table(t, key)
      const a = mine.section('a')
      const inside = pidNamespacePeer(t, holderLanguage)
      const { pid } = await inside.call('attach', { key })
      t.ok(pid < 10, `the holder sees itself as pid ${pid} in its namespace`)
      await inside.call('claim', { name: 'a' })
      t.equal(await inside.call('publish', { name: 'a', hex: '01' }), 1, 'and publishes')
      const here = localPeer(t, contenderLanguage)
      await here.call('attach', { key })
      await contend(t, `${contenderLanguage} here`, () => here.call('claim', { name: 'a' }))
      await contend(t, 'this process', () => a.claim())
      t.throws(() => a.publish('x'), { code: 'ERR_SHM_NOT_WRITER' }, 'and cannot publish')
      // Its pid means nothing here; its claim lock, held, says it lives.
      t.match(a.info().writer, { pid, alive: true, self: false }, 'info() here: the writer in the other PID namespace is alive')
      t.match(await here.call('writer', { name: 'a' }), { pid, alive: true, self: false }, `and so says ${contenderLanguage}'s info()`)
      await inside.kill()
      t.match(a.info().writer, { pid, alive: false }, 'once it is killed: not alive (its lock was given back)')
      t.match(await here.call('writer', { name: 'a' }), { pid, alive: false }, `in ${contenderLanguage}'s info() too`)
      await takeOver(t, `${contenderLanguage} here, after the holder's SIGKILL`, () => here.call('claim', { name: 'a' }))
      t.equal(await here.call('publish', { name: 'a', hex: '02' }), 2, 'the new writer publishes version 2')

      // Back: the holder here, a contender in another PID namespace (it cannot see the holder's pid).
      const outside = pidNamespacePeer(t, holderLanguage)
      await outside.call('attach', { key })
      t.match(await outside.call('writer', { name: 'a' }), { alive: true, self: false }, `${holderLanguage}'s info() in another PID namespace: the writer here is alive`)
      await contend(t, `${holderLanguage} in another PID namespace`, () => outside.call('claim', { name: 'a' }))
      here.child.kill('SIGKILL')
      await here.exited
      await takeOver(t, `${holderLanguage} in another PID namespace, after SIGKILL here`, () => outside.call('claim', { name: 'a' }))
      t.equal(await outside.call('publish', { name: 'a', hex: '03' }), 3)
      t.same(a.read(), { version: 3, data: Buffer.from([3]) }, 'one writer at a time: versions 1, 2, 3 in turn')
    })
  }
}

for (const language of ['node', 'php']) {
  t.test(`hidepid=2 and uid 65534: a ${language} contender that cannot see the holder in /proc`, async (t) => {
    const key = keyFor(++n)
    const mine = table(t, key, 0o666)
    const user = unprivilegedPackage(t, PHP_FILES)
    const holders = { node: localPeer(t, 'node'), php: localPeer(t, 'php') }
    const hidden = hiddenPeer(t, language, user)
    const { pid: hiddenPid } = await hidden.call('attach', { key })
    t.ok(hiddenPid > 0)
    const seen = spawnSync('unshare', ['--mount', 'sh', '-c', `mount -t proc -o hidepid=2 proc /proc && setpriv --reuid 65534 --regid 65534 --clear-groups ls /proc/${process.pid}`])
    t.not(seen.status, 0, 'under that /proc, uid 65534 does not see root\'s processes')
    for (const [holderLanguage, holder] of Object.entries(holders)) {
      await holder.call('attach', { key })
      await holder.call('claim', { name: 'a' })
      await contend(t, `${language} as uid 65534 against a ${holderLanguage} holder (root)`, () => hidden.call('claim', { name: 'a' }))
      holder.child.kill('SIGKILL')
      await holder.exited
      await takeOver(t, `${language} as uid 65534, after the ${holderLanguage} holder's SIGKILL`, () => hidden.call('claim', { name: 'a' }))
      await hidden.call('release', { name: 'a' })
    }
    // And the other way: uid 65534 holds; root contends, then takes over at once.
    await hidden.call('claim', { name: 'a' })
    await contend(t, 'root here, against the hidden holder', () => mine.section('a').claim())
    await hidden.kill()
    await takeOver(t, 'root here, after the hidden holder\'s SIGKILL', () => mine.section('a').claim())
  })
}

/** Makes a semaphore set as uid 65534 with semget() alone (all semaphores 0: a lock that is never free); returns its id. */
function hostileSet (key) {
  const run = spawnSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'php', '-d', 'ffi.enable=1', '-r',
    `$c = FFI::cdef('int semget(int key, int nsems, int flags);', 'libc.so.6'); echo $c->semget(${key | 0}, 3, 0666 | 01000);`], { encoding: 'utf8' })
  const id = Number(run.stdout)
  if (!(id >= 0)) throw new Error(`could not make the hostile set: ${run.stdout} ${run.stderr}`)
  return id
}

function removeSet (t, id) {
  t.teardown(() => spawnSync('ipcrm', ['-s', String(id)]))
}

/** Runs a claim in a child that must end within 10 s (a hang is a failure, not a frozen test). */
function claimInChild (language, key, { ffi = 1 } = {}) {
  const run = language === 'node'
    ? spawnSync(process.execPath, ['-e', `const shm = require(${JSON.stringify(path.join(__dirname, '..'))})
        try { const table = shm.sections.attach(${key}); table.section('a').claim(); console.log('claimed'); table.close() }
        catch (error) { console.log(error.code + ' ' + error.message) }`], { encoding: 'utf8', timeout: 10000 })
    : spawnSync('php', ['-d', `ffi.enable=${ffi}`, '-r', `require '${path.join(__dirname, '..', 'php', 'autoload.php')}';
        try { $table = NodejsShm\\SectionTable::attach(${key}); $table->section('a')->claim(); echo "claimed\\n"; $table->close(); }
        catch (NodejsShm\\SectionsException $e) { echo $e->getMessage(), "\\n"; }`], { encoding: 'utf8', timeout: 10000 })
  return { output: run.stdout.trim(), hung: run.signal === 'SIGTERM', stderr: run.stderr }
}

t.test('a semaphore set pre-created at the table\'s key by uid 65534 changes nothing', async (t) => {
  const key = keyFor(++n)
  removeSet(t, hostileSet(key))
  table(t, key, 0o666)
  for (const language of ['node', 'php']) {
    const { output, hung } = claimInChild(language, key)
    t.notOk(hung, `${language}: claim() does not hang`)
    t.equal(output, 'claimed', `${language}: claims at once (the table's claim locks are its own)`)
  }
})

t.test('a claim lock replaced by uid 65534 (after it was removed): a clear error naming it, no hang', async (t) => {
  const key = keyFor(++n)
  const mine = table(t, key, 0o666)
  const lock = mine.section('a').entry.lock
  spawnSync('ipcrm', ['-s', String(lock.id)])
  const id = hostileSet(lock.key)
  removeSet(t, id)
  t.equal(semaphores().find((s) => s.semid === id).uid, 65534, 'the set at the recorded key belongs to uid 65534')
  const named = new RegExp(`section 'a': its claim lock \\(semaphore set id ${lock.id}, key 0x${(lock.key >>> 0).toString(16).padStart(8, '0')}\\)`)
  t.throws(() => shm.sections.attach(key), { code: 'ERR_SHM_CORRUPT', message: named }, 'Node: attach refuses, naming the lock')
  t.throws(() => mine.section('a').claim(), { code: 'ERR_SHM_CORRUPT', message: named }, 'a table attached before: claim() refuses the same way')
  const node = claimInChild('node', key)
  t.notOk(node.hung, 'Node in a child: no hang')
  t.match(node.output, /^ERR_SHM_CORRUPT .*its claim lock/, 'Node in a child: ERR_SHM_CORRUPT')
  const php = claimInChild('php', key)
  t.notOk(php.hung, 'PHP with FFI: no hang')
  t.match(php.output, /^ERR_SHM_CORRUPT: .*section 'a': its claim lock .* is not the set the table's manager made/, 'PHP with FFI checks the set as Node does')
  const blind = claimInChild('php', key, { ffi: 0 })
  t.notOk(blind.hung, 'PHP without FFI: no hang (claims never wait)')
  // sysvsem cannot look at a set, and its sem_get initialises a set it finds half-made: PHP
  // without FFI claims on the foreign set (docs/sections.md, section 5 says so).
  t.equal(blind.output, 'claimed', 'PHP without FFI cannot tell the set is foreign (the documented limit)')
})

t.test('the figures', async (t) => {
  t.comment(`takeovers tried while the holder lived (PID namespaces, hidepid=2 as uid 65534): ${figures.tried}, wrongly succeeded: ${figures.wronglySucceeded}; ` +
    `takeovers after SIGKILL: ${figures.takenOverAtOnce} of ${figures.takeoversAfterKill} at the first try`)
  t.equal(figures.wronglySucceeded, 0, 'no takeover succeeded while its holder lived')
  t.ok(figures.tried >= 18, `${figures.tried} tried`)
  t.equal(figures.takenOverAtOnce, figures.takeoversAfterKill, 'every takeover after SIGKILL succeeded at once')
})
