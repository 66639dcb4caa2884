'use strict'
/*
 * Node and real PHP processes (PHP 8 CLI with shmop) on the same segments:
 * data both ways (binary with NULs, 10 KB and 100 KB, offsets, cut writes),
 * 'n' exclusive across languages, delete while the other side is attached,
 * read-only 'a' from both sides, and a Node reader that exits (normally, by
 * process.exit, by SIGTERM) leaving PHP's segment and its data in place.
 *
 * PHP runs fixtures/php-steps.php: once per list of steps, or with --serve
 * when it must stay attached while Node acts (one step per line, answered
 * line by line, so the test waits for each answer and never for a guessed
 * time). Node children run fixtures/interop-steps.js, the same language.
 */
const t = require('tap')
const { spawn } = require('node:child_process')
const crypto = require('node:crypto')
const path = require('node:path')
const readline = require('node:readline')
const {
  ADDON, shm, keyFor, segmentByKey, segmentById, cleanupAfter, php, requirePHP
} = require('./helpers')

cleanupAfter(t)
requirePHP()

const PHP_STEPS = path.join(__dirname, 'fixtures', 'php-steps.php')
const NODE_STEPS = path.join(__dirname, 'fixtures', 'interop-steps.js')
const CHILD_ENV = { PATH: process.env.PATH }
const SIZES = [10 * 1024, 100 * 1024]
const SHM_DEST = 0o1000 // the kernel's mark on a segment deleted while attached

/** Bytes as the step runners report them: hex when short, a digest when long. */
function enc (bytes) {
  bytes = Buffer.from(bytes)
  if (bytes.length <= 64) return bytes.toString('hex')
  return `sha1:${crypto.createHash('sha1').update(bytes).digest('hex')}:${bytes.length}`
}
const hex = (bytes) => ({ hex: Buffer.from(bytes).toString('hex') })

/** Random bytes with a NUL in every 7th place, so that C-string handling would show. */
function binary (length) {
  const bytes = crypto.randomBytes(length)
  for (let i = 0; i < length; i += 7) bytes[i] = 0
  return bytes
}

/** Runs steps in a PHP process that then exits; returns their outcomes. */
function phpSteps (steps) {
  const run = php([PHP_STEPS], { input: JSON.stringify([{ id: 'case', steps }]), env: CHILD_ENV })
  if (run.status !== 0) throw new Error(`php-steps.php exited with ${run.status}: ${run.stderr}`)
  return JSON.parse(run.stdout).case
}

/** Runs a command to its end without blocking the event loop (for processes that race). */
function runAsync (command, args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: CHILD_ENV })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
    child.stdin.end(input)
  })
}

/**
 * A step runner that stays alive: send(step) resolves with the step's outcome,
 * post(step) only sends it, end() closes stdin and resolves with how it exited.
 */
function serve (t, command, args) {
  const child = spawn(command, [...args, '--serve'], { env: CHILD_ENV })
  const waiting = []
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  readline.createInterface({ input: child.stdout }).on('line', (line) => waiting.shift().resolve(JSON.parse(line)))
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    for (const waiter of waiting.splice(0)) waiter.reject(new Error(`${command} exited (${code ?? signal}): ${stderr}`))
    resolve({ code, signal, stderr })
  }))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    return exited
  })
  const post = (step) => child.stdin.write(JSON.stringify(step) + '\n')
  return {
    send: (step) => new Promise((resolve, reject) => {
      waiting.push({ resolve, reject })
      post(step)
    }),
    post,
    end: () => { child.stdin.end(); return exited },
    kill: (signal) => { child.kill(signal); return exited },
    exited
  }
}
const phpServe = (t) => serve(t, 'php', [PHP_STEPS])
const nodeServe = (t) => serve(t, process.execPath, [NODE_STEPS, ADDON])

/** Deletes the segment under key through the addon (the test's own cleanup step). */
function deleteKey (t, key) {
  const handle = shm.openSHM(key, 'w', 0, 0)
  t.ok(handle > 0, 'the addon opens the segment to delete it')
  t.equal(shm.deleteSHM(handle), 1, 'and deletes it')
  shm.closeSHM(handle)
  t.equal(segmentByKey(key), undefined, 'no segment is left under the key')
}

