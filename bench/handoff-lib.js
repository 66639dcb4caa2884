'use strict'
/*
 * handoff-lib.js: what the cross-process groups (handoff.js, phplayout.js)
 * share: child processes spoken to one message at a time, the section tables
 * and temporary directories they use, and their cleanup on every way out
 * (normal end, exception, Ctrl-C/SIGTERM/SIGHUP).
 *
 * Keys: 0x6B000000 | (pid & 0xffff) << 8 | n, a range nothing else in the
 * repository uses (tests 0x6C/0x6E, scripts 0x6D, bench/shm.js 0x6F). A table
 * is removed (segment and claim lock, sections.remove) as soon as its children
 * have attached and claimed: the mappings stay usable, and a parent killed
 * with SIGKILL leaves nothing behind.
 */
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork, spawn, spawnSync } = require('node:child_process')
const { sections } = require(path.join(__dirname, '..'))

const KEY_BASE = (0x6b000000 | ((process.pid & 0xffff) << 8)) | 0
let nextKey = 0
const children = new Set()
const tables = new Set()
const dirs = new Set()
let hooked = false

function cleanup () {
  for (const child of children) {
    try { child.kill('SIGKILL') } catch {}
  }
  children.clear()
  for (const key of tables) removeTable(key)
  for (const dir of dirs) {
    try { fs.rmSync(dir, { recursive: true, force: true }) } catch {}
  }
  dirs.clear()
}

function hook () {
  if (hooked) return
  hooked = true
  process.once('exit', cleanup)
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
    process.once(signal, () => {
      cleanup()
      process.stderr.write(`\nbench: interrupted (${signal}); child processes, section tables and sockets removed\n`)
      process.exit(128 + number) // 'exit' listeners (bench/shm.js's cleanup) still run
    })
  }
}

/** Creates a section table with a fresh key; returns { key, table }. */
function createTable (list) {
  hook()
  if (nextKey > 255) throw new Error('bench/handoff-lib.js: out of keys (256 per process)')
  const key = KEY_BASE + nextKey++
  try { sections.remove(key) } catch {} // a leftover of an earlier process with our pid
  const table = sections.create(key, { mode: 0o600, sections: list })
  tables.add(key)
  return { key, table }
}

/** Removes a table (segment and claim lock); quiet when it is already gone. */
function removeTable (key) {
  tables.delete(key)
  try { sections.remove(key) } catch {}
  try {
    // A segment already marked for deletion keeps its key nowhere; nothing to do.
    // A segment still carrying the key (removal failed above) goes by id.
    const rows = fs.readFileSync('/proc/sysvipc/shm', 'utf8').trim().split('\n').slice(1)
    for (const row of rows) {
      const [k, id] = row.trim().split(/\s+/).map(Number)
      if ((k | 0) === key) spawnSync('ipcrm', ['-m', String(id)], { stdio: 'ignore' })
    }
  } catch {}
}

/** Kills proc on cleanup (if it is still running then). */
function track (proc) {
  hook()
  children.add(proc)
  proc.once('exit', () => children.delete(proc))
  return proc
}

/** A temporary directory for sockets, removed on cleanup. */
function tempDir () {
  hook()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-bench-'))
  dirs.add(dir)
  return dir
}

function removeDir (dir) {
  dirs.delete(dir)
  try { fs.rmSync(dir, { recursive: true, force: true }) } catch {}
}

/*
 * A child process spoken to by messages: Node children through the IPC
 * channel, PHP children through JSON lines on stdin/stdout. next() is the
 * next message it sends; a message { error } or the child's exit rejects.
 */
