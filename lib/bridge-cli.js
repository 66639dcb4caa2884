'use strict'
// `nodejs-shm bridge`: its options, and a long-running bridge (lib/bridge.js)
// until SIGTERM or SIGINT. Logs go to stderr, one line each; with --json,
// status objects go to stdout, one line each, at start, every
// --status-every seconds and at the end.

const { Bridge } = require('./bridge')

const command = {
  usage: 'bridge --redis URL --table KEY [--export NAME]... [--import NAME]... [--json]',
  about: 'Mirror sections to and from other hosts through Redis (README, "Across hosts").\n' +
    'Options: --namespace NS (default: KEY in hex), --host NAME (default: hostname), --lease MS (10000),\n' +
    '--keep N (stream entries kept, 4), --status-every SECONDS (10, with --json).',
  options: {
    redis: { type: 'string' },
    table: { type: 'string' },
    export: { type: 'string', multiple: true },
    import: { type: 'string', multiple: true },
    namespace: { type: 'string' },
    host: { type: 'string' },
    lease: { type: 'string' },
    keep: { type: 'string' },
    json: { type: 'boolean' },
    'status-every': { type: 'string' }
  }
}

function usageError (message) {
  return Object.assign(new Error(message), { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' })
}

function number (text, name, fallback) {
  if (text === undefined) return fallback
  if (!/^\d+(\.\d+)?$/.test(text)) throw usageError(`--${name} must be a number, not '${text}'`)
  return Number(text)
}

/** Writes one log line of the bridge. */
function say (stream, line) {
  stream.write(`nodejs-shm bridge: ${line}\n`)
}

/** A promise of the first SIGTERM or SIGINT. */
function signalled () {
  return new Promise((resolve) => {
    process.once('SIGTERM', resolve)
    process.once('SIGINT', resolve)
  })
}

/**
 * Runs the bridge until `stop` resolves (default: SIGTERM or SIGINT); parseKey
 * reads --table as the other commands read KEY.
 */
async function run (values, parseKey, { stdout = process.stdout, stderr = process.stderr, stop = signalled() } = {}) {
  if (!values.redis || !values.table) throw usageError(`--redis and --table are required; usage: nodejs-shm ${command.usage}`)
  const bridge = new Bridge({
    redis: values.redis,
    table: parseKey(values.table),
    exports: values.export,
    imports: values.import,
    namespace: values.namespace,
    host: values.host,
    leaseMs: number(values.lease, 'lease'),
    keep: number(values.keep, 'keep'),
    log: say.bind(null, stderr)
  })
  const every = number(values['status-every'], 'status-every', 10) * 1000
  const status = () => { if (values.json) stdout.write(JSON.stringify(bridge.status()) + '\n') }
  await bridge.start()
  const { sections } = bridge.status()
  say(stderr, `running as ${bridge.owner}: ${sections.map((s) => `${s.name} (${s.direction}, ${s.state})`).join(', ')}`)
  status()
  const timer = setInterval(status, every)
  await stop
  clearInterval(timer)
  await bridge.close()
  status()
}

module.exports = { command, run }