// The same writes on both sides: the whole payload, a patch across a page
// boundary, and a tail that is cut at the end of the segment.
function plan (size) {
  const payload = binary(size)
  const patch = binary(50)
  const tail = binary(150)
  const expected = Buffer.from(payload)
  patch.copy(expected, 4093)
  tail.copy(expected, size - 100, 0, 100)
  return { payload, patch, tail, expected }
}

let nextKey = 0

t.test('PHP creates and writes, Node reads', async (t) => {
  for (const size of SIZES) {
    const key = keyFor(nextKey++)
    const { payload, patch, tail, expected } = plan(size)
    t.same(phpSteps([
      ['open', 'h', key, 'c', 0o644, size],
      ['write', { h: 'h' }, hex(payload), 0],
      ['write', { h: 'h' }, hex(patch), 4093],
      ['write', { h: 'h' }, hex(tail), size - 100]
    ]), [{ ok: size }, { ok: size }, { ok: 50 }, { ok: 100 }], `${size} B: PHP creates, writes, and its last write is cut to 100 bytes`)
    t.equal(segmentByKey(key)?.nattch, 0, 'PHP has exited and detached; the segment stays')

    for (const mode of ['a', 'w']) {
      const handle = shm.openSHM(key, mode, 0, 0)
      t.ok(handle > 0, `Node opens it with '${mode}'`)
      t.equal(shm.sizeSHM(handle), size, 'and sees its size')
      t.ok(shm.readSHM(handle, 0, 0).equals(expected), 'reads every byte PHP wrote, NULs included, from byte 0 (no header)')
      t.ok(shm.readSHM(handle, 4093, 50).equals(patch), 'reads the patch at offset 4093')
      t.ok(shm.readSHM(handle, size - 100, 0).equals(tail.subarray(0, 100)), 'reads the cut tail to the end')
      const into = Buffer.alloc(size + 8)
      t.equal(shm.readIntoSHM(handle, into, 8, 0, size), size, 'readIntoSHM copies it too')
      t.ok(into.subarray(8).equals(expected), 'byte for byte, at the target offset')
      t.equal(shm.closeSHM(handle), 1, 'and closes')
    }
    deleteKey(t, key)
  }
})

t.test('Node creates and writes, PHP reads', async (t) => {
  for (const size of SIZES) {
    const key = keyFor(nextKey++)
    const { payload, patch, tail, expected } = plan(size)
    const handle = shm.openSHM(key, 'c', 0o644, size)
    t.ok(handle > 0, `${size} B: Node creates the segment`)
    t.equal(shm.writeSHM(handle, payload, 0), size, 'writes the payload')
    t.equal(shm.writeSHM(handle, patch, 4093), 50, 'a patch across a page boundary')
    t.equal(shm.writeSHM(handle, tail, size - 100), 100, 'and a tail, cut at the end')
    t.equal(shm.writeSHM(handle, new Uint8Array(8), 7, 0), 0, 'data_len 0 writes nothing')

    t.same(phpSteps([
      ['open', 'a', key, 'a', 0, 0],
      ['size', { h: 'a' }],
      ['read', { h: 'a' }, 0, 0],
      ['read', { h: 'a' }, 4093, 50],
      ['read', { h: 'a' }, size - 100, 0],
      ['read', { h: 'a' }, 7, 1]
    ]), [
      { ok: size }, { ok: size }, { ok: enc(expected) }, { ok: enc(patch) }, { ok: enc(tail.subarray(0, 100)) },
      { ok: enc(expected.subarray(7, 8)) }
    ], 'PHP, while Node stays attached, reads the same size and bytes at every offset')
    t.equal(segmentByKey(key)?.nattch, 1, 'PHP has detached; Node is still attached')
    t.equal(shm.deleteSHM(handle), 1, 'Node deletes')
    t.equal(shm.closeSHM(handle), 1, 'and closes')
    t.equal(segmentByKey(key), undefined, 'nothing is left')
  }
})

