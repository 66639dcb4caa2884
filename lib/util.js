'use strict'
// Small formatters shared by lib/, bin/, the tests and the benchmarks.

/** A System V key as ipcs prints it: 0x and eight hex digits (negative keys as unsigned). */
const hex = (key) => '0x' + (key >>> 0).toString(16).padStart(8, '0')

module.exports = { hex }
