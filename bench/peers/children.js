'use strict'
/*
 * children.js: what the cross-process groups (handoff, idle, latest,
 * phplayout) share: child processes spoken to one message at a time, the
 * section tables and temporary directories they use, and their removal on
 * every way out (exit, signals, exceptions: shm.js). A table is removed only
 * once its children are done with it: removing a table retires it, which ends
 * every wait on it.
 */
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork, spawn, spawnSync } = require('node:child_process')
const { sections } = require('../..')
const { newKey, hookCleanup } = require('../shm')

const children = new Set()
const dirs = new Set()
let hooked = false

/** Kills the children and removes the directories on exit (shm.js removes the tables and turns signals into exits). */
function hook () {
  hookCleanup()
  if (hooked) return
  hooked = true
  process.once('exit', () => {
    for (const child of children) {
      try { child.kill('SIGKILL') } catch {}
    }
    for (const dir of dirs) removeDir(dir)
  })
}

/** Creates a section table with a fresh key; returns { key, table }. */
function createTable (list) {
  hook()
  const key = newKey()
  try { sections.remove(key) } catch {} // a leftover of an earlier process with our pid
  return { key, table: sections.create(key, { mode: 0o600, sections: list }) }
}

/** Removes a table (segment and claim lock); quiet when it is already gone. */
function removeTable (key) {
  try { sections.remove(key) } catch {}
}

/** Kills proc on exit (if it is still running then). */
function track (proc) {
  hook()
  children.add(proc)
  proc.once('exit', () => children.delete(proc))
  return proc
}

/** Runs a program to its end; resolves with its stdout, rejects with its stderr. */
function output (command, args, { label = path.basename(command), input, env, timeoutMs = 600000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(command, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] }))
    let out = ''
    let err = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.stdout.setEncoding('utf8').on('data', (c) => { out += c })
    child.stderr.setEncoding('utf8').on('data', (c) => { err = (err + c).slice(-4000) })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve(out)
      else reject(new Error(`${label} exited with ${signal || code}: ${err.trim()}`))
    })
    if (input !== undefined) child.stdin.end(input)
  })
}

/** Lines of JSON, as the C and PHP programs print them. */
const jsonLines = (text) => text.trim().split('\n').map((line) => JSON.parse(line))

/** A temporary directory for sockets, removed on exit. */
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
  constructor (kind, command, args, label, env) {
    hook()
    this.label = label
    this.queue = []
    this.waiters = []
    this.stderr = ''
    this.dead = null
    if (kind === 'node') {
      this.proc = fork(command, args, { env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' })
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

const nodeChild = (script, args, label, env) => new Child('node', script, args, label, env)
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

module.exports = { createTable, removeTable, track, output, jsonLines, tempDir, removeDir, nodeChild, phpChild, phpProblem }
