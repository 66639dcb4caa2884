'use strict'
/*
 * Guarantee 3, one writer per section: claim() while another process holds
 * the section's claim lock fails with ERR_SHM_SECTION_BUSY naming that process
 * (Node against Node, Node against PHP, PHP against Node); a dead process's
 * claim is taken over (the kernel gave its lock back); the claim word is
 * information only: forging it neither blocks nor frees a claim; releases,
 * read-only tables, two objects in one process, and close(); Node and PHP
 * processes racing for one section.
 */
const t = require('tap')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP, semaphoreByKey, semaphores } = require('./helpers')
const { startTicks, claimWord, nodePeer, phpPeer } = require('./fixtures/sections-common')

cleanupTablesAfter(t)
requirePHP()

const NAMES = ['a', 'b', 'c']

function table (t, key, options = {}) {
  const created = shm.sections.create(key, { mode: 0o600, sections: NAMES.map((name) => ({ name, size: 100 })), ...options })
  t.teardown(() => { created.close(); shm.sections.remove(key) })
  return created
}

async function attached (t, make, key, readOnly = false) {
  const p = make(t)
  await p.call('attach', { key, readOnly })
  return p
}

/** Writes a claim word into a section's control block, as a damaged or stale segment would hold it. */
function forge (key, section, pid, start) {
  const raw = shm.open(key, 'w')
  raw.write(claimWord(pid, start), section.offsets.control + 8)
  raw.close()
}

const busy = (pid) => ({ code: 'ERR_SHM_SECTION_BUSY', message: new RegExp(`process ${pid}\\b.*claim lock is held`) })

t.test('busy across processes, naming the holder: Node vs Node, Node vs PHP, PHP vs Node', async (t) => {
  const key = keyFor(1)
  const mine = table(t, key)
  const node = await attached(t, nodePeer, key)
  const php = await attached(t, phpPeer, key)

  await node.call('claim', { name: 'a' })
  t.throws(() => mine.section('a').claim(), busy(node.pid), 'Node, while another Node process holds it')
  await t.rejects(php.call('claim', { name: 'a' }), busy(node.pid), 'PHP, while a Node process holds it')
  t.same(mine.section('a').info().writer, { pid: node.pid, alive: true, self: false }, 'info() names the holder')

  await php.call('claim', { name: 'b' })
  t.throws(() => mine.section('b').claim(), busy(php.pid), 'Node, while a PHP process holds it')
  await t.rejects(node.call('claim', { name: 'b' }), busy(php.pid), 'another Node process, while PHP holds it')

  mine.section('c').claim()
  await t.rejects(node.call('claim', { name: 'c' }), busy(process.pid), 'Node, while this process holds it')
  await t.rejects(php.call('claim', { name: 'c' }), busy(process.pid), 'PHP, while this process holds it')
  const lock = semaphores().find((s) => s.semid === mine.section('a').entry.lock.id)
  t.equal(lock.perms & 0o777, 0o600, 'the claim lock has the table\'s mode')
  t.equal(lock.key, mine.section('a').entry.lock.key, 'and the key the table records')

  // Each holder can publish; the others can not.
  t.equal(await node.call('publish', { name: 'a', hex: '6e6f6465' }), 1, 'the Node holder publishes')
  t.equal(await php.call('publish', { name: 'b', hex: '706870' }), 1, 'the PHP holder publishes')
  await t.rejects(php.call('publish', { name: 'a', hex: '00' }), { code: 'ERR_SHM_NOT_WRITER' }, 'PHP cannot publish to a section it does not hold')
  t.throws(() => mine.section('b').publish('x'), { code: 'ERR_SHM_NOT_WRITER' }, 'nor can Node')
  t.same(mine.section('a').read(), { version: 1, data: Buffer.from('node') })
  t.same(mine.section('b').read(), { version: 1, data: Buffer.from('php') })
})

