'use strict'
// nodejs-shm: System V shared memory with PHP shmop's semantics.
const { Segment, open } = require('./lib/segment')
const { ShmError } = require('./lib/errors')
const { stat, list, ftok, remove } = require('./lib/introspect')
const sections = require('./lib/sections')
const { bridge, Bridge } = require('./lib/bridge') // needs @redis/client only when a bridge starts
// The original API (see README, "Compatibility with the original API").
const legacy = require('./lib/legacy')

module.exports = { open, stat, list, ftok, remove, sections, bridge, Bridge, Segment, ShmError, ...legacy }
