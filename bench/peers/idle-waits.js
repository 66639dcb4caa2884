'use strict'
/*
 * idle-waits.js: a Node process of the idle group (bench/idle.js forks it with
 * an IPC channel). It attaches a section table, starts `waits` pending
 * section.wait()s spread over its sections s0..s(sections-1) (none: the
 * floor), or with `table`, one table.wait() on all of them, and measures its
 * own CPU time while nobody publishes.
 *
 * Commands (parent -> child, answered by { ok, ... } or { error }):
 *   setup { key, waits, sections, table, settleMs } -> { mechanism, threads }
 *   measure { ms } -> { cpuNs, wallMs, threads }
 * cpuNs: process.cpuUsage() (user + system, every thread) over the measure;
 * threads: the process's threads (/proc/self/status), null where unknown.
 */
const fs = require('node:fs')
const path = require('node:path')
const { sections } = require(path.join(__dirname, '..', '..'))

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const now = process.hrtime.bigint

function threads () {
  try {
    return Number(/^Threads:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1])
  } catch {
    return null
  }
}

/* The parent went away (Ctrl-C, crash): nothing left to do. */
process.on('disconnect', () => process.exit(0))

let table
const pending = []
process.on('message', async (msg) => {
  try {
    if (msg.cmd === 'setup') {
      table = sections.attach(msg.key)
      // wait(0): nothing is ever published, so each stays pending; ended by a retirement, or by the exit
      const names = Array.from({ length: msg.sections }, (_, i) => `s${i}`)
      if (msg.table) pending.push(table.wait(names, names.map(() => 0)).catch(() => {}))
      else for (let i = 0; i < msg.waits; i++) pending.push(table.section(names[i % msg.sections]).wait(0).catch(() => {}))
      await sleep(msg.settleMs) // past the first steps of every sleeper
      process.send({ ok: true, mechanism: sections.waitMechanism(), threads: threads() })
    } else if (msg.cmd === 'measure') {
      const cpu = process.cpuUsage()
      const start = now()
      await sleep(msg.ms)
      const used = process.cpuUsage(cpu)
      process.send({ ok: true, cpuNs: (used.user + used.system) * 1000, wallMs: Number(now() - start) / 1e6, threads: threads() })
    } else if (msg.cmd === 'quit') {
      process.exit(0)
    }
  } catch (error) {
    process.send({ error: error && error.stack ? error.stack : String(error) }, () => process.exit(1))
  }
})