t.test('the claim of a dead process is taken over, in either language', async (t) => {
  const key = keyFor(2)
  const mine = table(t, key)
  const deadNode = await attached(t, nodePeer, key)
  const deadPHP = await attached(t, phpPeer, key)
  await deadNode.call('claim', { name: 'a' })
  await deadPHP.call('claim', { name: 'b' })
  await deadNode.call('claim', { name: 'c' })
  deadNode.child.kill('SIGKILL')
  deadPHP.child.kill('SIGKILL')
  await Promise.all([deadNode.exited, deadPHP.exited])

  t.same(mine.section('a').info().writer, { pid: deadNode.pid, alive: false, self: false }, 'the claim word outlives its process')
  mine.section('a').claim()
  t.equal(mine.section('a').publish('taken over'), 1, 'Node takes a dead Node process\'s claim over')
  mine.section('b').claim()
  t.equal(mine.section('b').publish('taken over'), 1, 'Node takes a dead PHP process\'s claim over')
  const php = await attached(t, phpPeer, key)
  await php.call('claim', { name: 'c' })
  t.equal(await php.call('publish', { name: 'c', hex: '6f6b' }), 1, 'PHP takes a dead Node process\'s claim over')
  t.same(mine.section('c').info().writer, { pid: php.pid, alive: true, self: false })
})

t.test('the claim word is information: forging it neither blocks a claim nor frees one', async (t) => {
  const key = keyFor(3)
  const mine = table(t, key)
  const php = await attached(t, phpPeer, key)
  const node = await attached(t, nodePeer, key)
  const a = mine.section('a')

  forge(key, a, 1, startTicks(1))
  t.same(a.info().writer, { pid: 1, alive: false, self: false }, 'the word names pid 1, a live process, but no one holds the claim lock: not alive as a writer')
  a.claim()
  t.equal(a.publish('mine'), 1, 'yet the claim lock is free: Node claims')
  t.same(a.info().writer, { pid: process.pid, alive: true, self: true }, 'and the word names the holder again')
  a.release()

  forge(key, a, 1, startTicks(1))
  await php.call('claim', { name: 'a' })
  t.equal(await php.call('publish', { name: 'a', hex: '00' }), 2, 'and so does PHP')

  forge(key, a, 0, 0)
  t.equal(a.info().writer, null, 'a word cleared behind the holder\'s back')
  t.throws(() => a.claim(), { code: 'ERR_SHM_SECTION_BUSY', message: /claimed by a process that has not recorded its pid yet/ }, 'does not free the claim: Node busy')
  await t.rejects(node.call('claim', { name: 'a' }), { code: 'ERR_SHM_SECTION_BUSY' }, 'another Node process busy')
  await php.call('release', { name: 'a' })
  a.claim()
  t.ok(a.claimed, 'after PHP releases, Node claims')
})

t.test('release, then another process claims', async (t) => {
  const key = keyFor(4)
  const mine = table(t, key)
  const node = await attached(t, nodePeer, key)
  const php = await attached(t, phpPeer, key)
  const a = mine.section('a')
  a.claim()
  a.claim() // already ours: nothing happens
  t.ok(a.claimed, 'claimed')
  a.release()
  a.release() // not ours: nothing happens
  t.notOk(a.claimed, 'released')
  t.equal(a.info().writer, null, 'the claim word is clear')
  await node.call('claim', { name: 'a' })
  await node.call('release', { name: 'a' })
  await php.call('claim', { name: 'a' })
  t.same(a.info().writer, { pid: php.pid, alive: true, self: false }, 'PHP holds it')
  await php.call('release', { name: 'a' })
  t.equal(a.info().writer, null, 'PHP released it')
  a.claim()
  t.equal(a.publish('back'), 1, 'and this process claims it again')
})

