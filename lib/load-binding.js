'use strict'
// Finds and loads the compiled addon of a package tree. node-gyp-build takes a
// local build first (build/Release/shm.node: a clone, or an install that
// compiled), else the prebuilt binary in prebuilds/<platform>-<arch>/ for this
// Node's ABI. lib/binding.js calls it for this package.

const fs = require('node:fs')
const path = require('node:path')
const nodeGypBuild = require('node-gyp-build')
const { codedError } = require('./errors')

/** What prebuilds/ holds, e.g. "linux-x64 (abi 115, 127)"; "none" in a clone. */
function shipped (root) {
  const dir = path.join(root, 'prebuilds')
  const targets = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []
  return targets.map((target) => {
    const abis = fs.readdirSync(path.join(dir, target)).map((file) => /\.abi(\d+)\./.exec(file)?.[1]).filter(Boolean)
    return `${target} (abi ${abis.sort((a, b) => a - b).join(', ')})`
  }).join('; ') || 'none'
}

/**
 * The addon of the package at `root`. Where no binary fits, an Error with code
 * ERR_SHM_NO_BINARY that names what was looked for and how to build one.
 */
function loadBinding (root) {
  try {
    return nodeGypBuild(root)
  } catch (error) {
    // Any other failure (a binary that does not load) is node-gyp-build's or the system's own.
    if (!error.message.startsWith('No native build was found')) throw error
    const wanted = Object.fromEntries([...error.message.matchAll(/(\w+)=(\S+)/g)].map((m) => m.slice(1)))
    const noBinary = codedError(Error, 'ERR_SHM_NO_BINARY',
      `nodejs-shm has no compiled addon for platform=${wanted.platform} arch=${wanted.arch} ` +
      `abi=${wanted.abi} (Node ${wanted.node}) libc=${wanted.libc}. Prebuilt: ${shipped(root)}.\n` +
      'Build it from source (needs Python 3, make and a C++ compiler; on macOS the Xcode Command Line ' +
      'Tools; on Windows Visual Studio Build Tools with "Desktop development with C++", as mingw ' +
      'cannot link against node.exe):\n' +
      '  npm install-scripts approve nodejs-shm   (npm 12 and later: allow its install script)\n' +
      '  npm rebuild nodejs-shm\n' +
      `(looked in ${path.join(root, 'build', 'Release')} and ${path.join(root, 'prebuilds')})`)
    noBinary.cause = error
    throw noBinary
  }
}

module.exports = loadBinding
