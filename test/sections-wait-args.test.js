'use strict'
// section.wait() checks every argument as waitSync() does, whatever the
// version, and rejects with the same errors; its second argument is
// { timeout, signal } or, as for waitSync, a timeout in milliseconds.
const t = require('tap')
const shm = require('..')
const { keyFor, cleanupTablesAfter } = require('./helpers')

cleanupTablesAfter(t)

const key = keyFor(0)
const table = shm.sections.create(key, { mode: 0o600, sections: [{ name: 's', size: 8 }] })
t.teardown(() => { table.close(); shm.sections.remove(key) })
const section = table.section('s')
const thrown = (fn) => { try { fn() } catch (error) { return error } }

t.test('a bad sinceVersion or timeout rejects with waitSync\'s error', async (t) => {
  const cases = [[], ['abc'], [null], [1.5], [-1], [2 ** 53], [0, { timeout: -1 }], [0, { timeout: 1.5 }], [0, { timeout: '10' }], [0, -5]]
  for (const args of cases) {
    const timeout = typeof args[1] === 'object' ? args[1].timeout : args[1]
    const expected = thrown(() => section.waitSync(args[0], timeout))
    t.ok(expected instanceof Error, `waitSync(${args.map((a) => JSON.stringify(a))}) throws ${expected.code}`)
    await t.rejects(section.wait(...args), { name: expected.name, code: expected.code, message: expected.message }, `wait(${args.map((a) => JSON.stringify(a))})`)
  }
})

t.test('options: an object, or a timeout in milliseconds', async (t) => {
  const started = Date.now()
  t.equal(await section.wait(0, 5), 0, 'wait(v, 5) resolves with the unchanged version after 5 ms')
  t.ok(Date.now() - started < 5000, 'not 5 seconds')
  t.equal(await section.wait(0, 0), 0, 'a timeout of 0 ends at once')
  t.equal(await section.wait(0, { timeout: 5 }), 0, '{ timeout: 5 } is the same')
  await t.rejects(section.wait(0, 'x'), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
    message: 'The "options" argument must be of type object or number (a timeout in milliseconds). Received type string (\'x\')'
  })
  await t.rejects(section.wait(0, null), { code: 'ERR_INVALID_ARG_TYPE', message: /Received null$/ })
  for (const [signal, received] of [[1, 'Received type number (1)'], [{}, 'Received an instance of Object'], [Object.create(null), 'Received an instance of Object'], [function signal () {}, 'Received function signal']]) {
    await t.rejects(section.wait(0, { signal }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
      message: `The "options.signal" property must be an instance of AbortSignal. ${received}`
    })
  }
  t.equal(await section.wait(0, { signal: AbortSignal.abort('why') }).catch((reason) => reason), 'why', 'an aborted signal rejects with its reason')
})