t.test('publish needs the claim', async (t) => {
  const key = keyFor(5)
  const mine = table(t, key)
  const php = await attached(t, phpPeer, key)
  const a = mine.section('a')
  t.throws(() => a.publish('x'), { code: 'ERR_SHM_NOT_WRITER', message: /Claim section 'a' before publishing/ }, 'Node, never claimed')
  a.claim()
  a.release()
  t.throws(() => a.publish('x'), { code: 'ERR_SHM_NOT_WRITER' }, 'Node, after release')
  await t.rejects(php.call('publish', { name: 'a', hex: '00' }), { code: 'ERR_SHM_NOT_WRITER' }, 'PHP, never claimed')
  t.equal(a.version, 0, 'nothing was published')

  // The claim word changed under a claimant (here: forged): the addon checks the word itself.
  a.claim()
  forge(key, a, 1, startTicks(1))
  t.ok(a.claimed, 'this object still believes it holds the section')
  t.throws(() => a.publish('x'), { code: 'ERR_SHM_NOT_WRITER', message: /does not hold the section's claim/ }, 'but publish checks the claim word')
  t.equal(a.version, 0, 'and publishes nothing')
})

t.test('a read-only table cannot claim', async (t) => {
  const key = keyFor(6)
  table(t, key)
  const reader = shm.sections.attach(key, { readOnly: true })
  t.teardown(() => reader.close())
  t.equal(reader.readOnly, true)
  t.throws(() => reader.section('a').claim(), { code: 'ERR_SHM_READ_ONLY', message: 'A table attached read-only cannot claim a section' }, 'Node')
  t.equal(semaphoreByKey(key), undefined, 'and no semaphore set has the table\'s key')
  t.throws(() => reader.section('a').publish('x'), { code: 'ERR_SHM_NOT_WRITER' }, 'nor publish')
  const php = await attached(t, phpPeer, key, true)
  await t.rejects(php.call('claim', { name: 'a' }), { code: 'ERR_SHM_READ_ONLY' }, 'PHP')
  t.equal(reader.section('a').info().writer, null, 'no claim was taken')
})

t.test('two objects in one process: the second is busy', async (t) => {
  const key = keyFor(7)
  const first = table(t, key)
  const second = shm.sections.attach(key)
  t.teardown(() => second.close())
  first.section('a').claim()
  t.throws(() => second.section('a').claim(), {
    code: 'ERR_SHM_SECTION_BUSY',
    message: `Section 'a' of table 0x${(key >>> 0).toString(16)} is claimed by process ${process.pid} (this process, through another object or thread): its claim lock is held, and the kernel frees it when the holder ends`
  })
  t.notOk(second.section('a').claimed)
  t.throws(() => second.section('a').publish('x'), { code: 'ERR_SHM_NOT_WRITER' }, 'and cannot publish')
  t.same(first.section('a').info().writer, { pid: process.pid, alive: true, self: true })
  first.section('a').release()
  second.section('a').claim()
  t.equal(second.section('a').publish('second'), 1, 'after the first releases, the second claims')
})

t.test('table.close() releases the claims taken through it', async (t) => {
  const key = keyFor(8)
  const mine = table(t, key)
  const writer = shm.sections.attach(key)
  writer.section('a').claim()
  writer.section('b').claim()
  const node = await attached(t, nodePeer, key)
  await t.rejects(node.call('claim', { name: 'a' }), busy(process.pid), 'held before close()')
  writer.close()
  t.ok(writer.closed)
  t.notOk(writer.section('a').claimed, 'the objects no longer hold them')
  await node.call('claim', { name: 'a' })
  const php = await attached(t, phpPeer, key)
  await php.call('claim', { name: 'b' })
  const holders = ['a', 'b'].map((name) => mine.section(name).info().writer)
  t.same(holders, [{ pid: node.pid, alive: true, self: false }, { pid: php.pid, alive: true, self: false }],
    'after close(), a Node and a PHP process claim them: the claim words name them')
  writer.close() // again: nothing happens
})

t.test('PHP close() releases its claims too', async (t) => {
  const key = keyFor(9)
  const mine = table(t, key)
  const php = await attached(t, phpPeer, key)
  await php.call('claim', { name: 'a' })
  await php.call('close')
  mine.section('a').claim()
  t.ok(mine.section('a').claimed, 'Node claims what PHP released')
})

t.test('claim words that name no process (pid 0, pid >= 2^31): not alive, and claim() takes the section', async (t) => {
  const key = keyFor(10)
  const mine = table(t, key)
  const a = mine.section('a')
  for (const [pid, start] of [[0, 5], [0xffffffff, 5], [0x80000001, 5]]) {
    forge(key, a, pid, start)
    t.equal(a.info().writer.alive, false, `pid ${pid}: not alive (no one holds the claim lock)`)
    try {
      a.claim()
      t.equal(a.info().writer?.self, true, `claim() over pid ${pid} took the claim word`)
      a.release()
    } catch (error) {
      t.fail(`claim() over pid ${pid}: ${error.message}`)
    }
  }
})

t.test('a forged claim word does not let another process in, and release() leaves a word that is not its own', async (t) => {
  const key = keyFor(11)
  const mine = table(t, key)
  const a = mine.section('a')
  const php = await attached(t, phpPeer, key)
  a.claim()
  forge(key, a, 1, (startTicks(1) + 1) >>> 0) // names a process that is gone
  await t.rejects(php.call('claim', { name: 'a' }), busy(1), 'PHP is busy: the lock is held')
  const raw = shm.open(key, 'a')
  t.teardown(() => raw.close())
  const word = () => raw.read(a.offsets.control + 8, 8).readBigUInt64LE()
  a.release()
  t.equal(word() >> 32n, 1n, 'release() leaves a word that is not its own')
  await php.call('claim', { name: 'a' })
  t.same(a.info().writer, { pid: php.pid, alive: true, self: false }, 'and gives the lock back: PHP claims')
  const flags = () => raw.read(a.offsets.control + 20, 4).readUInt32LE()
  t.equal(flags(), 1, 'PHP with FFI wakes waiters: flags bit 0')
})

t.test('Node and PHP processes claim one section at the same moment: one winner a round, named by the claim word', async (t) => {
  const key = keyFor(12)
  const mine = table(t, key)
  const a = mine.section('a')
  const makers = { node: nodePeer, php: phpPeer }
  const peers = await Promise.all(['node', 'php', 'node', 'php', 'node', 'php'].map(async (language) =>
    ({ language, ...await attached(t, makers[language], key) })))
  // Each claims another section once first, so that no one pays a first call's costs in the race.
  for (const p of peers) {
    await p.call('claim', { name: 'b' })
    await p.call('release', { name: 'b' })
  }
  const ROUNDS = 100
  const wrong = []
  const wins = { node: 0, php: 0 }
  for (let round = 0; round < ROUNDS; round++) {
    // Every other round starts from a dead process's claim word, which the
    // winner takes over after a look at /proc: a wider window for a race.
    if (round % 2) forge(key, a, 1, (startTicks(1) + 1) >>> 0)
    // The barrier: all claim at one CLOCK_MONOTONIC instant, 30 ms from now.
    const at = String(process.hrtime.bigint() + 30_000_000n)
    const outcomes = await Promise.allSettled(peers.map((p) => p.call('claimAt', { name: 'a', at })))
    const winners = peers.filter((_, i) => outcomes[i].status === 'fulfilled')
    const losers = outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason)
    const holder = a.info().writer
    // A loser's message names the claim word it read, which the winner may not
    // have written yet (the word is information; the claim lock decides): then
    // it says so.
    const busy = (error) => error.code === 'ERR_SHM_SECTION_BUSY' &&
      /claimed by (process \d+|a process that has not recorded its pid yet): its claim lock is held/.test(error.message)
    if (winners.length === 1 && holder?.pid === winners[0].pid && holder.alive && losers.every(busy)) {
      wins[winners[0].language]++
    } else {
      wrong.push({ round, winners: winners.map((p) => `${p.language} ${p.pid}`), holder, losers: losers.map((e) => `${e.code}: ${e.message}`) })
    }
    await Promise.all(winners.map((p) => p.call('release', { name: 'a' })))
  }
  t.comment(`${ROUNDS} rounds of ${peers.length} claims at once: won by Node ${wins.node} times, by PHP ${wins.php} times`)
  t.same(wrong.slice(0, 5), [], `every round: exactly one claim succeeded, the claim word names its process, and every other claim was ERR_SHM_SECTION_BUSY (${wrong.length} of ${ROUNDS} rounds were not so)`)
  t.equal(a.info().writer, null, 'the last winner released it')
})