t.test("'n' is exclusive across languages", async (t) => {
  t.test('PHP first, then Node', async (t) => {
    const key = keyFor(nextKey++)
    t.same(phpSteps([['open', 'h', key, 'n', 0o644, 64], ['write', { h: 'h' }, 'php', 0]]),
      [{ ok: 64 }, { ok: 3 }], "PHP creates with 'n'")
    t.equal(shm.openSHM(key, 'n', 0o644, 64), 0, "Node's 'n' on the same key fails")
    t.match(shm.lastErrorSHM(), { code: 'EEXIST', errno: -17, syscall: 'shmget', key }, 'with EEXIST from shmget')
    const handle = shm.openSHM(key, 'c', 0o644, 64)
    t.ok(handle > 0, "Node's 'c' attaches to PHP's segment")
    t.equal(shm.readSHM(handle, 0, 3).toString(), 'php', "and reads PHP's data")
    shm.closeSHM(handle)
    deleteKey(t, key)
  })

  t.test('Node first, then PHP', async (t) => {
    const key = keyFor(nextKey++)
    const handle = shm.openSHM(key, 'n', 0o644, 64)
    t.ok(handle > 0, "Node creates with 'n'")
    shm.writeSHM(handle, 'node', 0)
    t.same(phpSteps([
      ['open', null, key, 'n', 0o644, 64],
      ['open', 'c', key, 'c', 0o644, 64],
      ['read', { h: 'c' }, 0, 4]
    ]), [
      { fail: 'shmop_open(): Unable to attach or create shared memory segment "File exists"' },
      { ok: 64 },
      { ok: enc('node') }
    ], "PHP's 'n' fails with \"File exists\"; its 'c' attaches and reads Node's data")
    shm.deleteSHM(handle)
    shm.closeSHM(handle)
    t.equal(segmentByKey(key), undefined, 'nothing is left')
  })

  t.test('three PHP and three Node processes race: exactly one creates', async (t) => {
    const key = keyFor(nextKey++)
    const racers = ['php-1', 'php-2', 'php-3', 'node-1', 'node-2', 'node-3']
    const runs = await Promise.all(racers.map((name) => {
      const input = JSON.stringify([{ id: name, steps: [['open', 'h', key, 'n', 0o600, 64], ['write', { h: 'h' }, name, 0]] }])
      return name.startsWith('php')
        ? runAsync('php', [PHP_STEPS], input)
        : runAsync(process.execPath, [NODE_STEPS, ADDON], input)
    }))
    const outcomes = runs.map((run, i) => {
      t.equal(run.status, 0, `${racers[i]} ran`)
      return JSON.parse(run.stdout)[racers[i]][0]
    })
    const winners = racers.filter((_, i) => 'ok' in outcomes[i])
    t.equal(winners.length, 1, `one process created the segment (${winners})`)
    racers.forEach((name, i) => {
      if (winners.includes(name)) return
      if (name.startsWith('php')) {
        t.same(outcomes[i], { fail: 'shmop_open(): Unable to attach or create shared memory segment "File exists"' },
          `${name} got "File exists"`)
      } else {
        t.match(outcomes[i], { fail: { code: 'EEXIST', errno: -17, syscall: 'shmget', key, message: /shmget: File exists$/ } },
          `${name} got EEXIST`)
      }
    })
    const handle = shm.openSHM(key, 'a', 0, 0)
    t.equal(shm.readSHM(handle, 0, winners[0].length).toString(), winners[0], "the segment holds the winner's write")
    shm.closeSHM(handle)
    deleteKey(t, key)
  })
})

