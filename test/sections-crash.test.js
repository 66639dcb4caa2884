'use strict'
/*
 * Guarantee 2, crash safety: a writer that publishes 1 MB payloads in a tight
 * loop (so that most of its time is spent inside publish) is killed with
 * SIGKILL at a random moment, round after round. It reports each committed
 * version on a pipe. After each kill:
 *   - the committed slot is stable (even seq), and we count the kills that
 *     landed inside a publish (the other slot's seq left odd);
 *   - read() returns a whole, checksum-valid payload whose version is the last
 *     one reported, or the one after it (committed, killed before reporting);
 *   - the dead writer's claim is taken over: by this process (then released),
 *     or, every other round, directly by the next writer process.
 * Once with a Node writer, once with a PHP writer.
 */
const t = require('tap')
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP } = require('./helpers')
const { check, payloads } = require('./fixtures/sections-common')

cleanupTablesAfter(t)
requirePHP()

const CAPACITY = 1 << 20
const FIXTURES = path.join(__dirname, 'fixtures')
// The writers are killed, so they would write no coverage: start them without tap's loaders.
const { NODE_OPTIONS, ...ENV } = process.env

/** Starts a writer; resolves once it has reported a first version, with a kill() that resolves with every reported version. */
function startWriter (command, script, options) {
  const proc = spawn(command, [path.join(FIXTURES, script), JSON.stringify(options)], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  const versions = []
  let stderr = ''
  proc.stderr.on('data', (chunk) => { stderr += chunk })
  const closed = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })))
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      versions.push(Number(line))
      if (versions.length === 1) {
        resolve({
          pid: proc.pid,
          async kill () {
            proc.kill('SIGKILL')
            return { ...(await closed), versions, stderr }
          }
        })
      }
    })
    closed.then(({ code, signal }) => reject(new Error(`the writer ended (${code ?? signal}) before publishing: ${stderr}`)))
  })
}

async function rounds (t, key, command, script) {
  const table = shm.sections.create(key, { mode: 0o600, sections: [{ name: 'big', size: CAPACITY }] })
  const raw = shm.open(key, 'a')
  t.teardown(() => { raw.close(); table.close(); shm.sections.remove(key) })
  const section = table.section('big')
  const control = section.offsets.control
  const make = payloads(CAPACITY, 2)
  const problems = []
  const seen = { rounds: 0, insidePublish: 0, committedNotReported: 0, takenOverByNextWriter: 0 }
  const started = Date.now()

  while ((seen.rounds < 12 || seen.insidePublish < 5) && seen.rounds < 60 && Date.now() - started < 30000) {
    const round = ++seen.rounds
    const writer = await startWriter(command, script, { key, name: 'big', report: true, fixed: 2 })
    if (round > 1 && round % 2 === 1) seen.takenOverByNextWriter++ // the claim of the writer killed last round was still there
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 40))
    const { code, signal, versions, stderr } = await writer.kill()
    const reported = versions.at(-1)
    if (signal !== 'SIGKILL') problems.push({ round, problem: `the writer ended by itself (${code}), not by SIGKILL`, stderr })

    const commit = raw.read(control, 8).readBigUInt64LE()
    const slot = Number(commit & 1n)
    const seq = (which) => raw.read(control + 64 + 64 * which, 4).readUInt32LE()
    if (seq(slot) % 2 !== 0) problems.push({ round, problem: `the committed slot ${slot} has an odd seq` })
    if (seq(1 - slot) % 2 === 1) seen.insidePublish++

    const { version, data } = section.read()
    if (version === reported + 1) seen.committedNotReported++
    else if (version !== reported) problems.push({ round, problem: `read version ${version}; the writer last reported ${reported}` })
    const why = check(data, version)
    if (why) problems.push({ round, problem: why })

    const writerInfo = section.info().writer
    if (writerInfo?.pid !== writer.pid || writerInfo.alive) problems.push({ round, problem: `the claim shows ${JSON.stringify(writerInfo)}` })
    if (round % 2 === 0) continue // the next writer process takes the dead claim over itself
    // This process takes the dead writer's claim over and publishes.
    try {
      section.claim()
      const next = section.publish(make(version + 1))
      const back = section.read()
      if (next !== version + 1 || back.version !== next || check(back.data, next)) {
        problems.push({ round, problem: `after the takeover: published ${next}, read ${back.version}` })
      }
      section.release()
    } catch (error) {
      problems.push({ round, problem: `takeover: ${error.code} ${error.message}` })
    }
  }
  t.comment(`${script}: ${JSON.stringify(seen)}, final version ${section.version}`)
  t.same(problems, [], 'every kill left the last complete version readable, and the claim free to take')
  t.ok(seen.insidePublish >= 1, `kills landed inside a publish (${seen.insidePublish} of ${seen.rounds})`)
}

t.test('a Node writer killed with SIGKILL while publishing', (t) => rounds(t, keyFor(1), process.execPath, 'sections-writer.js'))

t.test('a PHP writer killed with SIGKILL while publishing', (t) => rounds(t, keyFor(2), 'php', 'sections-writer.php'))
