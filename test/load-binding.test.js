'use strict'
// Which compiled addon the package loads: a local build, else the prebuilt
// binary for this platform, architecture and ABI, else ERR_SHM_NO_BINARY.

const t = require('tap')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { ROOT, ADDON } = require('./helpers')
const loadBinding = require('../lib/load-binding')

const TARGET = `${process.platform}-${process.arch}`
const ABI = process.versions.modules

function tempRoot (t, files = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-load-'))
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  for (const [file, from] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true })
    if (Buffer.isBuffer(from)) fs.writeFileSync(path.join(root, file), from)
    else fs.copyFileSync(from, path.join(root, file))
  }
  return root
}

t.test('in a clone, the local build (build/Release/shm.node)', async (t) => {
  t.equal(require('../lib/binding'), require(ADDON), 'lib/binding.js is the addon of build/Release')
})

t.test('without a local build, the prebuilt binary for this ABI; a local build wins over it', async (t) => {
  // The package as the tarball has it: no build/, the binary in prebuilds/.
  const files = { 'package.json': path.join(ROOT, 'package.json'), 'index.js': path.join(ROOT, 'index.js') }
  for (const dir of ['lib', 'node_modules/node-gyp-build']) {
    for (const name of fs.readdirSync(path.join(ROOT, dir))) files[`${dir}/${name}`] = path.join(ROOT, dir, name)
  }
  files[`prebuilds/${TARGET}/node.abi${ABI}.glibc.node`] = ADDON
  const root = tempRoot(t, files)
  const code = 'const shm = require(process.argv[1]); const h = shm.openSHM(0, "c", 0o600, 8);' +
    'console.log(JSON.stringify({ loaded: Object.keys(require.cache).filter((f) => f.endsWith(".node")), ok: h >= 1 && shm.deleteSHM(h) === 1 && shm.closeSHM(h) === 1 }))'
  const { NODE_OPTIONS, ...env } = process.env
  const prebuilt = spawnSync(process.execPath, ['-e', code, root], { encoding: 'utf8', env })
  t.equal(prebuilt.status, 0, 'loads', { stderr: prebuilt.stderr })
  t.same(JSON.parse(prebuilt.stdout), { loaded: [path.join(root, 'prebuilds', TARGET, `node.abi${ABI}.glibc.node`)], ok: true },
    'the prebuilt binary, which works')

  fs.mkdirSync(path.join(root, 'build', 'Release'), { recursive: true })
  fs.copyFileSync(ADDON, path.join(root, 'build', 'Release', 'shm.node'))
  const local = spawnSync(process.execPath, ['-e', code, root], { encoding: 'utf8', env })
  t.same(JSON.parse(local.stdout), { loaded: [path.join(root, 'build', 'Release', 'shm.node')], ok: true }, 'the local build')
})

t.test('no binary fits: ERR_SHM_NO_BINARY names what was looked for and the commands that fix it', async (t) => {
  const empty = tempRoot(t)
  const error = t.throws(() => loadBinding(empty), { name: 'Error', code: 'ERR_SHM_NO_BINARY' })
  const libc = fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc'
  t.match(error.message, `nodejs-shm has no compiled addon for platform=${process.platform} arch=${process.arch} ` +
    `abi=${ABI} (Node ${process.versions.node}) libc=${libc}. Prebuilt: none.\n`, 'what it looked for')
  t.match(error.message, '\n  npm install-scripts approve nodejs-shm', 'how to allow the install script (npm 12)')
  t.match(error.message, '\n  npm rebuild nodejs-shm\n', 'how to build')
  t.match(error.message, 'Python 3, make and a C++ compiler', 'what a build needs')
  t.match(error.message, 'Visual Studio Build Tools', 'on Windows')
  t.match(error.message, `(looked in ${path.join(empty, 'build', 'Release')} and ${path.join(empty, 'prebuilds')})`)
  t.match(error.cause.message, /^No native build was found/, 'node-gyp-build\'s own error is the cause')

  // Binaries for other ABIs and architectures are listed; other files are not binaries.
  const others = tempRoot(t, {
    [`prebuilds/${TARGET}/node.abi1.glibc.node`]: Buffer.alloc(0),
    [`prebuilds/${TARGET}/node.abi2.glibc.node`]: Buffer.alloc(0),
    [`prebuilds/${TARGET}/README`]: Buffer.alloc(0),
    'prebuilds/sunos-sparc/node.abi3.node': Buffer.alloc(0)
  })
  t.throws(() => loadBinding(others), { code: 'ERR_SHM_NO_BINARY', message: `Prebuilt: ${TARGET} (abi 1, 2); sunos-sparc (abi 3).` })
})

t.test('a binary that does not load: the system\'s error, unchanged', async (t) => {
  const root = tempRoot(t, { 'build/Release/shm.node': Buffer.from('not an ELF file') })
  const error = t.throws(() => loadBinding(root))
  t.equal(error.code, 'ERR_DLOPEN_FAILED', 'dlopen\'s error')
  t.match(error.message, path.join(root, 'build', 'Release', 'shm.node'), 'naming the file')
})
