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
const COMMANDS = {
  ls: { usage: 'ls [--json]', about: 'List every segment, like ipcs -m.', options: { json: { type: 'boolean' } } },
  stat: { usage: 'stat KEY [--json]', about: 'Show what the kernel knows of a segment.', args: ['KEY'], options: { json: { type: 'boolean' } } },
  dump: { usage: 'dump KEY [--offset N] [--length N]', about: 'Hex dump (like hexdump -C) of a segment.', args: ['KEY'], options: { offset: { type: 'string' }, length: { type: 'string' } } },
  read: { usage: 'read KEY [--offset N] [--length N] > FILE', about: 'Copy a segment\'s bytes to standard output.', args: ['KEY'], options: { offset: { type: 'string' }, length: { type: 'string' } } },
  write: { usage: 'write KEY [--offset N] < FILE', about: 'Write standard input into a segment (all of it, or nothing).', args: ['KEY'], options: { offset: { type: 'string' } } },
  create: { usage: 'create KEY SIZE [--mode 0644]', about: 'Create a segment (fails if the key exists).', args: ['KEY', 'SIZE'], options: { mode: { type: 'string' } } },
  rm: { usage: 'rm KEY', about: 'Mark a segment for deletion (it goes at its last detach).', args: ['KEY'] },
  sections: { usage: 'sections KEY [--json]', about: 'Show a section table: sizes, versions, writers.', args: ['KEY'], options: { json: { type: 'boolean' } } },
  bridge: bridge.command
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
    'Run nodejs-shm <command> --help for one command.\n'
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

function parseCount (text, name) {
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text)) throw new UsageError(`${name} must be a whole number of bytes, not '${text}'`)
  return Number(text)
}

const hex = (key) => '0x' + (key >>> 0).toString(16).padStart(8, '0')
const octal = (mode) => mode.toString(8).padStart(4, '0')
const time = (date) => (date ? date.toISOString() : '-')

function isAlive (pid) {
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
      seg.attachments, seg.cpid, seg.creatorAlive ? 'yes' : 'no', seg.markedForDeletion ? 'dest' : ''])
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
    creator: `uid ${seg.cuid} gid ${seg.cgid} pid ${seg.cpid} (${isAlive(seg.cpid) ? 'alive' : 'gone'})`,
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
  const size = parseCount(sizeText, 'SIZE')
  const modeText = options.mode ?? '0644'
  if (!/^(0o?)?[0-7]{1,4}$/.test(modeText)) throw new UsageError(`--mode must be octal permissions like 0644, not '${modeText}'`)
  const mode = parseInt(modeText.replace(/^0o/, ''), 8)
  const seg = shm.open(key, 'n', mode, size)
  seg.close()
  return `created ${hex(seg.key)}: id ${seg.id}, ${seg.size} bytes, mode ${octal(mode)}\n`
}

function rm (options, key) {
  shm.remove(key)
  return `marked ${hex(key)} for deletion (it goes at its last detach)\n`
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

const RUN = { ls, stat, dump, read, write: writeCommand, create, rm, sections, bridge: (options) => bridge.run(options, parseKey) }

async function main (argv) {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') return process.stdout.write(usage())
  const command = COMMANDS[name]
  if (!command) throw new UsageError(`unknown command '${name}'; run nodejs-shm --help`)
  const { values, positionals } = parseArgs({
    args: rest,
    options: { ...command.options, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true
  })
  if (values.help) return process.stdout.write(usage(name))
  const wanted = command.args ?? []
  if (positionals.length !== wanted.length) {
    throw new UsageError(`usage: nodejs-shm ${command.usage}`)
  }
  const args = positionals.map((text, i) => (wanted[i] === 'KEY' ? parseKey(text) : text))
  const output = await RUN[name](values, ...args)
  if (output) process.stdout.write(output)
}

main(process.argv.slice(2)).catch((error) => {
  const usageError = error instanceof UsageError || error.code?.startsWith('ERR_PARSE_ARGS')
  const text = error.message.startsWith(error.code) || !error.code ? error.message : `${error.code}: ${error.message}`
  process.stderr.write(`nodejs-shm: ${text.replace(/\s*\n\s*/g, ' ')}\n`) // one line, also for parseArgs' messages
  process.exitCode = usageError ? 2 : 1
})
