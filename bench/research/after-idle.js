#!/usr/bin/env node
'use strict'
/*
 * after-idle.js: what one call costs when the process has slept before it,
 * as a bridge or a reader that wakes for each message does (why:
 * docs/performance.md, "Across hosts"). Each sample sleeps --gap ms, then
 * times one call: section.read(), section.readInto() of a kept Buffer,
 * section.info(), Buffer.allocUnsafe, Buffer.allocUnsafe + fill (its pages
 * touched for the first time) and fill of a kept Buffer. Prints the median
 * µs per call and size.
 *
 *   node bench/research/after-idle.js [--gap 20] [--count 100]
 */
const { median } = require('../harness')
const { createTable, removeTable } = require('../peers/children')

const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`)
  return at > 0 ? Number(process.argv[at + 1]) : fallback
}
const GAP_MS = arg('gap', 20)
const COUNT = arg('count', 100)
const SIZES = [10 * 1024, 100 * 1024]
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  // A bench key, removed at exit and on Ctrl-C too.
  const { key, table } = createTable([{ name: 'p', size: Math.max(...SIZES) }])
  try {
    const section = table.section('p')
    section.claim()
    for (const bytes of SIZES) {
      section.publish(Buffer.alloc(bytes, 1))
      const kept = Buffer.alloc(bytes)
      const calls = {
        'read()': () => section.read(),
        'readInto(kept)': () => section.readInto(kept),
        'info()': () => section.info(),
        'Buffer.allocUnsafe': () => Buffer.allocUnsafe(bytes),
        'Buffer.allocUnsafe + fill': () => Buffer.allocUnsafe(bytes).fill(2),
        'fill(kept)': () => kept.fill(3)
      }
      const us = Object.fromEntries(Object.keys(calls).map((name) => [name, []]))
      for (let i = 0; i < COUNT; i++) {
        for (const [name, call] of Object.entries(calls)) {
          await sleep(GAP_MS)
          const started = process.hrtime.bigint()
          call()
          us[name].push(Number(process.hrtime.bigint() - started) / 1000)
        }
      }
      console.log(`${bytes} B after ${GAP_MS} ms asleep, median µs: ` +
        Object.entries(us).map(([name, values]) => `${name} ${median(values).toFixed(1)}`).join(', '))
    }
  } finally {
    table.close()
    removeTable(key)
  }
}

main().catch((error) => { console.error(error); process.exitCode = 1 })
