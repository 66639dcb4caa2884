'use strict'
/*
 * Guarantee 1, no torn reads: a writer publishes payloads of random length
 * (16 B .. 100 KB) with their version, length and CRC-32 inside, as fast as it
 * can for a few seconds, while readers in other processes, in a worker thread
 * (readInto) and in PHP check every single read. Zero bad reads; the counts
 * are printed. Then the same with a PHP writer. The sections next to the
 * written one must keep their bytes.
 */
const t = require('tap')
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP } = require('./helpers')

cleanupTablesAfter(t)
requirePHP()

const FIXTURES = path.join(__dirname, 'fixtures')
const CAPACITY = 100_000
const MS = 3000

/** A child that may say "ready", then prints one JSON line at its end. */
function child (t, command, args) {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  let stderr = ''
  let last = ''
  proc.stderr.on('data', (chunk) => { stderr += chunk })
  let onReady
  const ready = new Promise((resolve) => { onReady = resolve })
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    if (line === 'ready') onReady()
    else last = line
  })
  const result = new Promise((resolve) => proc.on('close', (code, signal) => {
    onReady()
    let json = null
    try { json = JSON.parse(last) } catch {}
    resolve({ code, signal, stderr, json })
  }))
  return { ready, result }
}

const node = (t, script, options) => child(t, process.execPath, [path.join(FIXTURES, script), JSON.stringify(options)])
const php = (t, script, options) => child(t, 'php', [path.join(FIXTURES, script), JSON.stringify(options)])

/** A table with the written section between two neighbours that must not change. */
function table (t, key) {
  const created = shm.sections.create(key, {
    mode: 0o600,
    sections: [{ name: 'before', size: 64 }, { name: 'blob', size: CAPACITY }, { name: 'after', size: 64 }, { name: 'done', size: 8 }]
  })
  t.teardown(() => { created.close(); shm.sections.remove(key) })
  for (const name of ['before', 'after']) {
    created.section(name).claim()
    created.section(name).publish(Buffer.alloc(64, name))
  }
  return created
}

async function torn (t, key, writer, readers) {
  const created = table(t, key)
  const running = readers.map(([run, script, options, threads]) => ({ label: `${script} ${JSON.stringify(options)}`, threads, ...run(t, script, { key, name: 'blob', ...options }) }))
  await Promise.all(running.map((r) => r.ready))
  const written = await writer(t, { key, name: 'blob', ms: MS, done: 'done', max: CAPACITY }).result
  t.same({ code: written.code, signal: written.signal }, { code: 0, signal: null }, 'the writer ran to its end', { stderr: written.stderr })
  const { publishes, last } = written.json ?? {}
  t.comment(`writer: ${publishes} publishes in ${MS} ms, last version ${last}`)
  t.ok(publishes >= 100, 'the writer published many versions')

  for (const { label, threads, result } of running) {
    const { code, signal, stderr, json } = await result
    t.same({ code, signal }, { code: 0, signal: null }, `${label} ran to its end`, { stderr })
    // The checks below run once per report: a reader that reports nothing must fail here.
    t.same(Object.keys(json ?? {}).sort(), threads, `${label}: every reader (${threads.join(', ')}) reported`, { stderr })
    for (const [thread, stats] of Object.entries(json ?? {})) {
      t.comment(`${label} ${thread}: ${stats.reads} reads, ${stats.bad} bad, ${stats.versions} versions seen (${stats.first}..${stats.last})`)
      t.equal(stats.bad, 0, `${label} ${thread}: no torn or mismatched read`, { samples: stats.samples })
      t.ok(stats.reads >= 100 && stats.versions >= 10, `${label} ${thread}: read while the writer wrote`, stats)
      t.equal(stats.last, last, `${label} ${thread}: its last read is the last version`)
    }
  }
  for (const name of ['before', 'after']) {
    t.same(created.section(name).read(), { version: 1, data: Buffer.alloc(64, name) }, `section '${name}' next to it is untouched`)
  }
}

t.test('a Node writer; readers in Node processes, a worker thread (readInto) and PHP', (t) =>
  torn(t, keyFor(1), (t, options) => node(t, 'sections-writer.js', options), [
    [node, 'sections-reader.js', { worker: true }, ['main', 'worker']],
    [node, 'sections-reader.js', {}, ['main']],
    [php, 'sections-reader.php', {}, ['php']]
  ]))

t.test('a PHP writer; readers in Node (a process and a worker thread) and PHP', (t) =>
  torn(t, keyFor(2), (t, options) => php(t, 'sections-writer.php', options), [
    [node, 'sections-reader.js', { worker: true }, ['main', 'worker']],
    [php, 'sections-reader.php', {}, ['php']]
  ]))
