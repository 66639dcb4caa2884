'use strict'
// The original API of the 2013 README: six functions and lastErrorSHM, with its
// contract (an operating-system failure returns 0 and leaves the reason for
// lastErrorSHM(); misuse throws). The addon exports the same functions for
// require('./build/Release/shm'); readSHM here is made from the same source.

const { Buffer, constants } = require('node:buffer')
const binding = require('./binding')
const makeReadSHM = require('./read-shm')

module.exports = {
  openSHM: binding.openSHM,
  sizeSHM: binding.sizeSHM,
  writeSHM: binding.writeSHM,
  readSHM: makeReadSHM(binding.readLength, binding.readIntoSHM, binding.sizeSHM, Buffer, constants.MAX_LENGTH),
  deleteSHM: binding.deleteSHM,
  closeSHM: binding.closeSHM,
  lastErrorSHM: binding.lastErrorSHM
}