t.test('delete from one side while the other is attached', async (t) => {
  t.test('Node deletes while a PHP process stays attached', async (t) => {
    const key = keyFor(nextKey++)
    const peer = phpServe(t)
    t.same(await peer.send(['open', 'h', key, 'c', 0o644, 100]), { ok: 100 }, 'PHP creates and stays attached')
    t.same(await peer.send(['write', { h: 'h' }, 'from php', 0]), { ok: 8 }, 'PHP writes')
    const handle = shm.openSHM(key, 'w', 0, 0)
    const { shmid } = segmentByKey(key)
    t.equal(shm.deleteSHM(handle), 1, 'Node deletes')
    t.equal(segmentByKey(key), undefined, 'the key is free at once')
    t.match(segmentById(shmid), { key: 0, nattch: 2 }, 'the segment lives on, both still attached')
    t.equal(segmentById(shmid).perms & SHM_DEST, SHM_DEST, 'marked for destruction')

    t.same(await peer.send(['read', { h: 'h' }, 0, 8]), { ok: enc('from php') }, 'PHP still reads')
    t.same(await peer.send(['write', { h: 'h' }, 'PHP again', 0]), { ok: 9 }, 'and writes')
    t.equal(shm.readSHM(handle, 0, 9).toString(), 'PHP again', 'Node sees that write')
    t.equal(shm.writeSHM(handle, 'NODE', 0), 4, 'Node still writes')
    t.same(await peer.send(['read', { h: 'h' }, 0, 4]), { ok: enc('NODE') }, 'PHP sees that write')
    t.same(await peer.send(['open', null, key, 'w', 0, 0]),
      { fail: 'shmop_open(): Unable to attach or create shared memory segment "No such file or directory"' },
      "PHP's 'w' by key finds nothing")

    const fresh = shm.openSHM(key, 'c', 0o644, 100)
    t.ok(fresh > 0, "Node's 'c' creates a new segment under the key")
    t.not(segmentByKey(key).shmid, shmid, 'a different one')
    t.ok(shm.readSHM(fresh, 0, 0).equals(Buffer.alloc(100)), 'zero-filled')
    t.same(await peer.send(['open', 'new', key, 'w', 0, 0]), { ok: 100 }, "PHP's 'w' now attaches to the new one")
    t.same(await peer.send(['read', { h: 'new' }, 0, 4]), { ok: enc(Buffer.alloc(4)) }, 'and reads zeros there')
    t.same(await peer.send(['read', { h: 'h' }, 0, 4]), { ok: enc('NODE') }, 'its old handle still reads the old data')

    t.match(await peer.end(), { code: 0, signal: null }, 'PHP exits')
    t.equal(segmentById(shmid)?.nattch, 1, 'only Node is attached to the deleted segment')
    shm.closeSHM(handle)
    t.equal(segmentById(shmid), undefined, 'Node closes: the deleted segment is gone')
    shm.closeSHM(fresh)
    deleteKey(t, key)
  })

  t.test('PHP deletes while Node stays attached', async (t) => {
    const key = keyFor(nextKey++)
    const handle = shm.openSHM(key, 'c', 0o644, 100)
    shm.writeSHM(handle, 'from node', 0)
    const { shmid } = segmentByKey(key)
    t.same(phpSteps([
      ['open', 'w', key, 'w', 0, 0],
      ['read', { h: 'w' }, 0, 9],
      ['delete', { h: 'w' }]
    ]), [{ ok: 100 }, { ok: enc('from node') }, { ok: true }], "PHP reads Node's data and deletes the segment")
    t.equal(segmentByKey(key), undefined, 'the key is free')
    t.match(segmentById(shmid), { key: 0, nattch: 1 }, 'the segment lives on while Node is attached')
    t.equal(segmentById(shmid).perms & SHM_DEST, SHM_DEST, 'marked for destruction')
    t.equal(shm.readSHM(handle, 0, 9).toString(), 'from node', 'Node still reads')
    t.equal(shm.writeSHM(handle, 'still', 0), 5, 'and writes')
    t.equal(shm.readSHM(handle, 0, 5).toString(), 'still', 'and reads that back')
    t.equal(shm.sizeSHM(handle), 100, 'the size is unchanged')

    t.same(phpSteps([['open', 'c', key, 'c', 0o644, 100], ['read', { h: 'c' }, 0, 0]]),
      [{ ok: 100 }, { ok: enc(Buffer.alloc(100)) }], "PHP's 'c' now makes a fresh, zero-filled segment")
    t.not(segmentByKey(key).shmid, shmid, 'a different segment')
    t.equal(shm.readSHM(handle, 0, 5).toString(), 'still', "Node's handle still sees the old data")
    shm.closeSHM(handle)
    t.equal(segmentById(shmid), undefined, 'Node closes: the deleted segment is gone')
    deleteKey(t, key)
  })
})

