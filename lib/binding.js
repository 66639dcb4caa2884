'use strict'
// The one place that loads the compiled addon (built by `npm install`).
module.exports = require('../build/Release/shm.node')
