'use strict'
/*
 * handoff-node.js: a Node process of the handoff benchmark (bench/handoff.js
 * forks it with an IPC channel). `reader` receives messages (section wait,
 * section waitSync, or a Unix/TCP socket) and acknowledges each one; `writer`
 * sends them (section publish, or a socket write) and waits for each
 * acknowledgement before the next.
 *
 * Message (the payload, `size` bytes; on a socket preceded by a u32 length):
 *   0  i64  t0: process.hrtime.bigint() (PHP: hrtime(true)) just before the
 *           publish or the write: CLOCK_MONOTONIC, one clock for every process
 *   8  u32  sequence number             size-4  u32  the sequence number again
 * The reader takes t1 = process.hrtime.bigint() once it holds the whole
 * payload (after readInto(), or once the socket's bytes are in one Buffer) and
 * records t1 - t0. Acknowledgement: a u32 sequence number, published to the
 * `ack` section (section cases) or written back on the same socket.
 *
 * Commands (parent -> child, answered by { ok, ... } or { error }):
 *   reader: setup { key, ackSections, capacity, unixPath, fifoPath }  -> { tcpPort }
 *           expect { mode: 'wait'|'waitSync'|'spin'|'socket'|'nudge'|'nudgeSync', section, ack, n }
 *             -> { armed } at once, then { latencies, early, cpuNs } after n messages
 *   writer: setup { key, section, ack, size, unixPath, tcpPort, fifoPath }
 *           send { transport: 'shm'|'unix'|'tcp'|'nudge'|'nudgeSync', n, gapUs: [min, max] } -> { done, cpuNs }
 * nudge: the section is published as for 'shm' (no reader counted asleep: no
 * futex wake), then one byte is written on the Unix socket; the reader, in
 * its event loop, reads the section in the socket's 'data' callback: an
 * event-loop wake in Node with nothing of this library's in it.
 * nudgeSync: the same with the byte on a FIFO (fifoPath), which the reader
 * waits for blocking in fs.readSync: Node's own blocking wake.
 * cpuNs: the CPU time this process (every thread) used over the n messages,
 * from process.cpuUsage(). spin: waitSync(v, { timeout, spin: SPIN_US }), a
 * spin longer than the writer's gap, so the reader never sleeps.
 * The writer waits for each acknowledgement the cheapest way its transport
 * offers: ack.waitSync() for a section, the event loop for a socket.
 */
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { sections } = require(path.join(__dirname, '..', '..'))

const role = process.argv[2]
const WAIT_MS = 10000 // no message takes this long: a longer wait is a failure
const SPIN_US = 2000 // longer than the writer's gap (≤ 0.7 ms) and its acknowledgement
const now = process.hrtime.bigint
const sleeper = new Int32Array(new SharedArrayBuffer(4))
const NUDGE = Buffer.from([1]) // 'nudge', 'nudgeSync': the byte that wakes the reader

/* The parent went away (Ctrl-C, crash): nothing left to do. */
process.on('disconnect', () => process.exit(0))

/** CPU time (ns) used since `start`, a process.cpuUsage() value. */
function cpuNs (start) {
  const used = process.cpuUsage(start)
  return (used.user + used.system) * 1000
}

function reply (message) {
  return new Promise((resolve) => process.send(message, resolve))
}

function fail (error) {
  process.send({ error: error && error.stack ? error.stack : String(error) }, () => process.exit(1))
}

/** Sleeps between messages, so that every message finds its reader asleep. */
function gap ([min, max]) {
  const us = min + Math.random() * (max - min)
  if (us > 0) Atomics.wait(sleeper, 0, 0, us / 1000)
}

/*
 * Frames on a socket: u32 length, then the payload. onFrame(payload) gets a
 * Buffer holding the whole payload: the chunk itself when one chunk carried
 * it, else a copy assembled in a Buffer allocated once.
 */
function framer (capacity, onFrame) {
  const whole = Buffer.allocUnsafe(capacity)
  let need = -1 // payload bytes of the frame being assembled; -1: reading the length
  let have = 0
  let head = Buffer.alloc(0)
  return function onData (chunk) {
    let at = 0
    while (at < chunk.length) {
      if (need < 0) {
        if (head.length + chunk.length - at < 4) {
          head = Buffer.concat([head, chunk.subarray(at)])
          return
        }
        const take = 4 - head.length
        const lenBytes = Buffer.concat([head, chunk.subarray(at, at + take)])
        head = Buffer.alloc(0)
        at += take
        need = lenBytes.readUInt32LE(0)
        if (need > capacity) throw new Error(`frame of ${need} bytes exceeds ${capacity}`)
        have = 0
        if (chunk.length - at >= need) { // the whole payload in this chunk
          const payload = chunk.subarray(at, at + need)
          at += need
          need = -1
          onFrame(payload)
          continue
        }
      }
      const take = Math.min(need - have, chunk.length - at)
      chunk.copy(whole, have, at, at + take)
      have += take
      at += take
      if (have === need) {
        need = -1
        onFrame(whole.subarray(0, have))
      }
    }
  }
}

