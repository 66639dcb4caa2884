'use strict'
// The payload sizes every group measures (KB = 1024 B).
const SIZES = [
  { bytes: 16, label: '16B', text: '16 B' },
  { bytes: 10 * 1024, label: '10KB', text: '10 KB' },
  { bytes: 100 * 1024, label: '100KB', text: '100 KB' }
]
const bySize = (bytes) => SIZES.find((s) => s.bytes === bytes)
module.exports = { SIZES, bySize }
