'use strict'
/*
 * Guarantee 4, validation: attaching to a segment that is not a section
 * table, has another layout version, or a damaged header or table fails with
 * a clear code, in Node (read-write and read-only) and in PHP
 * (SectionsException::$errorCode) alike. Damaged tables are forged from a
 * valid one; those meant to reach the deeper checks get a recomputed CRC-32.
 * The addon checks every section against the kernel's segment size again.
 * (Random damage: sections-fuzz.test.js.)
 */
const t = require('tap')
const shm = require('..')
const binding = require('../lib/binding')
const { handleOf } = require('../lib/segment')
const crc32 = require('../lib/crc32')
const { keyFor, cleanupTablesAfter, php, requirePHP, ROOT } = require('./helpers')

cleanupTablesAfter(t)
requirePHP()

const NOT_SECTIONS = 'ERR_SHM_NOT_SECTIONS'
const LAYOUT_VERSION = 'ERR_SHM_LAYOUT_VERSION'
const CORRUPT = 'ERR_SHM_CORRUPT'

// A valid table to forge from: 2 sections; header and table 224 bytes. It stays
// until the end: the copies record its claim locks, which attach verifies.
const IMAGE = (() => {
  const key = keyFor(255)
  shm.sections.create(key, { mode: 0o600, sections: [{ name: 'one', size: 100 }, { name: 'two', size: 50 }] }).close()
  t.teardown(() => shm.sections.remove(key))
  const raw = shm.open(key, 'a')
  const image = raw.read()
  raw.close()
  return image
})()
const H = 64 + 80 * 2
const ENTRY = (i) => 64 + 80 * i
const u32 = (at, value) => (image) => image.writeUInt32LE(value, at)
const u64 = (at, value) => (image) => image.writeBigUInt64LE(BigInt(value), at)
const name = (i, bytes) => (image) => { image.fill(0, ENTRY(i), ENTRY(i) + 32); Buffer.from(bytes).copy(image, ENTRY(i)) }
const entry = (i) => ({
  control: IMAGE.readBigUInt64LE(ENTRY(i) + 32),
  capacity: IMAGE.readBigUInt64LE(ENTRY(i) + 40),
  data0: IMAGE.readBigUInt64LE(ENTRY(i) + 48),
  data1: IMAGE.readBigUInt64LE(ENTRY(i) + 56)
})

/** The image with the checksum recomputed over [0, H) as the header now says H is (when that fits). */
function sealed (image) {
  const h = image.readUInt32LE(16)
  const size = h >= 64 && h <= image.length ? h : H
  image.writeUInt32LE(0, 60)
  image.writeUInt32LE(crc32(image.subarray(0, size)), 60)
  return image
}

/*
 * Each case: the segment's bytes (a function of a copy of IMAGE), its size
 * (default: the image's), whether the checksum is recomputed (default yes),
 * and the code expected, or 'ok'.
 */
