'use strict'
// Build step (binding.gyp): writes a C header holding a CommonJS file of lib/
// as a string, wrapped so that compiling it gives a function of `module` that
// returns module.exports. The addon thus runs the same text lib/ requires.
//
//   node scripts/embed-js.js <file.js> <C name> <out.h>
const fs = require('node:fs')
const path = require('node:path')

const [source, name, out] = process.argv.slice(2)
const text = `(function (module) {\n${fs.readFileSync(source, 'utf8')}\nreturn module.exports\n})\n`
// Printable ASCII stays as it is (but for \, " and ?, which could start a
// trigraph); every other byte, UTF-8 included, becomes an octal escape.
const escape = (line) => [...Buffer.from(line, 'utf8')].map((byte) =>
  byte >= 0x20 && byte < 0x7f && !'\\"?'.includes(String.fromCharCode(byte))
    ? String.fromCharCode(byte)
    : byte === 0x0a ? '\\n' : '\\' + byte.toString(8).padStart(3, '0')).join('')
const lines = text.split(/(?<=\n)/).map((line) => `    "${escape(line)}"`)
const header = `// Generated from ${path.basename(source)} by scripts/embed-js.js: do not edit.\n` +
  `static const char ${name}[] =\n${lines.join('\n')};\n`
fs.mkdirSync(path.dirname(out), { recursive: true })
fs.writeFileSync(out, header)