// ==== Reader ====

function reader () {
  let table
  let buffer
  let fifo // the FIFO of 'nudgeSync', opened read-write: opening it never blocks
  let batch = null // { mode, n, latencies, early, seq, cpu }, and { section, ack, ackBuf } but for sockets
  const sockets = new Set()

  function record (payload, t1) {
    const seq = payload.readUInt32LE(8)
    if (payload.readUInt32LE(payload.length - 4) !== seq) throw new Error(`torn payload at message ${seq}`)
    if (seq !== batch.seq) throw new Error(`message ${seq} arrived, ${batch.seq} expected`)
    batch.seq++
    batch.latencies.push(Number(t1 - payload.readBigInt64LE(0)))
    return seq
  }

  async function finish () {
    const { latencies, early, cpu } = batch
    const used = cpuNs(cpu)
    batch = null
    await reply({ ok: true, latencies, early, cpuNs: used })
  }

  /**
   * n messages through the batch's section from version since, waited for by
   * wait(), or waitSync() (mode 'waitSync', 'spin'), which blocks at once, or
   * (mode 'nudgeSync') by a blocking read of the byte the writer sends on the FIFO.
   */
  async function readSection (since, n, mode) {
    const { section, ack, ackBuf } = batch
    const nudge = Buffer.alloc(1)
    const sync = mode !== 'wait'
    const options = mode === 'spin' ? { timeout: WAIT_MS, spin: SPIN_US } : WAIT_MS
    let version = since
    for (let i = 0; i < n; i++) {
      if (section.version !== version) batch.early++ // published before we waited
      if (mode === 'nudgeSync') {
        fs.readSync(fifo, nudge) // nothing of this library's until readInto
      } else {
        const v = sync ? section.waitSync(version, options) : await section.wait(version, { timeout: WAIT_MS })
        if (v === version) throw new Error(`no message within ${WAIT_MS} ms (${mode})`)
      }
      const { version: v, length } = section.readInto(buffer)
      const t1 = now()
      version = v
      ackBuf.writeUInt32LE(record(buffer.subarray(0, length), t1), 0)
      ack.publish(ackBuf)
    }
    await finish()
  }

  /** A 'nudge' batch: each byte on the socket says that the section holds a new message. */
  function nudged (bytes) {
    for (let i = 0; i < bytes; i++) {
      const { length } = batch.section.readInto(buffer)
      const t1 = now()
      batch.ackBuf.writeUInt32LE(record(buffer.subarray(0, length), t1), 0)
      batch.ack.publish(batch.ackBuf)
    }
    if (batch.latencies.length === batch.n) finish().catch(fail)
  }

  function onConnection (socket, capacity) {
    socket.setNoDelay(true)
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const onFrame = framer(capacity, (payload) => {
      const t1 = now()
      if (!batch || batch.mode !== 'socket') throw new Error('a socket message outside a socket batch')
      const seq = record(payload, t1)
      const ackBuf = Buffer.allocUnsafe(4)
      ackBuf.writeUInt32LE(seq, 0)
      socket.write(ackBuf)
      if (batch.latencies.length === batch.n) finish().catch(fail)
    })
    socket.on('data', (chunk) => {
      try {
        if (batch && batch.mode === 'nudge') nudged(chunk.length)
        else onFrame(chunk)
      } catch (error) {
        fail(error)
      }
    })
  }

  process.on('message', async (msg) => {
    try {
      if (msg.cmd === 'setup') {
        table = sections.attach(msg.key)
        for (const name of msg.ackSections) table.section(name).claim()
        buffer = Buffer.alloc(msg.capacity)
        fifo = fs.openSync(msg.fifoPath, 'r+')
        const unix = net.createServer((s) => onConnection(s, msg.capacity))
        const tcp = net.createServer((s) => onConnection(s, msg.capacity))
        await new Promise((resolve, reject) => unix.once('error', reject).listen(msg.unixPath, resolve))
        await new Promise((resolve, reject) => tcp.once('error', reject).listen(0, '127.0.0.1', resolve))
        await reply({ ok: true, tcpPort: tcp.address().port, pid: process.pid })
      } else if (msg.cmd === 'expect') {
        if (!['wait', 'waitSync', 'spin', 'nudge', 'nudgeSync', 'socket'].includes(msg.mode)) throw new Error(`unknown mode ${msg.mode}`)
        batch = { mode: msg.mode, n: msg.n, latencies: [], early: 0, seq: 0 }
        let since = 0
        if (msg.mode !== 'socket') {
          Object.assign(batch, { section: table.section(msg.section), ack: table.section(msg.ack), ackBuf: Buffer.alloc(8) })
          // Before "armed": the writer publishes once it is sent, and a wait
          // from a version read after that publish would wait for the next
          // one, while the writer waits for this one's acknowledgement.
          since = batch.section.version
        }
        await reply({ ok: true, armed: true })
        batch.cpu = process.cpuUsage()
        if (msg.mode !== 'socket' && msg.mode !== 'nudge') await readSection(since, msg.n, msg.mode)
      } else if (msg.cmd === 'quit') {
        for (const s of sockets) s.destroy()
        process.exit(0)
      }
    } catch (error) {
      fail(error)
    }
  })
}

