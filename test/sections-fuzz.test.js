'use strict'
/*
 * Guarantee 4 under random damage: thousands of attaches to tables whose
 * header and table got random bytes (fixtures/sections-fuzz.js, in a child
 * process: it must exit 0, not by a signal), each one either accepted with
 * every section inside the segment, or refused with a documented code; then
 * the very same damage replayed in PHP (fixtures/sections-fuzz.php), which
 * must decide every case as Node did. Control blocks get random bytes too:
 * a read returns or says ERR_SHM_CORRUPT, within a bounded time.
 */
const t = require('tap')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP } = require('./helpers')

cleanupTablesAfter(t)
requirePHP()

const FIXTURES = path.join(__dirname, 'fixtures')
const SEED = Number(process.env.SECTIONS_FUZZ_SEED ?? Date.now() % 1e9)
const ITERATIONS = 1500

/** A table with something published in every section. */
function filled (t, key, sections) {
  const table = shm.sections.create(key, { mode: 0o600, sections })
  t.teardown(() => shm.sections.remove(key))
  for (const section of table.sections) {
    section.claim()
    section.publish(Buffer.alloc(Math.min(section.capacity, 40), section.name))
    section.publish(Buffer.alloc(Math.min(section.capacity, 30), 'second'))
  }
  table.close()
  return key
}

t.test(`random damage to headers and tables, then to control blocks (seed ${SEED})`, async (t) => {
  const keys = [
    filled(t, keyFor(1), [{ name: 'prices', size: 100 }, { name: 'x', size: 1 }, { name: 'big', size: 4096 }]),
    filled(t, keyFor(2), Array.from({ length: 40 }, (_, i) => ({ name: `sección ${i}`, size: 1 + i * 37 })))
  ]
  // A table in a segment larger than it lays out.
  const small = filled(t, keyFor(3), [{ name: 'only', size: 64 }])
  const raw = shm.open(small, 'a')
  const larger = shm.open(keyFor(4), 'n', 0o600, raw.size + 8192)
  larger.write(raw.read())
  raw.close()
  larger.close()
  t.teardown(() => shm.sections.remove(keyFor(4)))
  keys.push(keyFor(4))

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-fuzz-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'cases.json')

  const node = spawnSync(process.execPath, [path.join(FIXTURES, 'sections-fuzz.js'),
    JSON.stringify({ keys, seed: SEED, iterations: ITERATIONS, controlIterations: 300, out })], { encoding: 'utf8', timeout: 240000 })
  t.same({ status: node.status, signal: node.signal }, { status: 0, signal: null }, 'the Node fuzzer ended normally', { stderr: node.stderr })
  const { counts, failures } = JSON.parse(node.stdout)
  t.comment(`Node: ${JSON.stringify(counts)}`)
  t.same(failures, [], 'every attach was accepted in bounds or refused with a documented code; every control-block read returned or said ERR_SHM_CORRUPT')
  t.equal(counts.attaches, keys.length * ITERATIONS, 'thousands of attaches')
  t.ok(counts.byCode.ERR_SHM_CORRUPT > 0 && counts.accepted > 0 && counts.publishes > 0, 'the damage reached both outcomes')
  // Bounded: a damaged control block is given up on after 10 000 tries without a publish.
  t.ok(counts.control.maxMs < 10000, `the slowest control-block read took ${counts.control.maxMs.toFixed(1)} ms`)

  // With FFI: PHP checks claim locks as Node does (docs/sections.md, section 5).
  const php = spawnSync('php', ['-d', 'ffi.enable=1', path.join(FIXTURES, 'sections-fuzz.php'), out], { encoding: 'utf8', timeout: 240000 })
  t.same({ status: php.status, signal: php.signal }, { status: 0, signal: null }, 'the PHP fuzzer ended normally', { stderr: php.stderr })
  const phpResult = JSON.parse(php.stdout)
  t.same(phpResult.failures, [], 'PHP: every attach was accepted or refused with a documented code')
  const cases = JSON.parse(fs.readFileSync(out, 'utf8'))
  const differ = cases.flatMap((c, i) => (c.outcome === phpResult.outcomes[i] ? [] : [{ ...c, php: phpResult.outcomes[i] }]))
  const lockOnly = cases.filter((c) => c.outcome === 'ERR_SHM_CORRUPT:lock').length
  t.comment(`PHP: ${cases.length} attaches replayed, ${phpResult.outcomes.filter((o) => o.startsWith('ok:')).length} accepted, ${phpResult.publishes} publishes; ${lockOnly} refused for a damaged claim lock field`)
  t.same(differ.slice(0, 10), [], 'PHP decided every case as Node did')
})
