'use strict'
// The nodejs-shm command (bin/nodejs-shm.js), run as a child process: every
// command and option, the KEY forms, errors and exit codes, and dump compared
// byte for byte with util-linux's hexdump -C.
const t = require('tap')
const { spawn, spawnSync } = require('node:child_process')
const { once } = require('node:events')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const shm = require('..')
const { keyFor, segmentByKey, segmentById, cleanupAfter, removeId, unprivilegedPackage, openSegment: open } = require('./helpers')

cleanupAfter(t)

const CLI = path.join(__dirname, '..', 'bin', 'nodejs-shm.js')
const HOLDER = path.join(__dirname, 'fixtures', 'modern-holder.js')
const MiB = 1 << 20
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const { hex } = require('../lib/util')
const KEY_HELP = "KEY is decimal (1577058305), hex (0x5e000001), or PATH:CHAR (ftok, as PHP's ftok()).\n"
const USAGES = {
  ls: 'ls [--json]',
  stat: 'stat KEY [--json]',
  dump: 'dump KEY [--offset N] [--length N]',
  read: 'read KEY [--offset N] [--length N] > FILE',
  write: 'write KEY [--offset N] < FILE',
  create: 'create KEY SIZE [--mode 0644]',
  rm: 'rm KEY'
}

/** Runs the command; stdout as a string unless encoding is 'buffer'. */
function cli (args, options = {}) {
  return spawnSync(process.execPath, [CLI, ...args.map(String)], { encoding: 'utf8', maxBuffer: 256 * MiB, ...options })
}

/** Asserts a successful run and returns its stdout. */
function ok (t, args, options) {
  const run = cli(args, options)
  t.equal(run.status, 0, `nodejs-shm ${args.join(' ')}`, { stderr: run.stderr })
  t.equal(String(run.stderr), '', 'nothing on stderr')
  return run.stdout
}

/** Asserts a failed run: exit status, and one line on stderr. */
function fails (t, args, status, line, options) {
  const run = cli(args, options)
  t.same({ status: run.status, stderr: run.stderr, stdout: String(run.stdout) }, { status, stderr: `nodejs-shm: ${line}\n`, stdout: '' },
    `nodejs-shm ${args.join(' ')} exits with ${status}`)
}

