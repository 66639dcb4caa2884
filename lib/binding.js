'use strict'
// The one place that loads the compiled addon (see lib/load-binding.js). The
// addon reports each failure of the Segment and sections API as fields; the
// Error, and its words, come from lib/errors.js.
const addon = require('./load-binding')(require('node:path').join(__dirname, '..'))
addon.setErrorFactory(require('./errors').fromAddon)
module.exports = addon
