'use strict'
// The README's sections example runs as written (with this file's key, and a
// `data` to publish), and the PHP example next to it reads what it published.
const t = require('tap')
const fs = require('node:fs')
const path = require('node:path')
const shm = require('..')
const { keyFor, cleanupTablesAfter, requirePHP, php, ROOT } = require('./helpers')

cleanupTablesAfter(t)
requirePHP()

const README = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8')
const after = (heading, fence) => {
  const from = README.indexOf(heading)
  const start = README.indexOf('```' + fence + '\n', from) + fence.length + 4
  return README.slice(start, README.indexOf('```\n', start))
}

t.test('the sections example of the README', async (t) => {
  const key = keyFor(1)
  const code = after('### Sections', 'js').replaceAll('0x5e000100', String(key)).replace('timeout: 5000', 'timeout: 50')
  t.match(code, /shm\.sections\.apply\(/, 'it starts with the manager')
  t.teardown(() => shm.sections.remove(key))
  const run = new Function('shm', 'data', `return (async () => {\n${code}\nreturn { table, reader, version, payload }\n})()`) // eslint-disable-line no-new-func
  const result = await run(shm, { price: 42 })
  t.same(result.version, 1, 'the reader saw version 1, and the wait timed out on it')
  t.same(JSON.parse(result.payload), { price: 42 }, 'and read what the writer published')
  result.table.close()

  const phpCode = after('**Sections from PHP.**', 'php').replaceAll('0x5e000100', String(key)).replace('5.0', '0.1')
  const out = php(['-r', `require '${ROOT}/php/autoload.php'; $data = ['price' => 43]; ${phpCode} echo $v;`])
  t.equal(out.stdout, '0', 'the PHP example runs: it publishes prices, and orders is at version 0', { stderr: out.stderr })
  const prices = shm.sections.attach(key, { readOnly: true })
  t.same(JSON.parse(prices.section('prices').read().data), { price: 43 }, 'Node reads what PHP published')
  prices.close()
})
