'use strict'
// The README's examples, run as they are written: the JSON round trip between
// PHP and Node (## Example), the sections example (an ES module) and PHP's
// sections snippet. Only the keys change (0x5e0000xx → this file's keys), so
// that parallel runs do not meet.

const t = require('tap')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { ROOT, keyFor, cleanupTablesAfter, php, requirePHP } = require('./helpers')

cleanupTablesAfter(t)
requirePHP()

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const section = (title) => README.slice(README.indexOf(`\n${title}\n`), README.indexOf('\n#', README.indexOf(`\n${title}\n`) + 1))
const blocks = (text, lang) => [...text.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1])
const KEYS = { '0x5e000001': keyFor(1), '0x5e000002': keyFor(2), '0x5e000100': keyFor(3) }
const withOurKeys = (code) => code.replace(/0x5e[0-9a-f]{6}/g, (key) => {
  if (!(key in KEYS)) throw new Error(`the README uses key ${key}: give it one of this test's keys`)
  return String(KEYS[key])
})

/** A project folder where require('nodejs-shm') and import 'nodejs-shm' find this checkout. */
function project (t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-readme-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'nodejs-shm'), 'dir')
  return dir
}

function node (t, dir, file, code) {
  fs.writeFileSync(path.join(dir, file), code)
  const run = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8' })
  t.equal(run.status, 0, `node ${file}`, { stderr: run.stderr })
  return run.stdout
}

function phpCode (t, code) {
  const run = php(['-r', `require '${ROOT}/php/autoload.php';\n${code}`])
  t.equal(run.status, 0, 'php', { stderr: run.stderr })
  t.equal(run.stderr, '', 'no PHP warnings')
  return run.stdout
}

t.test('## Example: JSON from PHP to Node and back, NUL-terminated', async (t) => {
  const example = section('## Example')
  const [phpWriter, phpReader] = blocks(example, 'php').map(withOurKeys)
  const [js] = blocks(example, 'js').map(withOurKeys)
  t.ok(phpWriter && phpReader && js, 'a PHP writer, Node, and a PHP reader')
  const dir = project(t)

  // A longer text first: the example's NUL must cut its tail off.
  phpCode(t, `$h = shmop_open(${KEYS['0x5e000001']}, "c", 0644, 100000); shmop_write($h, str_repeat("x", 500), 0);` +
    `$g = shmop_open(${KEYS['0x5e000002']}, "c", 0644, 4096); shmop_write($g, str_repeat("y", 500), 0);`)
  phpCode(t, phpWriter)
  const out = node(t, dir, 'example.js', `${js}\nconsole.log(JSON.stringify(data))\n`)
  t.same(JSON.parse(out), { hello: 'node' }, 'Node parses what PHP wrote')
  t.same(JSON.parse(phpCode(t, `${phpReader}\necho json_encode($data);`)), { hello: 'php' }, 'PHP parses what Node wrote')
})

t.test('## Sections: the ES module example, and PHP\'s snippet', async (t) => {
  const text = section('### Sections')
  const [js] = blocks(text, 'js').map(withOurKeys)
  t.match(js, /^import shm from 'nodejs-shm'$/m, 'an ES module')
  t.match(js, /shm\.sections\.apply\(/, 'it starts with the central manager')
  const dir = project(t)
  const out = node(t, dir, 'sections.mjs', js).split('\n')
  t.same(out, ['1 { EURUSD: 1.0842 }', '2 { EURUSD: 1.0843 }', "[ { name: 'prices', version: 3 } ]", ''], 'it prints what the comments say')

  const [phpSnippet] = blocks(section('## Using it with PHP'), 'php').map(withOurKeys)
  const seen = JSON.parse(phpCode(t, `${phpSnippet}\necho json_encode(['v' => $v, 'json' => $json, 'info' => $info, 'changed' => $changed]);`))
  t.match(seen, { v: 0, json: '', changed: [], info: { name: 'prices', version: 4, length: Buffer.byteLength('{"EURUSD":1.0844}'), lastWriterPid: Number, writer: { self: true, alive: true } } },
    'PHP claimed and published prices (version 4); orders was never published; nothing changed while PHP waited')
  const back = spawnSync(process.execPath, ['-e', `const t = require('nodejs-shm').sections.attach(${KEYS['0x5e000100']}, { readOnly: true });` +
    'console.log(String(t.section("prices").read().data)); t.close()'], { cwd: dir, encoding: 'utf8' })
  t.equal(back.stdout, '{"EURUSD":1.0844}\n', 'Node reads PHP\'s publish')
  require('..').sections.remove(KEYS['0x5e000100'])
})
