'use strict'
/*
 * machine.js: what the figures were measured on, printed above every table
 * (copy effects such as the memcpy page-offset trap depend on the CPU and the
 * glibc version, so a figure without them means little).
 */
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const read = (file) => { try { return fs.readFileSync(file, 'utf8') } catch { return '' } }
const run = (cmd, args, opts) => {
  try {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000, ...opts })
    return r.status === 0 ? r.stdout : ''
  } catch { return '' }
}

function cpu () {
  const info = read('/proc/cpuinfo')
  const field = (name) => (info.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm')) || [])[1]
  const flags = (field('flags') || '').split(/\s+/)
  const cpus = os.cpus()
  const caches = []
  const dir = '/sys/devices/system/cpu/cpu0/cache'
  for (const index of (fs.existsSync(dir) ? fs.readdirSync(dir) : []).filter((n) => n.startsWith('index'))) {
    const level = read(path.join(dir, index, 'level')).trim()
    const type = read(path.join(dir, index, 'type')).trim()
    const size = read(path.join(dir, index, 'size')).trim()
    if (level && size) caches.push(`L${level}${type === 'Data' ? 'd' : type === 'Instruction' ? 'i' : ''} ${size}`)
  }
  return {
    model: field('model name') || (cpus[0] && cpus[0].model) || 'unknown',
    vendor: field('vendor_id') || '',
    family: Number(field('cpu family')),
    modelNumber: Number(field('model')),
    stepping: Number(field('stepping')),
    cores: cpus.length,
    hypervisor: flags.includes('hypervisor'),
    copyFlags: ['erms', 'fsrm', 'avx2', 'avx512f'].filter((f) => flags.includes(f)),
    caches
  }
}

/** glibc's tunables that choose memcpy's path, as the dynamic loader reports them. */
function glibcTunables () {
  const loaders = ['/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux-aarch64.so.1']
  const loader = loaders.find((f) => fs.existsSync(f))
  if (!loader) return {}
  const out = run(loader, ['--list-tunables'], { env: { ...process.env } })
  const pick = (name) => (out.match(new RegExp(`glibc\\.cpu\\.${name}: (\\S+)`)) || [])[1]
  return {
    repMovsbThreshold: pick('x86_rep_movsb_threshold'),
    nonTemporalThreshold: pick('x86_non_temporal_threshold')
  }
}

function git () {
  const root = path.join(__dirname, '..')
  const commit = run('git', ['-C', root, 'rev-parse', '--short', 'HEAD']).trim()
  const dirty = run('git', ['-C', root, 'status', '--porcelain', '--', '*.c', '*.cc', '*.h', 'binding.gyp', 'lib/read-shm.js'])
    .split('\n').filter(Boolean).map((l) => l.slice(3))
  return { commit, dirty }
}

function describe () {
  const report = process.report ? process.report.getReport().header : {}
  const osName = (read('/etc/os-release').match(/^PRETTY_NAME="?([^"\n]*)"?$/m) || [])[1] || os.type()
  const gcc = run('gcc', ['-dumpfullversion']).trim()
  return {
    date: new Date().toISOString(),
    host: os.hostname(),
    cpu: cpu(),
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${osName}, kernel ${os.release()}`,
    node: process.version,
    v8: process.versions.v8,
    glibc: report.glibcVersionRuntime || '',
    glibcTunablesEnv: process.env.GLIBC_TUNABLES || '',
    tunables: glibcTunables(),
    gcc,
    git: git(),
    loadavg: os.loadavg().map((x) => Number(x.toFixed(2)))
  }
}

/** The machine as Markdown bullet lines. */
function format (m, extra = {}) {
  const c = m.cpu
  const lines = [
    `- **CPU:** ${c.model} (${c.vendor}, family ${c.family} model ${c.modelNumber} stepping ${c.stepping})` +
      `${c.hypervisor ? ', virtual machine' : ''}; ${c.cores} cores; ${c.caches.join(', ')}; ` +
      `copy-related flags: ${c.copyFlags.join(' ') || 'none'}`,
    `- **System:** ${m.os}; ${m.memory} of memory; load average ${m.loadavg.join(' ')} at the start` +
      (extra.loadavgEnd ? `, ${extra.loadavgEnd.join(' ')} at the end` : ''),
    `- **Software:** Node ${m.node} (V8 ${m.v8}), glibc ${m.glibc}` +
      (m.tunables.repMovsbThreshold ? ` (x86_rep_movsb_threshold ${m.tunables.repMovsbThreshold})` : '') +
      (m.glibcTunablesEnv ? `, GLIBC_TUNABLES=${m.glibcTunablesEnv}` : '') +
      (m.gcc ? `, gcc ${m.gcc}` : ''),
    `- **Code:** commit ${m.git.commit || 'unknown'}` +
      (m.git.dirty.length ? ` with uncommitted changes to ${m.git.dirty.join(', ')}` : '') +
      `; date ${m.date}`
  ]
  return lines.join('\n')
}

module.exports = { describe, format }
