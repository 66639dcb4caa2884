'use strict'
// The one place that loads the compiled addon (see lib/load-binding.js).
module.exports = require('./load-binding')(require('node:path').join(__dirname, '..'))