// ==== Writer ====

function writer () {
  let section, ack, payload, frame, fifo
  const sockets = {}
  let ackWaiter = null // resolves with the u32 acknowledged on a socket

  function connect (options) {
    return new Promise((resolve, reject) => {
      const socket = net.connect(options, () => resolve(socket))
      socket.once('error', reject)
      socket.setNoDelay(true)
      let pending = Buffer.alloc(0)
      socket.on('data', (chunk) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
        while (pending.length >= 4) {
          const seq = pending.readUInt32LE(0)
          pending = pending.subarray(4)
          const w = ackWaiter
          ackWaiter = null
          if (w) w(seq)
        }
      })
    })
  }

  /** Writes the sequence number at both ends of the payload (the timestamp comes last). */
  function stamp (buf, at, size, seq) {
    buf.writeUInt32LE(seq, at + 8)
    buf.writeUInt32LE(seq, at + size - 4)
  }

  async function send ({ transport, n, gapUs }) {
    const size = payload.length
    if (transport === 'shm' || transport === 'nudge' || transport === 'nudgeSync') {
      let ackVersion = ack.version
      for (let seq = 0; seq < n; seq++) {
        stamp(payload, 0, size, seq)
        gap(gapUs)
        payload.writeBigInt64LE(now(), 0)
        section.publish(payload)
        if (transport === 'nudge') sockets.unix.write(NUDGE)
        else if (transport === 'nudgeSync') fs.writeSync(fifo, NUDGE)
        // The cheapest wait: blocks at once (ack.wait() would first start a
        // thread, and on a busy machine, where writer and reader often share
        // a core, the reader would wait for that too).
        const next = ack.waitSync(ackVersion, WAIT_MS)
        if (next === ackVersion) throw new Error(`no acknowledgement within ${WAIT_MS} ms`)
        ackVersion = next
      }
    } else {
      const socket = sockets[transport]
      for (let seq = 0; seq < n; seq++) {
        stamp(frame, 4, size, seq)
        gap(gapUs)
        const acked = new Promise((resolve) => { ackWaiter = resolve })
        frame.writeBigInt64LE(now(), 4)
        socket.write(frame)
        const got = await acked
        if (got !== seq) throw new Error(`acknowledgement ${got} for message ${seq}`)
      }
    }
  }

  process.on('message', async (msg) => {
    try {
      if (msg.cmd === 'setup') {
        const table = sections.attach(msg.key)
        section = table.section(msg.section)
        ack = table.section(msg.ack)
        section.claim()
        payload = Buffer.alloc(msg.size, 0x6b)
        frame = Buffer.alloc(4 + msg.size, 0x6b)
        frame.writeUInt32LE(msg.size, 0)
        fifo = fs.openSync(msg.fifoPath, 'r+')
        sockets.unix = await connect({ path: msg.unixPath })
        sockets.tcp = await connect({ host: '127.0.0.1', port: msg.tcpPort })
        await reply({ ok: true, pid: process.pid })
      } else if (msg.cmd === 'send') {
        const cpu = process.cpuUsage()
        await send(msg)
        await reply({ ok: true, done: true, cpuNs: cpuNs(cpu) })
      } else if (msg.cmd === 'quit') {
        for (const s of Object.values(sockets)) s.destroy()
        process.exit(0)
      }
    } catch (error) {
      fail(error)
    }
  })
}

if (role === 'reader') reader()
else if (role === 'writer') writer()
else {
  process.stderr.write('usage: node bench/peers/handoff-node.js reader|writer (forked by bench/handoff.js)\n')
  process.exit(2)
}