const CASES = [
  ['a plain segment of zeros', { bytes: () => Buffer.alloc(4096) }, NOT_SECTIONS],
  ['a plain segment of text', { bytes: () => Buffer.from('NJSHMSE, but not quite a section table'.repeat(4)) }, NOT_SECTIONS],
  ['a table cut to 63 bytes', { bytes: (image) => image.subarray(0, 63) }, NOT_SECTIONS],
  ['a 1-byte segment', { bytes: () => Buffer.from('N') }, NOT_SECTIONS],
  ['another magic', { mutate: (image) => { image[7] = 0x44 } }, NOT_SECTIONS],
  ['layout version 2', { mutate: u32(8, 2) }, LAYOUT_VERSION],
  ['layout version 0, checksum not recomputed', { mutate: u32(8, 0), seal: false }, LAYOUT_VERSION],
  ['big-endian byte-order mark', { mutate: (image) => image.writeUInt32BE(0x01020304, 12) }, CORRUPT],
  ['0 sections', { mutate: (image) => { u32(20, 0)(image); u32(16, 64)(image) } }, CORRUPT],
  ['65537 sections', { mutate: (image) => { u32(20, 65537)(image); u32(16, 64 + 80 * 65537)(image) } }, CORRUPT],
  ['3 sections in a header sized for 2', { mutate: u32(20, 3) }, CORRUPT],
  ['a header size that is not 64 + 80N', { mutate: u32(16, H + 80) }, CORRUPT],
  ['laid out beyond the kernel\'s segment size', { mutate: (image) => u64(24, image.length + 1)(image) }, CORRUPT],
  ['laid out smaller than its header', { mutate: u64(24, H - 1) }, CORRUPT],
  ['laid out 2^63 bytes', { mutate: u64(24, 2n ** 63n) }, CORRUPT],
  ['a segment smaller than laid out', { size: IMAGE.length - 1 }, CORRUPT],
  ['a damaged entry, checksum not recomputed', { mutate: (image) => { image[ENTRY(1) + 40] ^= 1 }, seal: false }, CORRUPT],
  ['a damaged checksum', { mutate: (image) => { image[60] ^= 0x80 }, seal: false }, CORRUPT],
  ['a control block off its 64-byte line', { mutate: u64(ENTRY(0) + 32, entry(0).control + 8n) }, CORRUPT],
  ['a data area at 0 mod 64', { mutate: u64(ENTRY(1) + 48, entry(1).data0 - 24n) }, CORRUPT],
  ['a capacity of 0', { mutate: u64(ENTRY(0) + 40, 0) }, CORRUPT],
  ['overlapping data areas', { mutate: u64(ENTRY(0) + 56, entry(0).data0 + 64n) }, CORRUPT],
  ['two sections sharing a control block', { mutate: u64(ENTRY(1) + 32, entry(0).control) }, CORRUPT],
  ['a control block inside the header', { mutate: u64(ENTRY(0) + 32, 128) }, CORRUPT],
  ['a control block at 0', { mutate: u64(ENTRY(0) + 32, 0) }, CORRUPT],
  ['a data area reaching past the laid-out size', { mutate: u64(ENTRY(1) + 40, entry(1).capacity + 1n) }, CORRUPT],
  ['a capacity of 2^53 + 64', { mutate: u64(ENTRY(1) + 40, 2n ** 53n + 64n) }, CORRUPT],
  ['a capacity of 2^63 + 64', { mutate: u64(ENTRY(1) + 40, 2n ** 63n + 64n) }, CORRUPT],
  ['a control block at 2^64 - 64', { mutate: u64(ENTRY(0) + 32, 2n ** 64n - 64n) }, CORRUPT],
  ['a data area at 2^64 - 40', { mutate: u64(ENTRY(0) + 48, 2n ** 64n - 40n) }, CORRUPT],
  ['a name that is not UTF-8', { mutate: name(0, [0x6f, 0xff, 0x65]) }, CORRUPT],
  ['an overlong UTF-8 name', { mutate: name(0, [0xc0, 0xaf]) }, CORRUPT],
  ['a UTF-16 surrogate in UTF-8', { mutate: name(0, [0xed, 0xa0, 0x80]) }, CORRUPT],
  ['a name cut inside a character', { mutate: name(0, [0x61, 0xc3]) }, CORRUPT],
  ['a repeated name', { mutate: name(1, 'one') }, CORRUPT],
  ['an empty name', { mutate: name(0, []) }, CORRUPT],
  ['a NUL inside a name', { mutate: name(0, 'o\0ne') }, CORRUPT],
  // PHP checks these with FFI (php -r has it), as Node does; without FFI it cannot (docs/sections.md, section 5).
  ['a claim lock id that names no set', { mutate: u32(ENTRY(0) + 68, 0x7ffffff0) }, CORRUPT],
  ['a claim lock recorded at another key', { mutate: u32(ENTRY(1) + 64, IMAGE.readUInt32LE(ENTRY(1) + 64) ^ 0x100) }, CORRUPT],
  ['the claim lock of another section', { mutate: u32(ENTRY(1) + 68, IMAGE.readUInt32LE(ENTRY(0) + 68)) }, CORRUPT],
  ['a claim lock id of -1 (none: Windows)', { mutate: u32(ENTRY(0) + 68, 0xffffffff) }, CORRUPT],
  ['a valid table in a larger segment', { size: IMAGE.length + 4096 }, 'ok'],
  ['a 32-byte name (no NUL left)', { mutate: name(0, 'x'.repeat(29) + 'é!') }, 'ok'],
  ['a name that starts with a byte-order mark', { mutate: name(1, '\ufefftwo') }, 'ok']
]

