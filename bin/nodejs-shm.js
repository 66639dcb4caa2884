#!/usr/bin/env node
'use strict'
// The nodejs-shm command: parses arguments and prints. Everything it does to
// segments goes through the library (index.js).

const fs = require('node:fs')
const { once } = require('node:events')
const { parseArgs } = require('node:util')
const shm = require('..')
const bridge = require('../lib/bridge-cli')

const KEY_HELP = 'KEY is decimal (1577058305), hex (0x5e000001), or PATH:CHAR (ftok, as PHP\'s ftok()).'
// The commands: usage line, one-line description, positional arguments, options, and the function
// that runs it (given the options and the parsed arguments; it returns what to print, if anything).
const COMMANDS = {
  ls: { usage: 'ls [--json]', about: 'List every segment, like ipcs -m.', options: { json: { type: 'boolean' } }, run: ls },
  stat: { usage: 'stat KEY [--json]', about: 'Show what the kernel knows of a segment.', args: ['KEY'], options: { json: { type: 'boolean' } }, run: stat },
  dump: { usage: 'dump KEY [--offset N] [--length N]', about: 'Hex dump (like hexdump -C) of a segment.', args: ['KEY'], options: { offset: { type: 'string' }, length: { type: 'string' } }, run: dump },
  read: { usage: 'read KEY [--offset N] [--length N] > FILE', about: 'Copy a segment\'s bytes to standard output.', args: ['KEY'], options: { offset: { type: 'string' }, length: { type: 'string' } }, run: read },
  write: { usage: 'write KEY [--offset N] < FILE', about: 'Write standard input into a segment (all of it, or nothing).', args: ['KEY'], options: { offset: { type: 'string' } }, run: writeCommand },
  create: { usage: 'create KEY SIZE [--mode 0644]', about: 'Create a segment (fails if the key exists).', args: ['KEY', 'SIZE'], options: { mode: { type: 'string' } }, run: create },
  rm: { usage: 'rm KEY', about: 'Mark a segment for deletion (a section table: with its claim locks).', args: ['KEY'], run: rm },
  sections: { usage: 'sections KEY [--json]', about: 'Show a section table: sizes, versions, writers.', args: ['KEY'], options: { json: { type: 'boolean' } }, run: sections },
  'sections apply': {
    usage: 'sections apply KEY LAYOUT.json',
    about: 'The central manager: make the table at KEY hold the layout {"mode": "0644", "sections": [{"name": "a", "size": 1024}]} (created if missing, replaced if different, carrying payloads over).',
    args: ['KEY', 'LAYOUT'],
    run: sectionsApply
  },
  bridge: { ...bridge.command, run: (options) => bridge.run(options, parseKey) }
}
const CHUNK = 1 << 20

class UsageError extends Error {}

function usage (name) {
  if (name) {
    const { usage, about } = COMMANDS[name]
    return `Usage: nodejs-shm ${usage}\n\n${about}\n${KEY_HELP}\n`
  }
  const lines = Object.values(COMMANDS).map(({ usage, about }) => `  ${usage.padEnd(44)}${about}`)
  return `Usage: nodejs-shm <command> [options]\n\nCommands:\n${lines.join('\n')}\n\n${KEY_HELP}\n` +
    'Run nodejs-shm <command> --help for one command, nodejs-shm --version for the version.\n'
}

function parseKey (text) {
  if (/^-?\d+$/.test(text) || /^0x[0-9a-f]+$/i.test(text)) {
    const key = Number(text)
    if (key >= -(2 ** 31) && key < 2 ** 32) return key
  } else {
    const ftok = /^(.+):(.)$/s.exec(text)
    if (ftok) return shm.ftok(ftok[1], ftok[2])
  }
  throw new UsageError(`invalid KEY '${text}'. ${KEY_HELP}`)
}