t.test("read-only 'a' from both sides", async (t) => {
  t.test("PHP's 'a' on Node's segment", async (t) => {
    const key = keyFor(nextKey++)
    const data = binary(1000)
    const handle = shm.openSHM(key, 'c', 0o644, 1000)
    shm.writeSHM(handle, data, 0)
    t.same(phpSteps([
      ['open', 'a', key, 'a', 0, 0],
      ['read', { h: 'a' }, 0, 0],
      ['write', { h: 'a' }, 'x', 0],
      ['write', { h: 'a' }, 'x', 2000]
    ]), [
      { ok: 1000 },
      { ok: enc(data) },
      { throw: { kind: 'Error', class: 'Error', message: 'Read-only segment cannot be written' } },
      { throw: { kind: 'Error', class: 'Error', message: 'Read-only segment cannot be written' } }
    ], 'PHP reads; its writes throw Error, before the offset is checked')
    t.ok(shm.readSHM(handle, 0, 0).equals(data), 'the data is unchanged')
    shm.deleteSHM(handle)
    shm.closeSHM(handle)
  })

  t.test("Node's 'a' on PHP's segment", async (t) => {
    const key = keyFor(nextKey++)
    const data = binary(1000)
    t.same(phpSteps([['open', 'h', key, 'c', 0o644, 1000], ['write', { h: 'h' }, hex(data), 0]]),
      [{ ok: 1000 }, { ok: 1000 }], 'PHP creates and writes')
    const handle = shm.openSHM(key, 'a', 0, 0)
    t.ok(shm.readSHM(handle, 0, 0).equals(data), 'Node reads')
    for (const value of ['x', Buffer.from('x'), new Uint8Array(1)]) {
      t.throws(() => shm.writeSHM(handle, value, 0), { name: 'Error', code: 'ERR_SHM_READ_ONLY' },
        `writeSHM of a ${value.constructor.name} throws ERR_SHM_READ_ONLY`)
    }
    t.throws(() => shm.writeSHM(handle, 'x', 2000), { name: 'Error', code: 'ERR_SHM_READ_ONLY' },
      'also with an offset past the end: read-only is checked first, as PHP does')
    shm.closeSHM(handle)
    t.same(phpSteps([['open', 'a', key, 'a', 0, 0], ['read', { h: 'a' }, 0, 0]]),
      [{ ok: 1000 }, { ok: enc(data) }], 'PHP reads its data unchanged')
    deleteKey(t, key)
  })
})

t.test('a Node process that only read a PHP segment exits, and the segment stays with its data', async (t) => {
  const ways = {
    normally: (reader) => reader.end(),
    'by process.exit()': (reader) => { reader.post(['exit']); return reader.exited },
    'killed by SIGTERM': (reader) => reader.kill('SIGTERM')
  }
  for (const [way, stop] of Object.entries(ways)) {
    const key = keyFor(nextKey++)
    const data = binary(SIZES[0])
    t.same(phpSteps([['open', 'h', key, 'c', 0o644, data.length], ['write', { h: 'h' }, hex(data), 0]]),
      [{ ok: data.length }, { ok: data.length }], `${way}: PHP creates and writes, and exits`)
    const { shmid } = segmentByKey(key)

    const reader = nodeServe(t)
    t.same(await reader.send(['open', 'r', key, 'a', 0, 0]), { ok: data.length }, "a Node process opens it with 'a'")
    t.same(await reader.send(['open', 'w', key, 'w', 0, 0]), { ok: data.length }, "and with 'w'")
    t.same(await reader.send(['read', { h: 'r' }, 0, 0]), { ok: enc(data) }, 'reads it all')
    t.same(await reader.send(['read', { h: 'w' }, 100, 10]), { ok: enc(data.subarray(100, 110)) }, 'and a part')
    t.equal(segmentByKey(key).nattch, 2, 'it is attached twice')

    const exit = await stop(reader)
    t.same({ code: exit.code, signal: exit.signal },
      way === 'killed by SIGTERM' ? { code: null, signal: 'SIGTERM' } : { code: 0, signal: null }, `it exits ${way}`)
    t.match(segmentByKey(key), { shmid, nattch: 0 }, 'the same segment is still there, detached')
    t.same(phpSteps([['open', 'a', key, 'a', 0, 0], ['read', { h: 'a' }, 0, 0]]),
      [{ ok: data.length }, { ok: enc(data) }], 'PHP reads all its data back')
    deleteKey(t, key)
  }
})
