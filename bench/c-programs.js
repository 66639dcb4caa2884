'use strict'
/*
 * c-programs.js: builds the benchmark's C programs (bench/peers/NAME.c) into
 * bench/build/NAME (ignored by git) with gcc -O2, linked with this project's
 * own C sources (src/) as they are now, so that a C floor runs the same
 * protocol code as the addon.
 */
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const SRC = path.join(__dirname, '..', 'src')
const BUILD = path.join(__dirname, 'build')
// The section protocol on Linux, and the io_uring futex wait (what the addon's event-loop waits use).
const SECTIONS = ['sections.c', 'sections-posix.c', 'sections-linux.c', 'copy.c', 'futex-ring-linux.c']

const built = new Map()

/** Builds bench/peers/<name>.c once; returns { binary } or { failure: why it could not }. */
function buildC (name) {
  if (!built.has(name)) built.set(name, compile(name))
  return built.get(name)
}

function compile (name) {
  if (process.platform !== 'linux') return { failure: 'the C floors are built for Linux only' }
  fs.mkdirSync(BUILD, { recursive: true })
  const binary = path.join(BUILD, name)
  const args = ['-O2', '-std=gnu11', '-Wall', '-Wextra', `-I${SRC}`, path.join(__dirname, 'peers', `${name}.c`),
    ...SECTIONS.map((f) => path.join(SRC, f)), '-o', binary]
  const r = spawnSync('gcc', args, { encoding: 'utf8' })
  if (r.error) return { failure: `gcc not found (${r.error.code})` }
  if (r.status !== 0) return { failure: `gcc failed: ${r.stderr.trim()}` }
  return { binary }
}

module.exports = { buildC }