function parseCount (text, name, least = 0) {
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text)) throw new UsageError(`${name} must be a whole number of bytes, not '${text}'`)
  if (Number(text) < least) throw new UsageError(`${name} must be at least ${least}, not '${text}'`)
  return Number(text)
}

/**
 * A command's options and positional arguments, with the CLI's own wording for
 * every mistake. A negative number is an argument (a key), not an option, and
 * an option's value may start with a dash (--offset -1 is a bad offset).
 */
function parseCommandLine (name, args) {
  const command = COMMANDS[name]
  const options = { ...command.options, help: { type: 'boolean', short: 'h' } }
  const { tokens } = parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true })
  const values = {}
  const positionals = []
  const negative = new Set() // a negative number is read as short options, one token per digit
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value)
    if (token.kind !== 'option') continue
    if (/^-\d+$/.test(args[token.index])) {
      if (!negative.has(token.index)) positionals.push(args[token.index])
      negative.add(token.index)
      continue
    }
    const type = options[token.name]?.type
    if (!type) throw new UsageError(`unknown option '${token.rawName}'; run nodejs-shm ${name} --help`)
    if (type === 'boolean' && token.value !== undefined) throw new UsageError(`${token.rawName} takes no value`)
    if (type === 'string' && token.value === undefined) throw new UsageError(`${token.rawName} needs a value: nodejs-shm ${command.usage}`)
    const value = token.value ?? true
    values[token.name] = options[token.name].multiple ? [...(values[token.name] ?? []), value] : value
  }
  return { values, positionals }
}

const { hex } = require('../lib/util')
const octal = (mode) => mode.toString(8).padStart(4, '0')
const time = (date) => (date ? date.toISOString() : '-')

/**
 * Whether a segment's creator runs: information only. null (shown "?") for
 * pid 0, which is what the kernel reports for a creator this PID namespace
 * cannot see (another container): process.kill(0, 0) would signal our own group.
 */
function isAlive (pid) {
  if (!(pid > 0)) return null
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

function userNames () {
  const names = new Map()
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid] = line.split(':')
    if (uid) names.set(Number(uid), name)
  }
  return names
}

