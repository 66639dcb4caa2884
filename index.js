'use strict'
// nodejs-shm: System V shared memory with PHP shmop's semantics.
const binding = require('./lib/binding')
const { Segment, open } = require('./lib/segment')
const { ShmError } = require('./lib/errors')
const { stat, list, ftok, remove } = require('./lib/introspect')
const sections = require('./lib/sections')
const { bridge, Bridge } = require('./lib/bridge') // needs @redis/client only when a bridge starts

module.exports = {
  open,
  stat,
  list,
  ftok,
  remove,
  sections,
  bridge,
  Bridge,
  Segment,
  ShmError,
  // The original API (see README, "Compatibility with the original API").
  openSHM: binding.openSHM,
  sizeSHM: binding.sizeSHM,
  writeSHM: binding.writeSHM,
  readSHM: binding.readSHM,
  deleteSHM: binding.deleteSHM,
  closeSHM: binding.closeSHM,
  lastErrorSHM: binding.lastErrorSHM
}