class Child {
  constructor (kind, command, args, label) {
    hook()
    this.label = label
    this.queue = []
    this.waiters = []
    this.stderr = ''
    this.dead = null
    if (kind === 'node') {
      this.proc = fork(command, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' })
      this.proc.on('message', (m) => this.push(m))
      this.write = (m) => this.proc.send(m)
    } else {
      this.proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
      let text = ''
      this.proc.stdout.setEncoding('utf8')
      this.proc.stdout.on('data', (chunk) => {
        text += chunk
        let nl
        while ((nl = text.indexOf('\n')) >= 0) {
          const line = text.slice(0, nl)
          text = text.slice(nl + 1)
          let m
          try { m = JSON.parse(line) } catch { m = { error: `not JSON: ${line}` } }
          this.push(m)
        }
      })
      this.proc.stdin.on('error', () => {})
      this.write = (m) => this.proc.stdin.write(JSON.stringify(m) + '\n')
    }
    children.add(this.proc)
    this.proc.stderr.setEncoding('utf8')
    this.proc.stderr.on('data', (chunk) => { this.stderr = (this.stderr + chunk).slice(-4000) })
    this.proc.on('error', (error) => this.die(error))
    this.proc.on('exit', (code, signal) => {
      children.delete(this.proc)
      this.die(new Error(`${this.label} exited (${signal || code})${this.stderr ? `: ${this.stderr.trim()}` : ''}`))
    })
  }

  push (m) {
    if (m && m.error) return this.die(new Error(`${this.label}: ${m.error}`))
    const w = this.waiters.shift()
    if (w) w.resolve(m)
    else this.queue.push(m)
  }

  die (error) {
    if (!this.dead) this.dead = error
    for (const w of this.waiters.splice(0)) w.reject(this.dead)
  }

  /** The child's next message (rejects after timeoutMs). */
  next (timeoutMs = 120000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift())
    if (this.dead) return Promise.reject(this.dead)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w)
        if (i >= 0) this.waiters.splice(i, 1)
        reject(new Error(`${this.label}: no answer within ${timeoutMs / 1000} s${this.stderr ? `: ${this.stderr.trim()}` : ''}`))
      }, timeoutMs)
      const w = {
        resolve: (m) => { clearTimeout(timer); resolve(m) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      }
      this.waiters.push(w)
    })
  }

  send (m) {
    if (this.dead) throw this.dead
    this.write(m)
  }

  request (m, timeoutMs) {
    this.send(m)
    return this.next(timeoutMs)
  }

  /** Asks the child to quit, and kills it if it has not within a second. */
  async stop () {
    if (this.dead) return
    const exited = new Promise((resolve) => this.proc.once('exit', resolve))
    try { this.send({ cmd: 'quit' }) } catch {}
    const timer = setTimeout(() => { try { this.proc.kill('SIGKILL') } catch {} }, 1000)
    await exited
    clearTimeout(timer)
  }
}

const nodeChild = (script, args, label) => new Child('node', script, args, label)
const phpChild = (args, label) => new Child('php', 'php', args, label)

/** Why PHP cannot run the PHP cases here, or null when it can. */
function phpProblem () {
  const r = spawnSync('php', ['-r', 'echo json_encode(["v" => PHP_VERSION, "shmop" => extension_loaded("shmop"), ' +
    '"sem" => function_exists("sem_get"), "ffi" => extension_loaded("ffi"), "ffiEnable" => ini_get("ffi.enable")]);'],
  { encoding: 'utf8', timeout: 10000 })
  if (r.error) return { problem: `php not found (${r.error.code})` }
  let info
  try { info = JSON.parse(r.stdout) } catch { return { problem: `php -r failed: ${r.stderr.trim()}` } }
  if (!info.shmop || !info.sem) return { problem: `PHP ${info.v} lacks ${!info.shmop ? 'shmop' : 'sysvsem'}`, info }
  return { problem: null, info }
}

// ==== Statistics ====

/** The q-quantile of a sorted list (linear interpolation between closest ranks). */
function quantile (sorted, q) {
  if (!sorted.length) return NaN
  const at = (sorted.length - 1) * q
  const lo = Math.floor(at)
  const hi = Math.ceil(at)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo)
}

function median (xs) { return quantile([...xs].sort((a, b) => a - b), 0.5) }

module.exports = {
  KEY_BASE, createTable, removeTable, track, tempDir, removeDir, cleanup, nodeChild, phpChild, phpProblem, quantile, median
}