function table (rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)))
  return rows.map((row) => row.map((cell, i) => String(cell).padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n'
}

function ls ({ json }) {
  const segments = shm.list().map((seg) => ({ ...seg, creatorAlive: isAlive(seg.cpid) }))
  if (json) return JSON.stringify(segments, null, 2) + '\n'
  const names = userNames()
  const rows = [['key', 'key (dec)', 'shmid', 'owner', 'perms', 'bytes', 'nattch', 'cpid', 'alive', 'status']]
  for (const seg of segments) {
    rows.push([hex(seg.key), seg.key, seg.id, names.get(seg.uid) ?? seg.uid, octal(seg.mode), seg.size,
      seg.attachments, seg.cpid, seg.creatorAlive === null ? '?' : seg.creatorAlive ? 'yes' : 'no', seg.markedForDeletion ? 'dest' : ''])
  }
  return table(rows)
}

function stat ({ json }, key) {
  const seg = shm.stat(key)
  if (json) return JSON.stringify(seg, null, 2) + '\n'
  const rows = Object.entries({
    key: `${hex(seg.key)} (${seg.key})`,
    id: seg.id,
    size: seg.size,
    mode: octal(seg.mode),
    owner: `uid ${seg.uid} gid ${seg.gid}`,
    creator: `uid ${seg.cuid} gid ${seg.cgid} pid ${seg.cpid} (${({ true: 'alive', false: 'gone', null: 'not in this PID namespace' })[isAlive(seg.cpid)]})`,
    'last pid': seg.lpid,
    attachments: seg.attachments,
    attached: time(seg.atime),
    detached: time(seg.dtime),
    changed: time(seg.ctime)
    // No 'marked for deletion' row: marking a segment makes its key private, so a KEY never finds a marked one.
  }).map(([name, value]) => [name + ':', value])
  return table(rows)
}

/** Calls fn(chunk, offset) over [offset, offset + length) of the segment, read-only. */
async function eachChunk (key, options, fn) {
  const offset = parseCount(options.offset, '--offset') ?? 0
  const wanted = parseCount(options.length, '--length')
  const seg = shm.open(key, 'a')
  try {
    if (offset > seg.size) throw new UsageError(`--offset ${offset} is past the end of the segment (${seg.size} bytes)`)
    const length = wanted ?? seg.size - offset
    if (length > seg.size - offset) throw new UsageError(`--length ${length} goes past the end of the segment (${seg.size} bytes)`)
    for (let done = 0; done < length; done += CHUNK) {
      await fn(seg.read(offset + done, Math.min(CHUNK, length - done)), offset + done)
    }
    return offset + length
  } finally {
    seg.close()
  }
}

async function write (stream, text) {
  if (!stream.write(text)) await once(stream, 'drain')
}

/** hexdump -C: 16 bytes a line, repeated lines shown as one '*'. */
async function dump (options, key) {
  let previous = null
  let starred = false
  const end = await eachChunk(key, options, async (chunk, base) => {
    let out = ''
    for (let i = 0; i < chunk.length; i += 16) {
      const line = chunk.subarray(i, i + 16)
      if (previous && line.length === 16 && line.equals(previous)) {
        if (!starred) out += '*\n'
        starred = true
        continue
      }
      previous = Buffer.from(line)
      starred = false
      const bytes = [...line].map((b) => b.toString(16).padStart(2, '0'))
      const left = bytes.slice(0, 8).join(' ')
      const right = bytes.slice(8).join(' ')
      const text = [...line].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('')
      out += `${(base + i).toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${text}|\n`
    }
    await write(process.stdout, out)
  })
  await write(process.stdout, end.toString(16).padStart(8, '0') + '\n')
}

async function read (options, key) {
  await eachChunk(key, options, (chunk) => write(process.stdout, chunk))
}

function writeCommand (options, key) {
  const offset = parseCount(options.offset, '--offset') ?? 0
  const data = fs.readFileSync(0)
  const seg = shm.open(key, 'w')
  try {
    if (offset > seg.size || data.length > seg.size - offset) {
      throw new UsageError(`${data.length} bytes at offset ${offset} do not fit in the segment (${seg.size} bytes); nothing was written`)
    }
    seg.write(data, offset)
    return `wrote ${data.length} bytes at offset ${offset} of ${hex(seg.key)}\n`
  } finally {
    seg.close()
  }
}

function create (options, key, sizeText) {
  const size = parseCount(sizeText, 'SIZE', 1)
  const modeText = options.mode ?? '0644'
  if (!/^(0o?)?[0-7]{1,4}$/.test(modeText)) throw new UsageError(`--mode must be octal permissions like 0644, not '${modeText}'`)
  const mode = parseInt(modeText.replace(/^0o/, ''), 8)
  const seg = shm.open(key, 'n', mode, size)
  seg.close()
  return `created ${hex(seg.key)}: id ${seg.id}, ${seg.size} bytes, mode ${octal(mode)}\n`
}

function rm (options, key) {
  try {
    const { segment, locks } = shm.sections.remove(key)
    const ids = locks.length ? locks.join(', ') : '-' // none: a table whose locks someone removed, or Windows
    return `removed section table ${hex(key)}: segment id ${segment} marked for deletion (it goes at its last detach), ` +
      `${locks.length} claim lock${locks.length === 1 ? '' : 's'} removed (semaphore set id${locks.length === 1 ? '' : 's'} ${ids}); ` +
      'processes using it were told it is retired\n'
  } catch (error) {
    // Not a table this process can read (or none): removed as a plain segment, or the plain error.
    /* c8 ignore next -- other failures (EPERM on a table of another owner, ENOMEM attaching unreserved huge pages) need another uid or huge pages; they are reported as they are */
    if (!['ERR_SHM_NOT_SECTIONS', 'ERR_SHM_LAYOUT_VERSION', 'ERR_SHM_CORRUPT', 'ENOENT', 'EACCES'].includes(error.code)) throw error
  }
  shm.remove(key)
  return `marked ${hex(key)} for deletion (it goes at its last detach)\n`
}

function sectionsApply (options, key, file) {
  let layout
  try {
    layout = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (error) {
    throw new UsageError(`cannot read the layout ${file}: ${error.message}`)
  }
  if (typeof layout?.mode === 'string') {
    if (!/^(0o?)?[0-7]{1,4}$/.test(layout.mode)) throw new UsageError(`"mode" must be octal permissions like "0644", not '${layout.mode}'`)
    layout.mode = parseInt(layout.mode.replace(/^0o/, ''), 8)
  }
  const { action, table: applied, carried, dropped } = shm.sections.apply(key, layout)
  applied.close()
  const lines = [`${action} section table ${hex(key)}: ${applied.names.length} section${applied.names.length === 1 ? '' : 's'} (${applied.names.join(', ')})`]
  for (const { name, version, length } of carried) lines.push(`  carried over '${name}': version ${version}, ${length} bytes`)
  for (const { name, version, why } of dropped) lines.push(`  dropped '${name}' (version ${version}): ${why}`)
  return lines.join('\n') + '\n'
}

function sections ({ json }, key) {
  const attached = shm.sections.attach(key, { readOnly: true })
  try {
    const rows = attached.sections.map((section) => section.info())
    if (json) return JSON.stringify(rows, null, 2) + '\n'
    const lines = [['name', 'offset', 'capacity', 'length', 'version', 'writer', 'alive', 'last publish']]
    for (const row of rows) {
      lines.push([row.name, row.offset, row.capacity, row.length, row.version, row.writer?.pid ?? '-',
        row.writer ? (row.writer.alive ? 'yes' : 'no') : '-', time(row.publishedAt)])
    }
    return table(lines)
  } finally {
    attached.close()
  }
}

async function main (argv) {
  let [name, ...rest] = argv
  if (name === 'sections' && rest[0] === 'apply') [name, rest] = ['sections apply', rest.slice(1)]
  if (name === undefined) {
    process.stderr.write(usage())
    process.exitCode = 2
    return
  }
  if (name === '--help' || name === '-h' || name === 'help') return process.stdout.write(usage())
  if (name === '--version' || name === '-v') return process.stdout.write(`${require('../package.json').version}\n`)
  if (!Object.hasOwn(COMMANDS, name)) throw new UsageError(`unknown command '${name}'; run nodejs-shm --help`)
  const command = COMMANDS[name]
  const { values, positionals } = parseCommandLine(name, rest)
  if (values.help) return process.stdout.write(usage(name))
  const wanted = command.args ?? []
  if (positionals.length !== wanted.length) {
    throw new UsageError(`usage: nodejs-shm ${command.usage}`)
  }
  const args = positionals.map((text, i) => (wanted[i] === 'KEY' ? parseKey(text) : text))
  const output = await command.run(values, ...args)
  if (output) process.stdout.write(output)
}

/** Ends with one line on stderr: exit 2 for usage errors, 1 for the rest. */
function fail (error) {
  // A reader that closed the pipe early (nodejs-shm dump KEY | head -1) is no error.
  if (error.code === 'EPIPE') process.exit(0)
  const text = error.message.startsWith(error.code) || !error.code ? error.message : `${error.code}: ${error.message}`
  process.stderr.write(`nodejs-shm: ${text.replace(/\s*\n\s*/g, ' ')}\n`)
  // The bridge command's own argument errors carry parseArgs' codes.
  const usage = error instanceof UsageError || error.code?.startsWith('ERR_PARSE_ARGS')
  process.exitCode = usage ? 2 : 1
}

process.stdout.on('error', fail)
main(process.argv.slice(2)).catch(fail)
