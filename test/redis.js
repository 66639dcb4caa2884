'use strict'
// A real redis-server for the bridge tests: started on a free loopback port
// with no persistence, stopped (SIGKILL) when the test ends, also on failure.

const { spawn, spawnSync } = require('node:child_process')
const net = require('node:net')
const { once } = require('node:events')

/** A free TCP port on 127.0.0.1 (the kernel's choice; nothing else binds in between here). */
async function freePort () {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

/** redis-server on PATH, or a thrown Error saying what to install. */
function requireRedis () {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.error || !/Redis server/.test(probe.stdout)) throw new Error('the bridge tests need redis-server: apt-get install -y redis-server')
}

/**
 * Starts redis-server on a free port; returns { port, url, pid, stop(), start() }.
 * stop() kills it (SIGKILL: everything is lost, as in a crash without persistence);
 * start() starts it again on the same port.
 */
async function redisServer (t) {
  requireRedis()
  const port = await freePort()
  const redis = { port, url: `redis://127.0.0.1:${port}`, child: null }
  redis.start = async () => {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', '/tmp', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'pipe'] })
    redis.child = child
    // Ready when it accepts a connection.
    for (let tries = 0; ; tries++) {
      const socket = net.connect(port, '127.0.0.1')
      const ok = await new Promise((resolve) => {
        socket.once('connect', () => resolve(true))
        socket.once('error', () => resolve(false))
      })
      socket.destroy()
      if (ok) break
      if (child.exitCode !== null || tries > 200) throw new Error(`redis-server did not start on port ${port}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    redis.pid = child.pid
  }
  redis.stop = async () => {
    const { child } = redis
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await once(child, 'exit')
  }
  t.teardown(redis.stop)
  await redis.start()
  return redis
}

/** Polls until fn() is truthy; throws, naming `what`, after ms. */
async function until (fn, ms, what) {
  const end = Date.now() + ms
  for (;;) {
    const value = await fn()
    if (value) return value
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

module.exports = { redisServer, requireRedis, freePort, until }