t.test('each damage gives its code, in Node (read-write, read-only) and in PHP', async (t) => {
  const keys = CASES.map(([label, { bytes, mutate, size, seal = true }], i) => {
    let image = bytes ? bytes(Buffer.from(IMAGE)) : Buffer.from(IMAGE)
    if (mutate) {
      mutate(image)
      if (seal) image = sealed(image)
    }
    const raw = shm.open(keyFor(i), 'n', 0o600, size ?? image.length)
    raw.write(image, 0) // cut at the end of a smaller segment
    raw.close()
    return keyFor(i)
  })
  const phpRun = php(['-r', `require '${ROOT}/php/autoload.php';
    foreach (json_decode($argv[1]) as $key) {
      try { $table = NodejsShm\\SectionTable::attach($key); echo json_encode(['ok', $table->names()]), "\\n"; }
      catch (NodejsShm\\SectionsException $e) { echo json_encode([$e->errorCode, $e->getMessage()]), "\\n"; }
    }`, JSON.stringify(keys)])
  t.equal(phpRun.status, 0, 'PHP ran every attach', { stderr: phpRun.stderr })
  const phpResults = phpRun.stdout.trim().split('\n').map((line) => JSON.parse(line))

  CASES.forEach(([label, , expected], i) => {
    for (const readOnly of [false, true]) {
      let got
      try {
        const table = shm.sections.attach(keys[i], { readOnly })
        got = 'ok'
        for (const section of table.sections) section.read() // reachable and in bounds
        table.close()
      } catch (error) {
        got = error.code
        if (!readOnly) t.comment(`${label}: ${error.message}`)
        t.ok(error instanceof Error && !(error instanceof TypeError) && !(error instanceof RangeError), `${label}: a plain Error`)
      }
      t.equal(got, expected, `Node${readOnly ? ' read-only' : ''}: ${label}`)
    }
    t.equal(phpResults[i][0], expected, `PHP: ${label}`, { message: phpResults[i][1] })
  })

  // The accepted names, as each language sees them.
  const nodeNames = (key) => { const table = shm.sections.attach(key); const names = table.names; table.close(); return names }
  const at = (label) => CASES.findIndex(([l]) => l === label)
  t.same(nodeNames(keys[at('a 32-byte name (no NUL left)')]), ['x'.repeat(29) + 'é!', 'two'], 'a 32-byte name, in Node')
  t.same(phpResults[at('a 32-byte name (no NUL left)')][1], ['x'.repeat(29) + 'é!', 'two'], 'in PHP')
  t.same(nodeNames(keys[at('a name that starts with a byte-order mark')]), ['one', '\ufefftwo'], 'the byte-order mark is part of the name, in Node')
  t.same(phpResults[at('a name that starts with a byte-order mark')][1], ['one', '\ufefftwo'], 'and in PHP')
})

t.test('the messages say what is wrong', async (t) => {
  const key = keyFor(100)
  const raw = shm.open(key, 'n', 0o600, 32)
  t.teardown(() => { raw.delete(); raw.close() })
  const hex = `0x${(key >>> 0).toString(16)}`
  t.throws(() => shm.sections.attach(key), { code: NOT_SECTIONS, message: `Segment ${hex} (32 bytes) is too small to hold a section table` })
  const big = shm.open(keyFor(101), 'n', 0o600, 64)
  t.teardown(() => { big.delete(); big.close() })
  t.throws(() => shm.sections.attach(keyFor(101)), { message: /is not a section table \(no "NJSHMSEC" at its start\)/ })
  big.write(Buffer.concat([Buffer.from('NJSHMSEC'), Buffer.from([9, 0, 0, 0])]))
  t.throws(() => shm.sections.attach(keyFor(101)), { code: LAYOUT_VERSION, message: /layout version 9; this library reads version 1/ })
  t.throws(() => shm.sections.attach(keyFor(102)), { code: 'ENOENT', name: 'ShmError' }, 'no segment at all: the ShmError of open()')
})

t.test('the addon checks each section against the segment on every call', async (t) => {
  const key = keyFor(110)
  const table = shm.sections.create(key, { sections: [{ name: 'x', size: 64 }] })
  t.teardown(() => { table.close(); shm.sections.remove(key) })
  const raw = shm.open(key, 'w')
  t.teardown(() => raw.close())
  const handle = handleOf(raw)
  const { offsets: { control, data }, capacity } = table.section('x')
  const size = raw.size
  const out = new Float64Array(4)
  const bad = {
    'a control block past the end': [size - 64, data[0], data[1], capacity],
    'a misaligned control block': [control + 8, data[0], data[1], capacity],
    'a data area past the end': [control, size - 10, data[1], capacity],
    'a capacity past the end': [control, data[0], data[1], size],
    'overlapping data areas': [control, data[0], data[0] + 8, capacity],
    'a data area over the control block': [control, control + 64, data[1], capacity]
  }
  for (const [label, where] of Object.entries(bad)) {
    const section = new Float64Array(where)
    for (const [call, args] of [['sectionRead', [Buffer.alloc(capacity), out]], ['sectionVersion', []], ['sectionPublish', ['x']], ['sectionWaitSync', [0, 0]]]) {
      t.throws(() => binding[call](handle, section, ...args), { code: CORRUPT, message: 'The section does not lie inside its segment' }, `${call}: ${label}`)
    }
  }
  for (const where of [[-64, data[0], data[1], capacity], [control, 0.5, data[1], capacity], [control, data[0], data[1], NaN]]) {
    t.throws(() => binding.sectionVersion(handle, new Float64Array(where)), { code: 'ERR_OUT_OF_RANGE' }, `not byte offsets: ${where}`)
  }
  t.throws(() => binding.sectionVersion(handle, [control, data[0], data[1], capacity]), { code: 'ERR_INVALID_ARG_TYPE' }, 'not a Float64Array')
})
