'use strict'
// floor: the handoff group's method between two C processes (handoff-floor.c:
// futex, a spinning reader, Unix socket, TCP), with nothing around them: what
// this machine allows any implementation. Built by gcc into bench/build/.
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { SIZES, GAP_US, DROP, stats, compare, legendOf } = require('../handoff')
const { output, jsonLines } = require('../peers/children')

const SOURCE = path.join(__dirname, 'handoff-floor.c')
const BINARY = path.join(__dirname, '..', 'build', 'handoff-floor') // bench/build/ is ignored by git
const TRANSPORTS = [
  { id: 'futex', text: 'shm, futex wait (memcpy in and out)', transport: 'shm' },
  { id: 'spin', text: 'shm, reader spinning (burns a core)', transport: 'shm' },
  { id: 'unix', text: 'Unix socket (write/read)', transport: 'unix' },
  { id: 'tcp', text: 'TCP loopback (write/read)', transport: 'tcp' }
].map((t) => ({ ...t, informative: true }))

/** Builds the program (once); returns why it could not, or null. */
let built
function build () {
  if (built !== undefined) return built
  fs.mkdirSync(path.dirname(BINARY), { recursive: true })
  const r = spawnSync('gcc', ['-O2', '-std=gnu11', '-Wall', '-Wextra', SOURCE, '-o', BINARY], { encoding: 'utf8' })
  built = r.error ? `gcc not found (${r.error.code})` : r.status !== 0 ? `gcc failed: ${r.stderr.trim()}` : null
  return built
}

const measured = []
const notes = []
const legend = []
const refresh = () => legend.splice(0, legend.length, ...legendOf(measured, [], notes))

function makeCase ({ bytes, label }) {
  const name = `floor.c.${label}`
  return {
    kind: 'custom',
    name,
    async run ({ opts, progress }) {
      try {
        const problem = build()
        if (problem) return { skipped: problem }
        const rounds = opts.rounds * 2
        const perBatch = opts.samples * 20
        progress(`${name}: ${rounds} rounds`)
        const lines = jsonLines(await output(BINARY, ['--size', String(bytes), '--messages', String(perBatch + DROP), '--drop', String(DROP),
          '--rounds', String(rounds), '--gap-us', GAP_US.join(',')], { label: 'handoff-floor' }))
        const transports = TRANSPORTS.map((t) => stats(t, lines.filter((l) => l.transport === t.id).map((l) => l.latencies), { early: 0 }))
        const c = { writer: 'c', bytes, label, rounds, perBatch, drop: DROP, gapUs: GAP_US, machine: {}, transports, comparisons: compare('c', bytes, transports) }
        measured.push(c)
        return { results: [{ kind: 'handoff', name, ...c }] }
      } catch (error) {
        notes.push(`**${name} failed**: ${String(error.message).split('\n')[0]}`)
        return { results: [] }
      } finally {
        refresh()
      }
    }
  }
}

module.exports = {
  title: 'Handoff floors: the same method between two C processes',
  legend,
  cases: () => SIZES.map(makeCase)
}
