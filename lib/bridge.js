'use strict'
// The bridge: mirrors sections between hosts through Redis (docs/bridge.md).
// Exported sections: each new local version goes to a Redis Stream per
// section (XADD … MAXLEN), fenced by a lease only one bridge holds. Imported
// sections: this bridge claims the local section and publishes what arrives
// (XREAD BLOCK), the latest entry first. Everything local goes through the
// Section API (claim, publish, readInto, wait), and one internal method: the
// publish time of the payload a read returned (see #latest).

const os = require('node:os')
const crypto = require('node:crypto')
const { setTimeout: sleep } = require('node:timers/promises')
const sections = require('./sections')
const { lastPublished } = require('./section')
const { codedError, hex } = require('./errors')

const PREFIX = 'nodejs-shm'
const ignore = () => {}
const MAX_BACKOFF = 5000
const BLOCK_MS = 1000 // an XREAD returns at least this often, to pick up sections that became ready

// KEYS: lease. ARGV: owner, ms. Takes a free lease or renews our own; else says who holds it and for how long.
const LEASE = `local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ARGV[1], tonumber(ARGV[2])}
end
return {0, cur, redis.call('PTTL', KEYS[1])}`
// KEYS: lease, stream. ARGV: owner, ms, maxlen, fields…. Adds an entry only while the lease is ours (fencing).
const EXPORT = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('NJSHM_LEASE_LOST the lease is no longer held by this bridge')
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], '*', unpack(ARGV, 4))`
// KEYS: lease. ARGV: owner. Gives the lease back on a clean stop, so a restart need not wait for it to expire.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** @redis/client, an optional peer dependency: only bridges need it. */
function requireClient () {
  try {
    return require('@redis/client')
  /* c8 ignore start -- tests have the client; bridge.test.js runs a copy of the package without it, whose coverage is not counted */
  } catch (error) {
    if (error.code !== 'MODULE_NOT_FOUND') throw error
    throw codedError(Error, 'ERR_SHM_BRIDGE_NO_CLIENT', 'The bridge needs the Redis client @redis/client (node-redis): npm install @redis/client')
  }
  /* c8 ignore stop */
}

/** A Redis URL without its password, for logs. */
const shown = (url) => url.replace(/\/\/[^@/]*@/, '//')

/** The Redis keys of a section: { stream, lease }. */
function keys (namespace, name) {
  const base = `${PREFIX}:{${namespace}}`
  return { stream: `${base}:stream:${name}`, lease: `${base}:lease:${name}` }
}

/** A stream entry's fields as { data (Buffer), version, published, host, length }. */
function decodeEntry ([id, list]) {
  const fields = {}
  for (let i = 0; i < list.length; i += 2) fields[list[i].toString()] = list[i + 1]
  const number = (name) => Number(fields[name]?.toString())
  return {
    id: id.toString(),
    data: fields.data ?? Buffer.alloc(0),
    version: number('version'),
    published: number('published'),
    host: fields.host?.toString(),
    length: number('length')
  }
}

/** Delays that double from 100 ms up to 5 s, back to 100 ms after a success. */
class Backoff {
  #delay = 100
  next () {
    const delay = this.#delay
    this.#delay = Math.min(delay * 2, MAX_BACKOFF)
    return delay
  }

  reset () { this.#delay = 100 }
}

function check (options) {
  const { redis, table, exports: out = [], imports: into = [], namespace = hex(table), leaseMs = 10000, keep = 4 } = options
  if (typeof redis !== 'string' || !/^rediss?:\/\//.test(redis)) {
    throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "redis" option must be a redis:// or rediss:// URL; got ${JSON.stringify(redis)}`)
  }
  if (!Number.isInteger(table) || table === 0) {
    throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "table" option must be a section table's key (a non-zero integer); got ${table}`)
  }
  const names = Array.isArray(out) && Array.isArray(into) ? [...out, ...into] : []
  if (names.length === 0 || names.some((n) => typeof n !== 'string' || !n) || new Set(names).size !== names.length) {
    throw codedError(TypeError, 'ERR_INVALID_ARG_VALUE', 'The "exports" and "imports" options must name at least one section, each once, in one direction')
  }
  if (typeof namespace !== 'string' || !/^[^:{}\s]+$/.test(namespace)) {
    throw codedError(RangeError, 'ERR_INVALID_ARG_VALUE', `The "namespace" option must be a non-empty string without ':', '{', '}' or spaces; got ${JSON.stringify(namespace)}`)
  }
  if (!Number.isInteger(leaseMs) || leaseMs < 100) throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `The "leaseMs" option must be an integer >= 100; got ${leaseMs}`)
  if (!Number.isInteger(keep) || keep < 1) throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `The "keep" option must be an integer >= 1; got ${keep}`)
  return { redis, table, out, into, namespace, leaseMs, keep }
}

