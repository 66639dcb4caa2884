'use strict'
// nodejs-shm: System V shared memory with PHP shmop's semantics.
const { Segment, open } = require('./lib/segment')
const { ShmError } = require('./lib/errors')
const { stat, list, ftok, remove } = require('./lib/introspect')
const sections = require('./lib/sections')
// The original API (see README, "Compatibility with the original API").
const legacy = require('./lib/legacy')

module.exports = { open, stat, list, ftok, remove, sections, Segment, ShmError, ...legacy }
