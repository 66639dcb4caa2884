'use strict'
// The one place that loads the compiled addon (built by `npm install`). The
// addon reports each failure of the Segment and sections API as fields; the
// Error, and its words, come from lib/errors.js.
const addon = require('../build/Release/shm.node')
addon.setErrorFactory(require('./errors').fromAddon)
module.exports = addon
