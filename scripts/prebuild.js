#!/usr/bin/env node
'use strict'
/*
 * scripts/prebuild.js: the prebuilt binaries that go into the npm package.
 *
 *   npm run prebuilds                     linux-x64 and linux-arm64, Node 18 20 22 24 26
 *   node scripts/prebuild.js 24 --arch=arm64
 *
 * For each architecture and Node major it takes that Node's headers from the
 * node-linux-<arch>@<major> package (scripts/node-versions.js, the cache the
 * Node matrix uses), builds the addon in a temporary copy of the source tree
 * with node-gyp and whatever binding.gyp says (the checkout's build/ is never
 * touched), strips it, checks its ELF machine, and writes
 *
 *   prebuilds/linux-<arch>/node.abi<NODE_MODULE_VERSION>.glibc.node
 *
 * where node-gyp-build (lib/load-binding.js) looks for it. arm64 is
 * cross-compiled with Debian's g++-aarch64-linux-gnu. Other files already in
 * prebuilds/ are kept unless they are the same target (so a subset can be
 * rebuilt). prebuilds/ is git-ignored: CI makes it before `npm pack`.
 * Exits 0 only when every binary was made.
 */

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { ROOT, ensureNode, sourceFiles, copyFiles } = require('./node-versions')

const MAJORS = [18, 20, 22, 24, 26]
const ARCHS = {
  // ELF e_machine of the result, and the tools when this is not the machine's own architecture.
  x64: { machine: 0x3e, cross: { CC: 'x86_64-linux-gnu-gcc', CXX: 'x86_64-linux-gnu-g++', AR: 'x86_64-linux-gnu-ar', STRIP: 'x86_64-linux-gnu-strip' } },
  arm64: { machine: 0xb7, cross: { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', AR: 'aarch64-linux-gnu-ar', STRIP: 'aarch64-linux-gnu-strip' } }
}
const OUT = path.join(ROOT, 'prebuilds')

const argv = process.argv.slice(2)
const archOption = argv.find((a) => a.startsWith('--arch='))
const archs = archOption ? archOption.slice(7).split(',') : Object.keys(ARCHS)
const listed = argv.filter((a) => !a.startsWith('--')).map(Number)
const majors = listed.length ? listed : MAJORS
if (archs.some((a) => !ARCHS[a]) || majors.some((m) => !Number.isInteger(m))) {
  console.error(`prebuild: usage: node scripts/prebuild.js [MAJOR...] [--arch=${Object.keys(ARCHS).join(',')}]`)
  process.exit(2)
}
const log = (text) => console.log(`prebuild: ${text}`)

/** Runs a command, its output in a log; resolves to the exit code. */
function run (command, args, { cwd, env, logFile }) {
  const out = fs.openSync(logFile, 'w')
  fs.writeSync(out, `$ (cd ${cwd} && ${command} ${args.join(' ')})\n`)
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', out, out] })
    child.on('error', (error) => { fs.writeSync(out, `${error.message}\n`); resolve(-1) })
    child.on('close', (code) => { fs.closeSync(out); resolve(code) })
  })
}

/** The tools for an architecture: the host's own, or the cross compiler's. */
function toolsFor (arch) {
  if (arch === process.arch) return { CC: 'cc', CXX: 'c++', AR: 'ar', STRIP: 'strip' }
  const tools = ARCHS[arch].cross
  if (spawnSync(tools.CXX, ['--version']).status !== 0) {
    throw new Error(`${tools.CXX} is missing: apt-get install g++-${tools.CXX.replace(/-g\+\+$/, '')}`)
  }
  return tools
}

async function build ({ arch, major, node, tree, logs }) {
  const tools = toolsFor(arch)
  const env = { ...process.env, CC: tools.CC, CXX: tools.CXX, LINK: tools.CXX, AR: tools.AR }
  delete env.npm_config_nodedir
  const logFile = path.join(logs, `prebuild-${arch}-${major}.log`)
  const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [ROOT] })
  const code = await run(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${node.dir}`, `--arch=${arch}`],
    { cwd: tree, env, logFile })
  const built = path.join(tree, 'build', 'Release', 'shm.node')
  if (code !== 0 || !fs.existsSync(built)) throw new Error(`the build failed (log: ${logFile})`)
  if (spawnSync(tools.STRIP, ['--strip-unneeded', built]).status !== 0) throw new Error(`${tools.STRIP} failed`)
  const machine = fs.readFileSync(built).readUInt16LE(18)
  if (machine !== ARCHS[arch].machine) throw new Error(`built for ELF machine 0x${machine.toString(16)}, not ${arch}`)
  const target = path.join(OUT, `linux-${arch}`, `node.abi${node.abi}.glibc.node`)
  fs.mkdirSync(path.dirname(target), { recursive: true })
  fs.copyFileSync(built, target)
  return target
}

async function main () {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nodejs-shm-prebuild-'))
  const logs = path.join(work, 'logs')
  fs.mkdirSync(logs)
  const files = sourceFiles()
  let failed = 0
  try {
    // The headers first (downloads, one at a time), then the builds, two at a time.
    const jobs = []
    for (const arch of archs) {
      for (const major of majors) {
        const node = ensureNode(major, { arch })
        log(`node-linux-${arch}@${node.version} (${node.note}), ABI ${node.abi}`)
        const tree = path.join(work, `tree-${arch}-${major}`)
        copyFiles(ROOT, tree, files)
        fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(tree, 'node_modules'), 'dir')
        jobs.push({ arch, major, node, tree, logs })
      }
    }
    const queue = [...jobs]
    const worker = async () => {
      for (let job; (job = queue.shift());) {
        const started = Date.now()
        try {
          const target = await build(job)
          log(`${path.relative(ROOT, target)} (Node ${job.node.version}, ${fs.statSync(target).size} bytes, ${Math.round((Date.now() - started) / 1000)}s)`)
        } catch (error) {
          failed++
          log(`linux-${job.arch} Node ${job.node.version}: ${error.message}`)
          const logFile = path.join(logs, `prebuild-${job.arch}-${job.major}.log`)
          if (fs.existsSync(logFile)) console.log(fs.readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n'))
        }
      }
    }
    await Promise.all([worker(), worker()])
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  log(failed ? `${failed} of ${archs.length * majors.length} failed` : `${archs.length * majors.length} binaries in ${path.relative(ROOT, OUT)}/`)
  return failed ? 1 : 0
}

main().then((code) => { process.exitCode = code }, (error) => {
  console.error(`prebuild: ${error.message}`)
  process.exitCode = 1
})