function tempDir (t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-cli-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The rows of `ls`, by hex key, as arrays of cells (the header is checked apart). */
function lsRows (text) {
  return text.trimEnd().split('\n').slice(1).map((line) => line.split(/\s+/))
}

t.test('--help', async (t) => {
  const general = ok(t, ['--help'])
  t.match(general, /^Usage: nodejs-shm <command> \[options\]\n\nCommands:\n/)
  for (const usage of Object.values(USAGES)) t.ok(general.includes(`  ${usage} `), `lists ${usage}`)
  t.ok(general.endsWith(`\n${KEY_HELP}Run nodejs-shm <command> --help for one command, nodejs-shm --version for the version.\n`),
    'ends with KEY, --help and --version')
  const bare = cli([])
  t.same({ status: bare.status, stdout: bare.stdout, stderr: bare.stderr }, { status: 2, stdout: '', stderr: general },
    'no command: the help on stderr, and exit 2 (a usage error)')
  t.equal(ok(t, ['-h']), general, '-h')
  t.equal(ok(t, ['help']), general, 'help')
  for (const [name, usage] of Object.entries(USAGES)) {
    const own = ok(t, [name, '--help'])
    t.match(own, new RegExp(`^Usage: nodejs-shm ${escape(usage)}\n\n[A-Z][^\n]+\\.\n${escape(KEY_HELP)}$`), `${name} --help`)
    t.equal(ok(t, [name, '-h']), own, `${name} -h`)
  }
  t.equal(ok(t, ['stat', '1', '--help']), ok(t, ['stat', '--help']), '--help wins over everything else')
})

t.test('--version', async (t) => {
  const version = require('../package.json').version
  t.equal(ok(t, ['--version']), `${version}\n`, 'the package\'s version')
  t.equal(ok(t, ['-v']), `${version}\n`, '-v')
})

t.test('usage errors exit with 2, in the CLI\'s own words', async (t) => {
  fails(t, ['frob'], 2, "unknown command 'frob'; run nodejs-shm --help")
  fails(t, ['constructor'], 2, "unknown command 'constructor'; run nodejs-shm --help")
  fails(t, ['ls', '--bogus'], 2, "unknown option '--bogus'; run nodejs-shm ls --help")
  fails(t, ['stat', '1', '-x'], 2, "unknown option '-x'; run nodejs-shm stat --help")
  fails(t, ['dump', '1', '--offset', '-1'], 2, "--offset must be a whole number of bytes, not '-1'")
  fails(t, ['dump', '1', '--offset'], 2, '--offset needs a value: nodejs-shm dump KEY [--offset N] [--length N]')
  fails(t, ['ls', '--json=yes'], 2, '--json takes no value')
  fails(t, ['stat'], 2, 'usage: nodejs-shm stat KEY [--json]')
  fails(t, ['stat', '1', '2'], 2, 'usage: nodejs-shm stat KEY [--json]')
  fails(t, ['create', '1'], 2, 'usage: nodejs-shm create KEY SIZE [--mode 0644]')
  fails(t, ['ls', 'extra'], 2, 'usage: nodejs-shm ls [--json]')
  for (const key of ['12abc', '0x', '0xg1', '1.5', '4294967296', '-2147483649', '', ':a', 'x:ab']) {
    fails(t, ['stat', '--', key], 2, `invalid KEY '${key}'. ${KEY_HELP.trimEnd()}`)
  }
  fails(t, ['stat', '-1'], 1, 'ENOENT: no segment with key 0xffffffff (shmget: No such file or directory)')
  fails(t, ['stat', '-21', '-2147483649'], 2, 'usage: nodejs-shm stat KEY [--json]')
  fails(t, ['create', '1', '0'], 2, "SIZE must be at least 1, not '0'")
  fails(t, ['dump', '1', '--offset=-1'], 2, "--offset must be a whole number of bytes, not '-1'")
  fails(t, ['read', '1', '--length', '1.5'], 2, "--length must be a whole number of bytes, not '1.5'")
  fails(t, ['write', '1', '--offset', '0x10'], 2, "--offset must be a whole number of bytes, not '0x10'", { input: '' })
  fails(t, ['create', '1', '1k'], 2, "SIZE must be a whole number of bytes, not '1k'")
  fails(t, ['create', '1', '10', '--mode', '0999'], 2, "--mode must be octal permissions like 0644, not '0999'")
  fails(t, ['create', '1', '10', '--mode', 'rw-r--r--'], 2, "--mode must be octal permissions like 0644, not 'rw-r--r--'")
  t.equal(segmentByKey(1), undefined, 'nothing was created')
})

t.test('create KEY SIZE [--mode]', async (t) => {
  const key = keyFor(0)
  t.equal(ok(t, ['create', key, 100]), `created ${hex(key)}: id ${segmentByKey(key).shmid}, 100 bytes, mode 0644\n`)
  t.match(segmentByKey(key), { size: 100, perms: 0o644, nattch: 0 }, 'created, 0644 by default, and left detached')
  fails(t, ['create', key, 100], 1, `EEXIST: a segment with key ${hex(key)} already exists; open it with 'c', 'w' or 'a', ` +
    'or delete it first (shmget: File exists)')
  for (const [i, mode] of ['0600', '600', '0o600', '0'].entries()) {
    const made = keyFor(1 + i)
    ok(t, ['create', made, 10, '--mode', mode])
    t.equal(segmentByKey(made).perms & 0o777, parseInt(mode.replace('0o', ''), 8), `--mode ${mode}`)
  }
  fails(t, ['create', keyFor(5), 0], 2, "SIZE must be at least 1, not '0'")
  t.equal(segmentByKey(keyFor(5)), undefined, 'size 0 creates nothing')
})

t.test('KEY forms: decimal, hex, negative, PATH:CHAR', async (t) => {
  const key = keyFor(10)
  ok(t, ['create', key, 16])
  const statOf = (spelling) => JSON.parse(ok(t, ['stat', spelling, '--json']))
  const expected = statOf(String(key))
  t.equal(expected.key, key, 'decimal')
  t.same(statOf(hex(key)), expected, 'hex')
  t.same(statOf(hex(key).toUpperCase().replace('0X', '0x')), expected, 'hex in capitals')
  t.same(statOf('0' + hex(key).slice(1).replace('x', 'X')), expected, '0X')

  const negative = keyFor(11) | 0x80000000 // never created
  const missing = (spelling) => cli(['stat', '--', spelling]).stderr
  t.equal(missing(String(negative)), `nodejs-shm: ENOENT: no segment with key ${hex(negative)} (shmget: No such file or directory)\n`,
    'negative decimal, after --')
  t.equal(missing(String(negative >>> 0)), missing(String(negative)), 'is the same key as its unsigned spelling')
  t.equal(missing(hex(negative)), missing(String(negative)), 'and as its hex spelling')

  const dir = tempDir(t)
  const file = path.join(dir, 'a:b') // a colon in the path: only the last one separates
  fs.writeFileSync(file, '')
  const ftokKey = shm.ftok(file, 'Z')
  t.equal(segmentByKey(ftokKey), undefined, `ftok('${file}', 'Z') names no segment yet`)
  t.teardown(() => { const left = segmentByKey(ftokKey); if (left) removeId(left.shmid) })
  t.equal(ok(t, ['create', `${file}:Z`, 32]), `created ${hex(ftokKey)}: id ${segmentByKey(ftokKey).shmid}, 32 bytes, mode 0644\n`,
    'PATH:CHAR names the key PHP\'s ftok(PATH, CHAR) gives')
  t.equal(JSON.parse(ok(t, ['stat', `${file}:Z`, '--json'])).key, ftokKey, 'stat PATH:CHAR')
  ok(t, ['rm', `${file}:Z`])
  t.equal(segmentByKey(ftokKey), undefined, 'rm PATH:CHAR')
  fails(t, ['stat', `${dir}/missing:Z`], 1, `ENOENT: ftok() failed for '${dir}/missing': ftok: No such file or directory`)
  fails(t, ['stat', `${file}:€`], 1, 'ERR_INVALID_ARG_VALUE: The "projectId" argument must be a single character from ' +
    "'\\u0000' to '\\u00ff' (one byte, as PHP's). Received type string ('€')")
})

t.test('stat KEY [--json]', async (t) => {
  // A child holds the segment: were it attached here, spawning the command would
  // fork this process, which attaches it and detaches it again at exec.
  const key = keyFor(20)
  const holder = spawn(process.execPath, [HOLDER, key, 1000], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => { holder.stdin.end(); return once(holder, 'exit') })
  await once(holder.stdout, 'data')
  const text = ok(t, ['stat', key])
  const st = shm.stat(key)
  const iso = (date) => date.toISOString()
  t.equal(text, [
    `key:          ${hex(key)} (${key})`,
    `id:           ${st.id}`,
    'size:         1000',
    'mode:         0640',
    'owner:        uid 0 gid 0',
    `creator:      uid 0 gid 0 pid ${holder.pid} (alive)`,
    `last pid:     ${holder.pid}`,
    'attachments:  1',
    `attached:     ${iso(st.atime)}`,
    'detached:     -',
    `changed:      ${iso(st.ctime)}`,
    ''
  ].join('\n'), 'a table, with "-" for a time that never was')
  t.same(JSON.parse(ok(t, ['stat', key, '--json'])), JSON.parse(JSON.stringify(st)), '--json is stat() as JSON')

  const made = keyFor(21)
  ok(t, ['create', made, 10])
  t.match(ok(t, ['stat', made]), /^creator: +uid 0 gid 0 pid \d+ \(gone\)$/m, 'a creator that has exited is gone')
  fails(t, ['stat', keyFor(22)], 1, `ENOENT: no segment with key ${hex(keyFor(22))} (shmget: No such file or directory)`)

  // From another PID namespace (a container sharing this IPC namespace) the kernel reports the creator as pid 0.
  const inside = (args) => spawnSync('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, CLI, ...args], { encoding: 'utf8' })
  t.match(inside(['stat', key]).stdout, /^creator: +uid 0 gid 0 pid 0 \(not in this PID namespace\)$/m,
    'a creator this PID namespace cannot see: not in this PID namespace (not "alive": kill(0, 0) is our own group)')
  const listed = inside(['ls'])
  t.same(lsRows(listed.stdout).find((cells) => cells[0] === hex(key))?.slice(7, 9), ['0', '?'], 'ls: pid 0, alive "?"', { stderr: listed.stderr })
  t.equal(JSON.parse(inside(['ls', '--json']).stdout).find((seg) => seg.key === key)?.creatorAlive, null, 'ls --json: creatorAlive null')
})

t.test('ls [--json]', async (t) => {
  const held = open(t, keyFor(30), 'n', 0o600, 30)
  const key = keyFor(31)
  ok(t, ['create', key, 31, '--mode', '0604'])
  const marked = open(t, keyFor(32), 'n', 0o600, 32)
  marked.delete()

  const passwd = new Set(fs.readFileSync('/etc/passwd', 'utf8').split('\n').map((line) => Number(line.split(':')[2])))
  let uid = 4242
  while (passwd.has(uid)) uid++
  const stranger = keyFor(33)
  const user = unprivilegedPackage(t)
  const run = spawnSync(process.execPath, [path.join(user.dir, 'bin', 'nodejs-shm.js'), 'create', String(stranger), '33'],
    { uid, gid: uid, env: user.env, encoding: 'utf8' })
  t.equal(run.status, 0, `uid ${uid}, which has no name, creates a segment`, { stderr: run.stderr })

  const text = ok(t, ['ls'])
  t.match(text, /^key +key \(dec\) +shmid +owner +perms +bytes +nattch +cpid +alive +status\n/, 'a header')
  const rows = lsRows(text)
  const row = (id) => rows.find((cells) => cells[2] === String(id))
  t.same(row(held.id), [hex(held.key), String(held.key), String(held.id), 'root', '0600', '30', '1', String(process.pid), 'yes'],
    'a segment whose creator is alive')
  const made = segmentByKey(key)
  t.same(row(made.shmid), [hex(key), String(key), String(made.shmid), 'root', '0604', '31', '0', String(made.cpid), 'no'],
    'a segment whose creator has exited')
  t.same(row(marked.id), ['0x00000000', '0', String(marked.id), 'root', '0600', '32', '1', String(process.pid), 'yes', 'dest'],
    'a segment marked for deletion')
  t.same(row(segmentByKey(stranger).shmid).slice(0, 6),
    [hex(stranger), String(stranger), String(segmentByKey(stranger).shmid), String(uid), '0644', '33'], 'an owner without a name, by uid')

  const listed = JSON.parse(ok(t, ['ls', '--json']))
  const entry = (id) => listed.find((seg) => seg.id === id)
  t.same(entry(held.id), { ...JSON.parse(JSON.stringify(held.stat())), creatorAlive: true }, '--json: list() and creatorAlive')
  t.same(entry(made.shmid), { ...JSON.parse(JSON.stringify(shm.stat(key))), creatorAlive: false })
  t.equal(entry(marked.id).markedForDeletion, true)
})

t.test('write KEY [--offset N] < FILE', async (t) => {
  const key = keyFor(40)
  const seg = open(t, key, 'n', 0o600, 16)
  const file = path.join(tempDir(t), 'in')
  fs.writeFileSync(file, 'from a file')
  const fd = fs.openSync(file, 'r')
  t.teardown(() => fs.closeSync(fd))
  t.equal(ok(t, ['write', key], { stdio: [fd, 'pipe', 'pipe'] }), `wrote 11 bytes at offset 0 of ${hex(key)}\n`, '< FILE')
  t.equal(seg.read(0, 11).toString(), 'from a file')
  t.equal(ok(t, ['write', key, '--offset', 12], { input: 'pipe' }), `wrote 4 bytes at offset 12 of ${hex(key)}\n`, 'a pipe, at --offset')
  t.equal(ok(t, ['write', key, '--offset', 16], { input: '' }), `wrote 0 bytes at offset 16 of ${hex(key)}\n`, 'nothing, at the end')
  t.equal(seg.read().toString(), 'from a file\0pipe')
  fails(t, ['write', key, '--offset', 13], 2, '4 bytes at offset 13 do not fit in the segment (16 bytes); nothing was written',
    { input: 'more' })
  fails(t, ['write', key], 2, '17 bytes at offset 0 do not fit in the segment (16 bytes); nothing was written',
    { input: 'seventeen bytes!!' })
  fails(t, ['write', key, '--offset', 17], 2, '0 bytes at offset 17 do not fit in the segment (16 bytes); nothing was written',
    { input: '' })
  t.equal(seg.read().toString(), 'from a file\0pipe', 'nothing was written')
  fails(t, ['write', keyFor(41)], 1, `ENOENT: no segment with key ${hex(keyFor(41))}; create it with 'c' or 'n' ` +
    '(shmget: No such file or directory)', { input: 'x' })
})

/** Bytes of many kinds: noise, text, repeated lines (also across the 1 MiB chunks), a partial last line. */
function variedData (size) {
  const data = Buffer.alloc(size) // zeros, as a new segment has
  let x = 12345
  for (let i = 0; i < 5000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    data[i] = x >>> 24
  }
  data.write('Hello, hexdump! '.repeat(40), 6000) // a printable line, repeated
  data.write('Hello, hexdump! ', 6000 + 40 * 16 + 3) // ...then the same bytes off by 3
  data.fill(0xff, MiB - 64, MiB + 64) // one line repeated across the first chunk boundary
  for (let i = 2 * MiB - 40; i < 2 * MiB + 40; i++) data[i] = i & 0xff // all different across the second
  data.fill(0xab, 3 * MiB - 16, 3 * MiB) // a line alone just before the third
  data.fill('AB', 3 * MiB + 64, 3 * MiB + 512)
  data.write('tail', size - 4)
  return data
}

t.test('read and dump of a segment larger than 1 MiB', async (t) => {
  const key = keyFor(50)
  const size = 3 * MiB + 1239 // four chunks; the last line is partial
  const seg = open(t, key, 'n', 0o600, size)
  const data = variedData(size)
  seg.write(data)
  const dir = tempDir(t)
  const copy = path.join(dir, 'copy')
  fs.writeFileSync(copy, data)

  t.test('read KEY > FILE', async (t) => {
    const out = path.join(dir, 'out')
    const fd = fs.openSync(out, 'w')
    const run = cli(['read', key], { stdio: ['ignore', fd, 'pipe'] })
    fs.closeSync(fd)
    t.same({ status: run.status, stderr: run.stderr }, { status: 0, stderr: '' })
    t.ok(fs.readFileSync(out).equals(data), 'the file holds the segment\'s bytes')
    t.ok(cli(['read', key], { encoding: 'buffer' }).stdout.equals(data), 'and so does a pipe')
    const part = cli(['read', key, '--offset', MiB - 10, '--length', MiB + 20], { encoding: 'buffer' }).stdout
    t.ok(part.equals(data.subarray(MiB - 10, 2 * MiB + 10)), '--offset and --length, across chunks')
    t.equal(cli(['read', key, '--offset', size], { encoding: 'buffer' }).stdout.length, 0, '--offset at the end: nothing')
    t.equal(cli(['read', key, '--length', 0], { encoding: 'buffer' }).stdout.length, 0, '--length 0: nothing')
  })

  t.test('dump is hexdump -C, byte for byte', async (t) => {
    const hexdump = (args) => {
      const run = spawnSync('hexdump', ['-C', ...args.map(String), copy], { encoding: 'utf8', maxBuffer: 256 * MiB })
      t.equal(run.status, 0, `hexdump -C ${args.join(' ')} runs`, { stderr: run.stderr })
      return run.stdout
    }
    const whole = ok(t, ['dump', key])
    t.equal(whole, hexdump([]), 'the whole segment')
    t.match(whole, /^\*$/m, 'with repeated lines folded into *')
    const ranges = [
      [0, 1], [5, 100], [6000 - 7, 40 * 16 + 40], [MiB - 100, 200], [MiB - 16, 32], [2 * MiB - 48, 96],
      [3 * MiB - 32, 64], [1000, undefined], [size - 20, undefined], [size - 4, 4], [size, undefined]
    ]
    for (const [offset, length] of ranges) {
      const ours = ['--offset', offset, ...(length === undefined ? [] : ['--length', length])]
      const theirs = ['-s', offset, ...(length === undefined ? [] : ['-n', length])]
      t.equal(ok(t, ['dump', key, ...ours]), hexdump(theirs), `dump ${ours.join(' ')}`)
    }
    t.equal(ok(t, ['dump', key, '--offset', 5, '--length', 0]), '00000005\n', '--length 0: only where it ends')
  })

  t.test('a range past the end is refused', async (t) => {
    for (const command of ['read', 'dump']) {
      fails(t, [command, key, '--offset', size + 1], 2, `--offset ${size + 1} is past the end of the segment (${size} bytes)`)
      fails(t, [command, key, '--offset', 10, '--length', size - 9], 2,
        `--length ${size - 9} goes past the end of the segment (${size} bytes)`)
    }
  })
})

t.test('read and dump of a missing segment', async (t) => {
  const key = keyFor(60)
  for (const command of ['read', 'dump']) {
    fails(t, [command, key], 1, `ENOENT: no segment with key ${hex(key)}; create it with 'c' or 'n' (shmget: No such file or directory)`)
  }
})

t.test('rm KEY', async (t) => {
  const idle = keyFor(70)
  ok(t, ['create', idle, 8])
  t.equal(ok(t, ['rm', idle]), `marked ${hex(idle)} for deletion (it goes at its last detach)\n`)
  t.equal(segmentByKey(idle), undefined, 'a segment nobody attaches goes at once')
  const busy = keyFor(71)
  const seg = open(t, busy, 'n', 0o600, 8)
  ok(t, ['rm', hex(busy)])
  t.match(segmentById(seg.id), { key: 0, nattch: 1 }, 'an attached one is marked and waits')
  seg.write('still ok')
  t.equal(seg.read().toString(), 'still ok')
  fails(t, ['rm', busy], 1, `ENOENT: no segment with key ${hex(busy)} (shmget: No such file or directory)`)
})

t.test('a reader that closes the pipe early is no error (dump KEY | head -1)', async (t) => {
  const key = keyFor(60)
  open(t, key, 'n', 0o600, 4 * MiB).write(Buffer.alloc(4 * MiB, 1))
  for (const command of ['dump', 'read']) {
    const child = spawn(process.execPath, [CLI, command, String(key)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk) => { stderr += chunk })
    await once(child.stdout, 'data')
    child.stdout.destroy() // as head does after its line
    const [code] = await once(child, 'close')
    t.same({ code, stderr }, { code: 0, stderr: '' }, `${command}: exit 0, nothing on stderr`)
  }
})
