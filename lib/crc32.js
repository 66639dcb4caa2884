'use strict'
// CRC-32 (IEEE 802.3, as zlib and PHP's crc32() compute it), for the section
// table's checksum. Node's zlib.crc32 is missing before Node 20.15/22.2.

const TABLE = new Int32Array(256).map((_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c
})

module.exports = function crc32 (bytes) {
  let crc = -1
  for (const byte of bytes) crc = TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}
