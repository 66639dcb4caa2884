'use strict'
/*
 * Conformance with PHP 8's shmop on Linux (../shared/reference/php-shmop.md
 * §2-§9 and php-probe.out). Every row runs twice: through real PHP
 * (fixtures/php-steps.php) and through the addon (fixtures/interop-steps.js),
 * each in one child process for the whole table. Each step's outcome, on both
 * sides, must equal the expectation written next to it. Outcomes are compared
 * in one vocabulary:
 *   ok(value)              PHP's return value / ours (open: the segment's size)
 *   ValueErr('open#2')     PHP ValueError on argument #2 / our RangeError with
 *                          code ERR_OUT_OF_RANGE or ERR_INVALID_ARG_VALUE naming it
 *   TypeErr('open#1')      PHP TypeError / our TypeError ERR_INVALID_ARG_TYPE
 *   Err('readonly')        PHP Error / our Error ERR_SHM_READ_ONLY
 *   fail(stage, errno)     PHP warning + false / our 0 + lastErrorSHM() (code,
 *                          syscall; its fields and message are checked too)
 * differ(php, node) marks a step where we differ from PHP on purpose; the row
 * says why.
 */
const t = require('tap')
const { spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const {
  ADDON, NOBODY, shm, keyFor, segments, removeId, cleanupAfter, requirePHP, unprivileged
} = require('./helpers')
const { hex } = require('../lib/util')

cleanupAfter(t)
requirePHP()

const FIXTURES = path.join(__dirname, 'fixtures')
const PHP_STEPS = path.join(FIXTURES, 'php-steps.php')
const NODE_STEPS = path.join(FIXTURES, 'interop-steps.js')

// ==== Keys ====

// Every key of both tables, to clear them between the PHP and the Node run.
const usedKeys = new Set()
let nextKey = 0
function newKey () {
  const key = keyFor(nextKey++)
  usedKeys.add(key)
  return key
}
// A key >= 0x80000000 (negative as key_t, as ftok() can make), derived from one
// of ours; cleanupAfter() does not know it, clearKeys() below does.
function highKey (key) {
  const high = (key | 0x80000000) | 0
  usedKeys.add(high)
  return high
}
function clearKeys () {
  for (const seg of segments()) if (seg.key !== 0 && usedKeys.has(seg.key)) removeId(seg.shmid)
}
t.teardown(clearKeys)
process.once('exit', clearKeys)

// ==== Outcomes ====

const ok = (value) => ({ ok: value })
const ValueErr = (about) => ({ throw: 'ValueError', about })
const TypeErr = (about) => ({ throw: 'TypeError', about })
const Err = (about) => ({ throw: 'Error', about })
const fail = (stage, errno) => ({ fail: stage, errno })
const none = { none: true } // the step's handle was never opened
const differ = (php, node) => ({ php, node })
// A kernel row; its owner is the runner's user, the tests' own unless said otherwise.
const seg = (perms, size, nattch, uid = process.getuid()) => ok({ perms, size, nattch, uid })
const absent = ok(null)

/** Bytes as the runners report them: hex when short, a digest when long. */
function enc (bytes) {
  bytes = Buffer.from(bytes)
  if (bytes.length <= 64) return bytes.toString('hex')
  return `sha1:${crypto.createHash('sha1').update(bytes).digest('hex')}:${bytes.length}`
}
const bytes = (data) => ok(enc(data))
const zeros = (n) => ok(enc(Buffer.alloc(n)))

// Step arguments the runners resolve: a handle by name, each language's largest integer.
const H = (name) => ({ h: name })
const MAX_INT = { int: 'max' } // PHP_INT_MAX / Number.MAX_SAFE_INTEGER

const GiB4 = 2 ** 32
const TiB = 2 ** 40
// Node 18 and 20 cap a Buffer at 4 GiB; from Node 22 on it may be 2^53 - 1 bytes.
const BIG_BUFFERS = require('node:buffer').constants.MAX_LENGTH > GiB4
const PATTERN = Array.from({ length: 100 }, (_, i) => String.fromCharCode(65 + (i % 26))).join('')

// ==== The rows: php-shmop.md §2-§9, as the tests' own user (root in CI) ====

const ROOT_ROWS = [
  // §2.1: argument validation, in PHP's order
  ...['', 'ab', 'x', 'C', 'c\0'].map((mode) => ({
    ref: '§2.1.2', name: `mode ${JSON.stringify(mode)} is not one of a, c, w, n`,
    run: (K) => [[['open', null, K(), mode, 0o644, 10], ValueErr('open#2')]]
  })),
  ...[['c', 0], ['n', 0], ['c', -1]].map(([mode, size]) => ({
    ref: '§2.1.5', name: `'${mode}' with size ${size}`,
    run: (K) => [[['open', null, K(), mode, 0o644, size], ValueErr('open#4')], [['kernel', K()], absent]]
  })),
  {
    ref: '§2.1.5', name: "'c' with size 0 throws even when the segment exists",
    run: (K) => [
      [['open', 'h', K(), 'c', 0o600, 10], ok(10)],
      [['open', null, K(), 'c', 0o600, 0], ValueErr('open#4')],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§2.1.5', name: "IPC_CREAT in the permissions of 'w' (01644) or 'a' (-1) demands a size, and theirs is 0",
    run: (K) => [
      [['open', null, K(), 'w', 0o1644, 100], ValueErr('open#4')],
      [['open', null, K(), 'a', -1, 100], ValueErr('open#4')],
      [['kernel', K()], absent]
    ]
  },
  {
    ref: '§2.1.6, §2.5', name: "'a' and 'w' on a missing key fail in shmget with ENOENT (the size of 'w' is ignored)",
    run: (K) => [
      [['open', null, K(), 'a', 0, 0], fail('shmget', 'ENOENT')],
      [['open', null, K(), 'w', 0o644, 100], fail('shmget', 'ENOENT')]
    ]
  },
  {
    ref: '§2.1.1', name: 'a key that is not a number',
    run: (K) => [[['open', null, 'abc', 'c', 0o644, 10], TypeErr('open#1')]]
  },
  {
    ref: '§2.1.1', name: 'three arguments instead of four',
    run: (K) => [[['open', null, K(), 'c', 0o644], TypeErr('argc')], [['kernel', K()], absent]]
  },
  {
    ref: '§2.1.1', name: 'a fractional size',
    why: 'PHP truncates 100.7 to 100 with E_DEPRECATED; the addon coerces nothing and throws RangeError ERR_OUT_OF_RANGE',
    run: (K) => [
      [['open', 'h', K(), 'c', 0o644, 100.7], differ(
        { ok: 100, deprecated: 'Implicit conversion from float 100.7 to int loses precision' },
        ValueErr('open#4'))],
      [['delete', H('h')], differ(ok(true), none)]
    ]
  },
  {
    ref: '§2.1.1', name: 'a key given as a numeric string',
    why: 'PHP coerces "1845..." to an int; the addon accepts only numbers (TypeError ERR_INVALID_ARG_TYPE)',
    run: (K) => [
      [['open', 'h', String(K()), 'c', 0o644, 10], differ(ok(10), TypeErr('open#1'))],
      [['kernel', K()], differ(seg(0o644, 10, 1), absent)],
      [['delete', H('h')], differ(ok(true), none)]
    ]
  },

  // §2.2: permissions (as root: see the unprivileged table below for the rest)
  {
    ref: '§2.2', name: 'new segments get the permissions exactly: no umask (the runners set 077)',
    run: (K) => [
      [['open', 'h', K(), 'n', 0o640, 100], ok(100)],
      [['kernel', K()], seg(0o640, 100, 1)],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§2.2', name: "reopening with other permissions ('c' 0600 on 0640) keeps the segment's",
    run: (K) => [
      [['open', 'h', K(), 'n', 0o640, 100], ok(100)],
      [['open', 'again', K(), 'c', 0o600, 100], ok(100)],
      [['kernel', K()], seg(0o640, 100, 2)],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§2.2', name: "IPC_EXCL (02000) in the permissions makes 'c' behave like 'n'",
    run: (K) => [
      [['open', 'h', K(), 'c', 0o2640, 100], ok(100)],
      [['open', null, K(), 'c', 0o2640, 100], fail('shmget', 'EEXIST')],
      [['kernel', K()], seg(0o640, 100, 1)],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§2.2', name: 'root is granted bits the segment does not give (CAP_IPC_OWNER)',
    needsRoot: true,
    run: (K) => [
      [['open', 'h', K(), 'n', 0o640, 100], ok(100)],
      [['open', null, K(), 'w', 0o777, 0], ok(100)],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§2.2, §2.3', name: 'SHM_NORESERVE (010000) in the permissions lets 1 TiB be created where plain \'c\' gets ENOMEM',
    needsOvercommitHeuristic: true,
    why: 'PHP holds the read length in a C int, so read(0, 0) of 1 TiB returns ""; the addon keeps 64-bit lengths: ' +
      'a Buffer cannot be that large (ERR_BUFFER_TOO_LARGE: read it in parts), or, from Node 22 on, where it could, ' +
      'there is no memory for it (ERR_MEMORY_ALLOCATION_FAILED)',
    run: (K) => [
      [['open', null, K(), 'c', 0o600, TiB], fail('shmget', 'ENOMEM')],
      [['open', 'h', K(), 'c', 0o10600, TiB], ok(TiB)],
      [['kernel', K()], seg(0o600, TiB, 1)],
      [['read', H('h'), TiB - 3, 0], zeros(3)],
      [['read', H('h'), 0, 0], differ(bytes(''), BIG_BUFFERS
        ? { throw: 'Error ERR_MEMORY_ALLOCATION_FAILED', about: `Cannot allocate ${TiB} bytes for the copy` }
        : { throw: 'RangeError', about: 'ERR_BUFFER_TOO_LARGE' })],
      [['delete', H('h')], ok(true)]
    ]
  },

  // §2.3: size
  {
    ref: '§2.3', name: "the size argument of 'a' and 'w' is ignored; 'c' may ask for less, never more",
    run: (K) => [
      [['open', 'h', K(), 'n', 0o640, 100], ok(100)],
      [['open', null, K(), 'a', 0, 999999], ok(100)],
      [['open', null, K(), 'w', 0, -5], ok(100)],
      [['open', null, K(), 'c', 0o640, 50], ok(100)],
      [['open', null, K(), 'c', 0o640, 1], ok(100)],
      [['open', null, K(), 'c', 0o640, 101], fail('shmget', 'EINVAL')],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§2.3', name: 'sizes are kept to the byte (12289, not page-rounded) and new segments are zero-filled',
    run: (K) => [
      [['open', 'h', K(), 'c', 0o600, 12289], ok(12289)],
      [['kernel', K()], seg(0o600, 12289, 1)],
      [['read', H('h'), 0, 0], zeros(12289)],
      [['size', H('h')], ok(12289)],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§2.3', name: 'the largest integer as a size is ENOMEM',
    needsOvercommitHeuristic: true,
    run: (K) => [[['open', null, K(), 'c', 0o600, MAX_INT], fail('shmget', 'ENOMEM')], [['kernel', K()], absent]]
  },
  {
    ref: '§2.3, §3', name: 'a 4 GiB + 5 segment (SHM_NORESERVE): sizes, offsets and reads past 4 GiB',
    needsOvercommitHeuristic: true,
    // From Node 22 on a Buffer holds 4 GiB + 5, and the whole read would copy it all: not done here.
    why: BIG_BUFFERS ? undefined : 'PHP truncates the read length to a C int, so read(0, 0) returns 5 bytes; the addon keeps 64-bit lengths and refuses one Buffer that large (ERR_BUFFER_TOO_LARGE)',
    run: (K) => [
      [['open', 'h', K(), 'c', 0o10600, GiB4 + 5], ok(GiB4 + 5)],
      [['write', H('h'), 'hello', 0], ok(5)],
      [['write', H('h'), 'tail!', GiB4], ok(5)],
      [['read', H('h'), 0, 5], bytes('hello')],
      [['read', H('h'), GiB4, 0], bytes('tail!')],
      [['read', H('h'), GiB4 - 2, 7], bytes('\0\0tail!')],
      [['write', H('h'), 'overflow', GiB4 + 1], ok(4)],
      ...(BIG_BUFFERS ? [] : [[['read', H('h'), 0, 0], differ(bytes('hello'), { throw: 'RangeError', about: 'ERR_BUFFER_TOO_LARGE' })]]),
      [['size', H('h')], ok(GiB4 + 5)],
      [['delete', H('h')], ok(true)]
    ]
  },

  // §2.4: keys
  {
    ref: '§2.4', name: "key 0 (IPC_PRIVATE): 'c' and 'n' always make a new private segment; 'a' and 'w' get EINVAL",
    run: () => [
      [['open', 'p1', 0, 'c', 0o600, 4099], ok(4099)],
      [['open', 'p2', 0, 'c', 0o600, 4099], ok(4099)],
      [['write', H('p1'), 'P1', 0], ok(2)],
      [['read', H('p2'), 0, 2], zeros(2)],
      [['open', 'p3', 0, 'n', 0o600, 4099], ok(4099)],
      [['private', 4099], ok([0, 1, 2].map(() => ({ perms: 0o600, size: 4099, nattch: 1, uid: process.getuid() })))],
      [['open', null, 0, 'a', 0, 0], fail('shmget', 'EINVAL')],
      [['open', null, 0, 'w', 0o600, 4099], fail('shmget', 'EINVAL')],
      [['delete', H('p1')], ok(true)],
      [['delete', H('p2')], ok(true)],
      [['delete', H('p3')], ok(true)],
      [['free', 'p1'], ok(null)],
      [['free', 'p2'], ok(null)],
      [['free', 'p3'], ok(null)],
      [['private', 4099], ok([])]
    ]
  },
  {
    ref: '§2.4', name: 'a key >= 0x80000000 is the same segment given negative (as ftok() returns it) or unsigned',
    run: (K) => [
      [['open', 'h', highKey(K()), 'c', 0o600, 32], ok(32)],
      [['kernel', highKey(K())], seg(0o600, 32, 1)],
      [['open', 'u', highKey(K()) >>> 0, 'w', 0, 0], ok(32)],
      [['write', H('h'), 'NEG', 0], ok(3)],
      [['read', H('u'), 0, 3], bytes('NEG')],
      [['delete', H('u')], ok(true)],
      [['kernel', highKey(K())], absent]
    ]
  },
  ...[['2^32 + K', GiB4], ['K - 2^32', -GiB4]].map(([form, add]) => ({
    ref: '§2.4', name: `a key beyond 32 bits (${form})`,
    why: 'PHP 8.2 keeps the low 32 bits silently (php-src master throws ValueError); the addon accepts [-2^31, 2^32) and throws RangeError ERR_OUT_OF_RANGE outside',
    run: (K) => [
      [['open', 'h', K() + add, 'c', 0o600, 32], differ(ok(32), ValueErr('open#1'))],
      [['kernel', K()], differ(seg(0o600, 32, 1), absent)],
      [['delete', H('h')], differ(ok(true), none)]
    ]
  })),
  {
    ref: '§2.4', name: 'key 2^32, which PHP turns into IPC_PRIVATE',
    why: 'PHP 8.2 keeps the low 32 bits, 0: a private segment; the addon throws RangeError ERR_OUT_OF_RANGE',
    run: () => [
      [['open', 'h', GiB4, 'c', 0o600, 4101], differ(ok(4101), ValueErr('open#1'))],
      [['private', 4101], differ(ok([{ perms: 0o600, size: 4101, nattch: 1, uid: process.getuid() }]), ok([]))],
      [['delete', H('h')], differ(ok(true), none)]
    ]
  },

  // §3: read
  {
    ref: '§3', name: 'read boundaries on a 100-byte segment (length 0 = to the end; start == size is legal)',
    run: (K) => [
      [['open', 'h', K(), 'n', 0o640, 100], ok(100)],
      [['write', H('h'), PATTERN, 0], ok(100)],
      [['read', H('h'), 0, 0], bytes(PATTERN)],
      [['read', H('h'), 0, 100], bytes(PATTERN)],
      [['read', H('h'), 10, 5], bytes('KLMNO')],
      [['read', H('h'), 99, 0], bytes('V')],
      [['read', H('h'), 100, 0], bytes('')],
      [['read', H('h'), 100, 1], ValueErr('read#3')],
      [['read', H('h'), 101, 0], ValueErr('read#2')],
      [['read', H('h'), -1, 0], ValueErr('read#2')],
      [['read', H('h'), 0, -1], ValueErr('read#3')],
      [['read', H('h'), 50, 51], ValueErr('read#3')],
      [['read', H('h'), 1, MAX_INT], ValueErr('read#3')],
      [['read', H('h'), 0, MAX_INT], ValueErr('read#3')],
      [['read', 'x', 0, 0], TypeErr('read#1')],
      [['open', 'a', K(), 'a', 0, 0], ok(100)],
      [['read', H('a'), 10, 5], bytes('KLMNO')],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§3', name: 'read checks the start before the length (start 101 with length -1)',
    run: (K) => [
      [['open', 'h', K(), 'n', 0o640, 100], ok(100)],
      [['read', H('h'), 101, -1], ValueErr('read#2')],
      [['delete', H('h')], ok(true)]
    ]
  },

  // §4: write
  {
    ref: '§4', name: 'write boundaries: offset in 0..size, data cut at the end, the count returned',
    run: (K) => [
      [['open', 'h', K(), 'n', 0o640, 100], ok(100)],
      [['write', H('h'), PATTERN, 0], ok(100)],
      [['write', H('h'), 'hello', 0], ok(5)],
      [['write', H('h'), 'abcdef', 97], ok(3)],
      [['read', H('h'), 95, 0], bytes('RSabc')],
      [['write', H('h'), 'x', 100], ok(0)],
      [['write', H('h'), '', 0], ok(0)],
      [['write', H('h'), '', 100], ok(0)],
      [['write', H('h'), 'x', 101], ValueErr('write#3')],
      [['write', H('h'), 'x', -1], ValueErr('write#3')],
      [['write', H('h'), { hex: '6100620fff' }, 20], ok(5)],
      [['read', H('h'), 20, 5], ok('6100620fff')],
      [['write', H('h'), { repeat: ['Z', 150] }, 0], ok(100)],
      [['read', H('h'), 0, 0], bytes('Z'.repeat(100))],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§4', name: 'write data that is a number',
    why: 'PHP turns 12345 into "12345"; the addon takes only strings and ArrayBufferViews (TypeError ERR_INVALID_ARG_TYPE)',
    run: (K) => [
      [['open', 'h', K(), 'n', 0o640, 100], ok(100)],
      [['write', H('h'), 12345, 0], differ(ok(5), TypeErr('write#2'))],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§4', name: "a read-only ('a') handle refuses writes with Error before any range check; readers see writers",
    run: (K) => [
      [['open', 'h', K(), 'c', 0o644, 100], ok(100)],
      [['write', H('h'), 'hello', 0], ok(5)],
      [['open', 'a', K(), 'a', 0, 0], ok(100)],
      [['write', H('a'), 'x', 0], Err('readonly')],
      [['write', H('a'), 'x', 101], Err('readonly')],
      [['write', H('a'), 'x', -1], Err('readonly')],
      [['read', H('a'), 0, 5], bytes('hello')],
      [['write', H('h'), 'COHERENT', 30], ok(8)],
      [['read', H('a'), 30, 8], bytes('COHERENT')],
      [['delete', H('h')], ok(true)]
    ]
  },

  // §5, §6, §9: size after delete; delete marks, the key is free at once
  {
    ref: '§5, §6, §9', name: 'delete while attached: handles keep working, the key is free, a new \'c\' is a fresh zeroed segment',
    run: (K) => [
      [['open', 'n', K(), 'n', 0o640, 100], ok(100)],
      [['write', H('n'), 'ABCDE', 0], ok(5)],
      [['open', 'w2', K(), 'w', 0, 0], ok(100)],
      [['delete', H('n')], ok(true)],
      [['kernel', K()], absent],
      [['private', 100], ok([{ perms: 0o1640, size: 100, nattch: 2, uid: process.getuid() }])],
      [['read', H('n'), 0, 5], bytes('ABCDE')],
      [['write', H('n'), 'AFTER', 0], ok(5)],
      [['read', H('w2'), 0, 5], bytes('AFTER')],
      [['delete', H('n')], ok(true)],
      [['size', H('n')], ok(100)],
      [['open', null, K(), 'w', 0, 0], fail('shmget', 'ENOENT')],
      [['open', null, K(), 'a', 0, 0], fail('shmget', 'ENOENT')],
      [['open', 'fresh', K(), 'c', 0o640, 100], ok(100)],
      [['read', H('fresh'), 0, 5], zeros(5)],
      [['read', H('n'), 0, 5], bytes('AFTER')],
      [['delete', H('fresh')], ok(true)],
      [['free', 'n'], ok(null)],
      [['free', 'w2'], ok(null)],
      [['free', 'fresh'], ok(null)],
      [['private', 100], ok([])]
    ]
  },
  {
    ref: '§6', name: "the owner may delete through a read-only ('a') handle",
    run: (K) => [
      [['open', 'c', K(), 'c', 0o644, 64], ok(64)],
      [['open', 'a', K(), 'a', 0, 0], ok(64)],
      [['delete', H('a')], ok(true)],
      [['kernel', K()], absent]
    ]
  },

  // §1, §7: detaching
  {
    ref: '§1', name: 'freeing a handle (PHP: unset; addon: closeSHM) detaches it and nothing else',
    run: (K) => [
      [['open', 'h', K(), 'c', 0o600, 100], ok(100)],
      [['open', 'w', K(), 'w', 0, 0], ok(100)],
      [['kernel', K()], seg(0o600, 100, 2)],
      [['free', 'w'], ok(null)],
      [['kernel', K()], seg(0o600, 100, 1)],
      [['free', 'h'], ok(null)],
      [['kernel', K()], seg(0o600, 100, 0)],
      [['open', 'h', K(), 'w', 0, 0], ok(100)],
      [['delete', H('h')], ok(true)]
    ]
  },
  {
    ref: '§7', name: 'close',
    why: "PHP 8's shmop_close is a deprecated no-op (the object detaches when freed); closeSHM detaches at once, as PHP 7 did, and the handle is gone. Neither deletes",
    run: (K) => [
      [['open', 'h', K(), 'c', 0o600, 100], ok(100)],
      [['write', H('h'), 'hello', 0], ok(5)],
      [['open', 'a', K(), 'a', 0, 0], ok(100)],
      [['close', H('a')], differ({ ok: null, deprecated: 'Function shmop_close() is deprecated' }, ok(1))],
      [['read', H('a'), 0, 5], differ(bytes('hello'), Err('closed handle'))],
      [['kernel', K()], differ(seg(0o600, 100, 2), seg(0o600, 100, 1))],
      [['delete', H('h')], ok(true)]
    ]
  }
]

// ==== The rows: §2.2 and php-probe.out §I, as uid 65534 ====

// Segments root makes before each run: 'secret' (0600) and 'public' (0644), 64 bytes.
// Rows marked onRoots act on them; the others on segments the child makes.
const ROOT600 = newKey()
const ROOT644 = newKey()
// Who the child is: uid 65534 when the tests run as root, else the tests' own uid.
const CHILD_UID = process.getuid() === 0 ? NOBODY : process.getuid()

const USER_ROWS = [
  {
    ref: '§2.2', name: "'a' with permissions 0 on root's 0600: shmget grants nothing asked, IPC_STAT is refused",
    onRoots: true,
    run: () => [[['open', null, ROOT600, 'a', 0, 0], fail('shmctl', 'EACCES')]]
  },
  ...[0o644, 0o400].map((perms) => ({
    ref: '§2.2', name: `'a' with permissions 0${perms.toString(8)} on root's 0600: shmget refuses`,
    onRoots: true,
    run: () => [[['open', null, ROOT600, 'a', perms, 0], fail('shmget', 'EACCES')]]
  })),
  {
    ref: '§2.2', name: "'a' with permissions 0 on root's 0644 reads; writing is refused",
    onRoots: true,
    run: () => [
      [['open', 'a', ROOT644, 'a', 0, 0], ok(64)],
      [['read', H('a'), 0, 6], bytes('public')],
      [['write', H('a'), 'x', 0], Err('readonly')]
    ]
  },
  {
    ref: '§2.2', name: "'a' with permissions 0644 on root's 0644: 0644 folds to rw-, only r-- is granted",
    onRoots: true,
    run: () => [[['open', null, ROOT644, 'a', 0o644, 0], fail('shmget', 'EACCES')]]
  },
  {
    ref: '§2.2', name: "'a' with permissions 0444 on root's 0644",
    onRoots: true,
    run: () => [[['open', null, ROOT644, 'a', 0o444, 0], ok(64)]]
  },
  {
    ref: '§2.2', name: "'w' with permissions 0 on root's 0644: shmat refuses read-write",
    onRoots: true,
    run: () => [[['open', null, ROOT644, 'w', 0, 0], fail('shmat', 'EACCES')]]
  },
  {
    ref: '§2.2', name: "'w' and 'c' with permissions 0644 on root's 0644: shmget refuses",
    onRoots: true,
    run: () => [
      [['open', null, ROOT644, 'w', 0o644, 0], fail('shmget', 'EACCES')],
      [['open', null, ROOT644, 'c', 0o644, 64], fail('shmget', 'EACCES')]
    ]
  },
  {
    ref: '§6', name: "deleting root's segment is refused with EPERM; it stays",
    onRoots: true,
    run: () => [
      [['open', 'a', ROOT644, 'a', 0, 0], ok(64)],
      [['delete', H('a')], fail('shmctl', 'EPERM')],
      [['kernel', ROOT644], seg(0o644, 64, 1, 0)],
      [['read', H('a'), 0, 6], bytes('public')]
    ]
  },
  {
    ref: '§2.1.7, §2.2', name: "'n' of an own segment with permissions 0: created, then IPC_STAT is refused",
    why: 'PHP leaks the segment it has just created when IPC_STAT fails; the addon removes it again',
    run: (K) => [
      [['open', null, K(), 'n', 0, 64], fail('shmctl', 'EACCES')],
      [['kernel', K()], differ(seg(0, 64, 0, CHILD_UID), absent)]
    ]
  },
  {
    ref: '§2.2', name: "an own 0640 segment: the kernel checks the bits asked for ('c' 0777 asks for x)",
    run: (K) => [
      [['open', 'o', K(), 'c', 0o640, 64], ok(64)],
      [['kernel', K()], seg(0o640, 64, 1, CHILD_UID)],
      [['open', null, K(), 'c', 0o777, 64], fail('shmget', 'EACCES')],
      [['open', null, K(), 'w', 0o666, 0], ok(64)],
      [['open', null, K(), 'w', 0o600, 0], ok(64)],
      [['write', H('o'), 'mine', 0], ok(4)],
      [['delete', H('o')], ok(true)],
      [['kernel', K()], absent]
    ]
  }
]

function makeRoot600And644 () {
  for (const [key, perms, text] of [[ROOT600, 0o600, 'secret'], [ROOT644, 0o644, 'public']]) {
    const handle = shm.openSHM(key, 'c', perms, 64)
    shm.writeSHM(handle, text, 0)
    shm.closeSHM(handle)
  }
}

// ==== Running and comparing ====

/** Gives each row its keys and its id; returns the cases the runners take. */
function prepare (rows, prefix) {
  return rows.map((row, i) => {
    const keys = []
    const K = (n = 0) => (keys[n] ??= newKey())
    const pairs = row.run(K)
    row.steps = pairs.map(([step]) => step)
    row.expected = pairs.map(([, expected]) => expected)
    return { id: `${prefix}${i}`, steps: row.steps }
  })
}

/** Runs the cases in one PHP or Node child (as `user` if given); returns its outcomes. */
function runAll (lang, cases, user) {
  const dir = user ? user.dir : FIXTURES
  // tap adds its loaders (--import=<checkout>/node_modules/...) to NODE_OPTIONS
  // of every child, whatever env it is given; a child as another user may not be
  // able to read them, so env(1) removes them before node starts.
  const [command, args] = lang === 'php'
    ? ['php', [path.join(dir, path.basename(PHP_STEPS))]]
    : ['env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(dir, path.basename(NODE_STEPS)),
        user ? path.join(dir, 'shm.node') : ADDON]]
  const run = spawnSync(command, args, {
    input: JSON.stringify(cases),
    encoding: 'utf8',
    cwd: dir,
    env: { PATH: process.env.PATH },
    maxBuffer: 64 << 20,
    ...(user ? { uid: user.uid, gid: user.gid } : {})
  })
  if (run.error) throw run.error
  // The rows delete their private segments; this catches any left by a failure.
  for (const s of segments()) if (s.key === 0 && s.cpid === run.pid) removeId(s.shmid)
  if (run.status !== 0) throw new Error(`${lang} runner exited with ${run.status}: ${run.stderr}`)
  return JSON.parse(run.stdout)
}

// Where each addon function takes its arguments: PHP's positions are the same.
const NODE_ARGS = {
  open: ['key', 'flags', 'mode', 'size'],
  read: ['handle', 'start', 'length'],
  write: ['handle', 'data', 'offset', 'data_len'],
  size: ['handle'],
  delete: ['handle'],
  close: ['handle']
}
const PHP_STAGES = {
  shmget: 'Unable to attach or create shared memory segment',
  shmctl: 'Unable to get shared memory segment information',
  shmat: 'Unable to attach to shared memory segment'
}
// glibc's strerror() for the errno values these cases produce.
const STRERROR = {
  ENOENT: 'No such file or directory',
  EEXIST: 'File exists',
  EINVAL: 'Invalid argument',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted'
}
const errnoOf = (text) => Object.keys(STRERROR).find((name) => STRERROR[name] === text) ?? text

/** A PHP runner outcome in the shared vocabulary. */
function fromPHP (op, outcome) {
  if (outcome.throw) {
    const { kind, class: name, message } = outcome.throw
    const arg = /Argument #(\d+) \(\$\w+\)/.exec(message)
    const about = name === 'ArgumentCountError' ? 'argc'
      : arg ? `${op}#${arg[1]}`
        : message === 'Read-only segment cannot be written' ? 'readonly' : message
    return { throw: kind, about }
  }
  if (outcome.fail) {
    const open = /^shmop_open\(\): (.+) "(.+)"$/.exec(outcome.fail)
    const stage = open && Object.keys(PHP_STAGES).find((name) => PHP_STAGES[name] === open[1])
    if (stage) return fail(stage, errnoOf(open[2]))
    // shmop_delete prints no strerror: this message is its wording of EPERM,
    // the only way IPC_RMID fails on a segment the caller has attached.
    if (outcome.fail === "shmop_delete(): Can't mark segment for deletion (are you the owner?)") return fail('shmctl', 'EPERM')
    return { fail: outcome.fail }
  }
  return outcome
}

// The errors the addon may throw, and what each is in PHP's terms.
const NODE_THROWS = {
  'RangeError ERR_OUT_OF_RANGE': 'ValueError',
  'RangeError ERR_INVALID_ARG_VALUE': 'ValueError',
  'TypeError ERR_INVALID_ARG_TYPE': 'TypeError'
}

/** An addon runner outcome in the shared vocabulary; `key` is what lastErrorSHM() must name. */
function fromNode (op, args, outcome, key) {
  if (outcome.throw) {
    const { name, code, message } = outcome.throw
    if (code === 'ERR_SHM_READ_ONLY' && name === 'Error') return Err('readonly')
    if (code === 'ERR_SHM_BAD_HANDLE' && name === 'Error') return Err('closed handle')
    if (code === 'ERR_BUFFER_TOO_LARGE' && name === 'RangeError') return { throw: name, about: code }
    const kind = NODE_THROWS[`${name} ${code}`]
    const arg = /^The (?:value of )?"(\w+)"/.exec(message)
    const position = arg ? NODE_ARGS[op].indexOf(arg[1]) + 1 : 0
    if (!kind || !position) return { throw: `${name} ${code}`, about: message }
    // A missing argument: PHP counts them (ArgumentCountError); we name it.
    if (kind === 'TypeError' && position > args.length && message.endsWith('Received undefined')) return TypeErr('argc')
    return { throw: kind, about: `${op}#${position}` }
  }
  if (outcome.fail) {
    const { code, errno, syscall, key: errorKey, message } = outcome.fail
    const wellFormed = errno === -os.constants.errno[code] && errorKey === key &&
      message.startsWith(`${code}: `) && message.includes(hex(key)) && message.includes(`(${key})`) &&
      message.endsWith(`${syscall}: ${STRERROR[code]}`)
    return wellFormed ? fail(syscall, code) : { fail: syscall, errno: code, malformed: outcome.fail }
  }
  return outcome
}

function describe (step) {
  const shown = step.slice(1).map((arg, i) =>
    step[0] === 'open' && i === 3 && Number.isInteger(arg) && arg >= 0 ? `0${arg.toString(8)}` : JSON.stringify(arg))
  return `${step[0]}(${shown.join(', ')})`
}

/** One subtest per row: each step's PHP and Node outcomes against the row's expectation. */
function check (t, rows, prefix, php, node) {
  rows.forEach((row, i) => {
    t.test(`${row.ref} ${row.name}`, (t) => {
      const diverges = row.expected.some((e) => 'php' in e)
      t.equal(Boolean(row.why), diverges, diverges ? `differs from PHP on purpose: ${row.why}` : 'same as PHP')
      const keys = {} // handle name -> the key it was opened with, for lastErrorSHM()
      row.steps.forEach((step, s) => {
        const [op, ...args] = step
        if (op === 'open' && step[1] !== null) keys[step[1]] = step[2] | 0
        const key = op === 'open' ? args[1] | 0 : keys[args[0]?.h]
        const expected = row.expected[s]
        const what = `step ${s + 1}: ${describe(step)}`
        t.same(fromPHP(op, php[`${prefix}${i}`][s]), expected.php ?? expected, `PHP ${what}`)
        t.same(fromNode(op, op === 'open' ? args.slice(1) : args, node[`${prefix}${i}`][s], key), expected.node ?? expected, `Node ${what}`)
      })
      t.end()
    })
  })
}

const heuristicOvercommit = fs.readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim() === '0'

t.test('PHP and the addon, case by case', async (t) => {
  const asRoot = process.getuid() === 0
  const rows = ROOT_ROWS.filter((row) => (heuristicOvercommit || !row.needsOvercommitHeuristic) && (asRoot || !row.needsRoot))
  if (!heuristicOvercommit) {
    t.comment('skipping the huge-segment rows: vm.overcommit_memory is not 0, the setting php-shmop.md was measured under')
  }
  if (!asRoot) t.comment('not root: skipping the row on what root may do')
  const cases = prepare(rows, 'r')
  clearKeys()
  const php = runAll('php', cases)
  clearKeys()
  const node = runAll('node', cases)
  clearKeys()
  check(t, rows, 'r', php, node)
})

t.test('PHP and the addon as an unprivileged user, on root\'s segments and on its own', async (t) => {
  const user = unprivileged(t, [PHP_STEPS, NODE_STEPS])
  let rows = USER_ROWS
  if (!user.asRoot) {
    rows = USER_ROWS.filter((row) => !row.onRoots)
    t.comment(`not run as root (uid ${user.uid}): no second uid to start the child as, so the rows on ` +
      `another owner's segments are skipped; the rest run as uid ${user.uid}`)
  }
  const cases = prepare(rows, 'u')
  const run = (lang) => {
    clearKeys()
    if (user.asRoot) makeRoot600And644()
    return runAll(lang, cases, user.asRoot ? user : null)
  }
  const php = run('php')
  const node = run('node')
  clearKeys()
  check(t, rows, 'u', php, node)
})
