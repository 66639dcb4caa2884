'use strict'
// ESLint 9 flat config: neostandard, the successor of `standard`, whose style
// (no semicolons, two spaces, single quotes, a space before a function's
// parentheses) the code is written in. `npm run lint` runs it.
const neostandard = require('neostandard')

module.exports = [
  ...neostandard({
    ts: true, // index.d.ts and test/types
    ignores: [
      'build/', 'coverage/', '.tap/', 'test/c/build/', 'bench/build/',
      // The 2013 README's example, kept byte for byte as users wrote it.
      'test/test.js',
      // `using` declarations, which ESLint's parser does not read yet.
      'test/fixtures/modern-using.js',
      // Code that must not type-check (test/types.test.js runs tsc on it).
      'test/types/fail.ts'
    ]
  }),
  {
    rules: {
      // The code lays some objects out as table rows (`ref, name` on one line,
      // `run` on the next) and chains conditions as `a ? b` / `: c ? d` lines.
      '@stylistic/object-property-newline': 'off',
      '@stylistic/multiline-ternary': 'off'
    }
  }
]