class Bridge {
  #o
  #log
  #client
  #blocking
  #table = null
  #running = false
  #stop = new AbortController()
  #stopped = new Promise((resolve) => this.#stop.signal.addEventListener('abort', resolve))
  #loops = []
  #redisUp = false
  #sections = new Map()
  #lastSaid = new Map()
  #lost

  /**
   * options: { redis (URL), table (key), exports: [names], imports: [names],
   * namespace (default: the table key in hex), host (default: os.hostname()),
   * leaseMs (10000), keep (stream length, 4), log (one line per call) }
   */
  constructor (options = {}) {
    this.#o = check(options)
    this.#log = options.log ?? ignore
    this.host = options.host ?? os.hostname()
    this.owner = `${this.host} pid ${process.pid} ${crypto.randomBytes(4).toString('hex')}` // this run's lease value
    for (const [direction, names] of [['export', this.#o.out], ['import', this.#o.into]]) {
      for (const name of names) {
        this.#sections.set(name, {
          name, direction, keys: keys(this.#o.namespace, name), state: 'starting', error: null,
          section: null, buffer: null, synced: false, version: 0, remoteVersion: 0, streamId: null, lagMs: null, holder: null, retryAt: 0, first: ignore, kick: ignore
        })
      }
    }
  }

  /** Connects and starts every section; resolves once each has made its first attempt (see status()). */
  async start () {
    const redis = requireClient()
    const { createClient, RESP_TYPES } = redis
    // A command cut off by a lost connection: said once by the 'error' event, not again per section.
    const lost = [redis.SocketClosedUnexpectedlyError, redis.ClientClosedError, redis.DisconnectsClientError]
    this.#lost = (error) => lost.some((type) => error instanceof type)
    this.#running = true
    const firsts = [...this.#sections.values()].map((s) => new Promise((resolve) => { s.first = resolve }))
    this.#client = createClient({
      url: this.#o.redis,
      RESP: 2, // replies as arrays (node-redis 6 defaults to RESP3, whose maps differ)
      socket: { reconnectStrategy: (tries) => Math.min(100 * 2 ** tries, MAX_BACKOFF) },
      commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } }
    })
    this.#client.on('error', (error) => this.#redisDown(error))
    this.#client.on('ready', () => this.#redisReady())
    this.#blocking = this.#client.duplicate()
    this.#blocking.on('error', ignore) // reported through #client, which shares the server
    this.#client.connect().catch(ignore) // failures reach 'error' and are retried by reconnectStrategy
    this.#blocking.connect().catch(ignore)
    for (const s of this.#sections.values()) if (s.direction === 'export') this.#loops.push(this.#exportLoop(s))
    if (this.#o.into.length) this.#loops.push(this.#importLoop())
    await Promise.all(firsts)
    return this
  }

  /** Stops: gives back leases (if Redis answers), releases local claims, disconnects. */
  async close () {
    if (!this.#running) return
    this.#running = false
    this.#stop.abort()
    if (this.#redisUp) {
      const leases = [...this.#sections.values()].filter((s) => s.holder === this.owner)
      await Promise.race([Promise.all(leases.map((s) => this.#eval(RELEASE, [s.keys.lease], [this.owner]))), sleep(1000, null, { ref: false })])
        .catch(ignore)
    }
    // Ends a pending XREAD BLOCK, and commands waiting for Redis to come back.
    this.#blocking.destroy()
    this.#client.destroy()
    await Promise.all(this.#loops)
    this.#table?.close()
  }

  /** Per section: direction, state, local and remote versions, lag; as printed by `bridge --json`. */
  status () {
    return {
      host: this.host,
      table: hex(this.#o.table),
      namespace: this.#o.namespace,
      redis: this.#redisUp ? 'up' : 'down',
      sections: [...this.#sections.values()].map((s) => ({
        name: s.name,
        direction: s.direction,
        state: s.state,
        error: s.error,
        version: s.version,
        remoteVersion: s.remoteVersion,
        streamId: s.streamId,
        lagMs: s.lagMs,
        leaseHolder: s.holder
      }))
    }
  }

  #redisDown (error) {
    // One line per outage: null means "down, and said so" until the next 'ready'.
    if (this.#redisUp !== null) this.#log(`redis ${shown(this.#o.redis)}: ${error.message}; reconnecting with back-off`)
    this.#redisUp = null
  }

  #redisReady () {
    if (this.#redisUp === null) this.#log(`redis ${shown(this.#o.redis)}: connected again`)
    this.#redisUp = true
    // Redis may have restarted empty: every exporter checks its lease and stream again.
    for (const s of this.#sections.values()) {
      s.resync = true
      s.kick()
    }
  }

  /** Logs a line unless it repeats the last one said about the same thing (retries stay quiet). */
  #say (line, about) {
    if (this.#lastSaid.get(about) === line) return
    this.#lastSaid.set(about, line)
    this.#log(line)
  }

  #ok (s, state = 'ok') {
    if (s.error) this.#say(`section '${s.name}' (${s.direction}): ${state === 'ok' ? 'working again' : state}`, s.name)
    s.state = state
    s.error = null
    s.first()
  }

  #fail (s, error, state = 'retrying') {
    s.first()
    if (!this.#running) return // a command cut off by close(): the last status stays what it was
    s.state = state
    s.error = error.message
    if (!this.#lost(error)) this.#say(`section '${s.name}' (${s.direction}): ${error.message}`, s.name)
  }

  /** The local table, attached once: read-write where imports claim, else read-only (exports only read). */
  #localTable () {
    this.#table ??= sections.attach(this.#o.table, { readOnly: this.#o.into.length === 0 })
    return this.#table
  }

  #eval (script, keyList, args) {
    return this.#client.sendCommand(['EVAL', script, String(keyList.length), ...keyList, ...args])
  }

  async #exportLoop (s) {
    const backoff = new Backoff()
    let renewAt = 0
    while (this.#running) {
      const kicked = new Promise((resolve) => { s.kick = resolve }) // before any await: a kick meanwhile ends the wait below
      try {
        s.section ??= this.#localTable().section(s.name)
        if (s.holder !== this.owner || s.resync || Date.now() >= renewAt) {
          s.resync = false
          const [held, holder, ttl] = await this.#eval(LEASE, [s.keys.lease], [this.owner, String(this.#o.leaseMs)])
          s.holder = holder.toString()
          if (!held) {
            throw Object.assign(codedError(Error, 'ERR_SHM_BRIDGE_LEASE_HELD',
              `export refused: the section is exported by ${s.holder}; this bridge takes over when that lease expires`), { retryIn: Math.max(ttl, 50) })
          }
          renewAt = Date.now() + this.#o.leaseMs / 3
          await this.#resync(s)
        }
        const { version, data, published } = this.#latest(s)
        if (version !== 0 && version !== s.exported) await this.#export(s, version, data, published)
        this.#ok(s, version === 0 ? 'waiting for the first local publish' : 'ok')
        backoff.reset()
        // Until a new version, the lease's renewal, Redis coming back, or the bridge stopping.
        await Promise.race([s.section.wait(version, { timeout: Math.max(1, Math.ceil(renewAt - Date.now())) }), kicked, this.#stopped])
      } catch (error) {
        if (error.message.startsWith('NJSHM_LEASE_LOST')) s.holder = null
        this.#fail(s, error, error.code === 'ERR_SHM_BRIDGE_LEASE_HELD' ? 'refused' : 'retrying')
        await sleep(error.retryIn ?? backoff.next(), null, { signal: this.#stop.signal }).catch(ignore)
      }
    }
  }

  /**
   * An exported section's latest payload { version, data, published }: data in
   * a Buffer kept per section, grown to its capacity (a fresh 100 KB costs more
   * in page faults than the copy: docs/performance.md, "Across hosts"), reused
   * once Redis has answered the export that sent it; the publish time from the
   * same read (info() is a second read, and looks at the claim lock too).
   */
  #latest (s) {
    if (!(s.buffer?.length >= s.section.capacity)) s.buffer = Buffer.allocUnsafe(s.section.capacity)
    let read
    try {
      read = s.section.readInto(s.buffer)
    /* c8 ignore start -- a race: the table was replaced by one where the section is larger between the look at its capacity and the read, which followed it */
    } catch (error) {
      if (error.code !== 'ERR_OUT_OF_RANGE') throw error
      return this.#latest(s)
    }
    /* c8 ignore stop */
    return { version: read.version, data: s.buffer.subarray(0, read.length), published: s.section[lastPublished]() }
  }

  /** After taking the lease or a Redis restart: is the stream's latest entry our latest version? */
  async #resync (s) {
    const [last] = await this.#client.sendCommand(['XREVRANGE', s.keys.stream, '+', '-', 'COUNT', '1'])
    const { version, data } = this.#latest(s)
    const entry = last && decodeEntry(last)
    s.exported = entry && entry.host === this.host && entry.version === version && entry.data.equals(data) ? version : null
  }

  async #export (s, version, data, published) {
    const id = await this.#eval(EXPORT, [s.keys.lease, s.keys.stream], [this.owner, String(this.#o.leaseMs), String(this.#o.keep),
      'version', String(version), 'published', String(published), 'host', this.host, 'length', String(data.length), 'data', data])
    s.exported = s.version = s.remoteVersion = version
    s.streamId = id.toString()
    s.lagMs = Date.now() - published
  }

  /** Attaches and claims imported sections that are not ready yet (each on its own back-off). */
  #prepareImports () {
    for (const s of this.#sections.values()) {
      if (s.direction !== 'import' || s.section?.claimed || Date.now() < s.retryAt) continue
      try {
        s.section ??= this.#localTable().section(s.name)
        s.section.claim()
        s.backoff = null
        s.synced = false // read the latest entry first
      } catch (error) {
        s.backoff ??= new Backoff()
        s.retryAt = Date.now() + s.backoff.next()
        this.#fail(s, error)
      }
    }
  }

  async #importLoop () {
    const backoff = new Backoff()
    const imports = [...this.#sections.values()].filter((s) => s.direction === 'import')
    while (this.#running) {
      try {
        this.#prepareImports()
        const ready = imports.filter((s) => s.section?.claimed)
        for (const s of ready) {
          if (s.synced) continue
          const [last] = await this.#client.sendCommand(['XREVRANGE', s.keys.stream, '+', '-', 'COUNT', '1'])
          if (last) {
            this.#apply(s, decodeEntry(last), true)
          } else {
            s.streamId = '0-0'
            this.#ok(s, 'waiting for the first export')
          }
          s.synced = true
        }
        const waitMs = Math.max(1, Math.min(BLOCK_MS, ...imports.filter((s) => !s.section?.claimed).map((s) => s.retryAt - Date.now())))
        if (!ready.length) {
          await sleep(waitMs, null, { signal: this.#stop.signal }).catch(ignore)
          continue
        }
        const reply = await this.#blocking.sendCommand(['XREAD', 'BLOCK', String(waitMs), 'STREAMS',
          ...ready.map((s) => s.keys.stream), ...ready.map((s) => s.streamId)])
        for (const [key, entries] of reply ?? []) {
          const s = ready.find((r) => r.keys.stream === key.toString())
          this.#apply(s, decodeEntry(entries[entries.length - 1])) // only the latest matters
        }
        backoff.reset()
      } catch (error) {
        for (const s of imports) {
          if (s.section?.claimed) {
            s.synced = false // after Redis comes back: the latest entry first
            this.#fail(s, error)
          }
        }
        await sleep(backoff.next(), null, { signal: this.#stop.signal }).catch(ignore)
      }
    }
  }

  /** Publishes an entry locally, whole or not at all. */
  #apply (s, entry, first = false) {
    s.streamId = entry.id
    if (entry.data.length !== entry.length) {
      return this.#fail(s, new Error(`stream entry ${entry.id} is malformed (${entry.data.length} bytes of data, length field ${entry.length}); skipped`), 'skipped')
    }
    if (entry.data.length > s.section.capacity) {
      return this.#fail(s, new Error(`version ${entry.version} from ${entry.host} has ${entry.data.length} bytes, more than the local capacity (${s.section.capacity}); not published, waiting for the next`), 'too large')
    }
    // After a (re)start or a re-export, the entry may be what this host already shows: publish it only if not.
    const shown = (first || entry.version === s.remoteVersion) && s.section.read().data.equals(entry.data)
    s.version = shown ? s.section.version : s.section.publish(entry.data)
    s.remoteVersion = entry.version
    s.lagMs = Date.now() - entry.published
    this.#ok(s)
  }
}

/** Starts a bridge (see Bridge); resolves with it once every section has made its first attempt. */
function bridge (options) {
  return new Bridge(options).start()
}

module.exports = { bridge, Bridge, keys }
