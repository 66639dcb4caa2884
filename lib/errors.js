'use strict'
// Every error of the Segment and sections API is made and worded here, from
// fields: the addon reports what failed (code, errno, syscall, key, reason and
// the numbers involved; src/shm.h, Report), lib/ reports what it checks
// itself, and this file says what it means and what to do. Nothing here reads
// a message. (The original six functions keep their own contract and words:
// shm.cc and lastErrorSHM().)

const { inspect } = require('node:util')
const { hex } = require('./util')

class ShmError extends Error {
  constructor (message, { code, errno, syscall, key, cause }) {
    super(message, cause === undefined ? undefined : { cause })
    this.code = code
    this.errno = errno
    this.syscall = syscall
    if (key !== undefined) this.key = key
  }

  get name () { return 'ShmError' }
}

/*
 * Where each system keeps its System V limits, so that an error caused by one
 * names it. macOS's defaults are small (README, "Platform notes").
 */
const LIMITS = {
  linux: {
    shmmax: 'kernel.shmmax',
    shmall: 'kernel.shmall',
    shmmni: 'kernel.shmmni',
    shmseg: 'SHMSEG',
    raise: 'sysctl -w kernel.<name>=<value>'
  },
  darwin: {
    shmmax: 'kern.sysv.shmmax, 4 MiB by default on macOS',
    shmall: 'kern.sysv.shmall, 1024 pages by default on macOS',
    shmmni: 'kern.sysv.shmmni, 32 by default on macOS',
    shmseg: 'kern.sysv.shmseg, 8 by default on macOS',
    raise: 'sudo sysctl -w kern.sysv.<name>=<value>'
  }
}

/** The limit names for a platform (Linux's where the system is not known). */
function limitNames (platform = process.platform) {
  return LIMITS[platform] ?? LIMITS.linux
}

const LOCK_CALLS = ['semget', 'semop', 'semctl']

/** What a failure of a table's claim lock (a System V semaphore set) means. */
function explainLock (code, seg) {
  switch (code) {
    case 'EACCES':
      return `permission denied on the claim lock of the ${seg}: claiming needs write permission on the table`
    case 'EINVAL':
    case 'EIDRM':
      return `the claim lock of the ${seg} was removed, with its table`
    default:
      return `the claim lock of the ${seg} could not be used`
  }
}

/*
 * What a failure means, by code and by the call that failed. `context` is
 * what the caller was doing: { key, flags, mode, size, existingSize, api };
 * `api` names the sections call ('sections.create', 'sections.attach') whose
 * words a hint must use, when the segment was opened for one.
 */
function explain (code, syscall, { key, flags, size, existingSize, api }, limits = limitNames()) {
  const seg = `segment with key ${hex(key)}`
  if (LOCK_CALLS.includes(syscall)) return explainLock(code, seg)
  if (syscall === 'malloc') return `not enough memory for a temporary copy of ${size} bytes`
  if (syscall === 'madvise') {
    return `the ${seg} lives in huge pages (SHM_HUGETLB) that were not reserved (SHM_NORESERVE), and ` +
      'too few are free to back it: touching it would kill the process with SIGBUS. ' +
      'Free or add huge pages (vm.nr_hugepages), or have its creator reserve them (no SHM_NORESERVE)'
  }
  if (api === 'sections.create' && code === 'EEXIST') {
    return `a ${seg} already exists; use sections.attach(${hex(key)}) to use the table in it, ` +
      `or sections.apply(${hex(key)}, layout) to give it a new layout (every process using it follows)`
  }
  if (api === 'sections.attach' && code === 'EACCES' && syscall === 'shmat') {
    return `permission denied attaching the section table ${hex(key)} for writing; ` +
      'attach it with { readOnly: true } to read it'
  }
  if (api === 'sections.attach' && code === 'ENOENT') {
    return `no ${seg}; sections.create() or sections.apply() lays out a new section table`
  }
  switch (code) {
    case 'ENOENT':
      return flags === 'a' || flags === 'w'
        ? `no segment with key ${hex(key)}; create it with 'c' or 'n'`
        : `no segment with key ${hex(key)}`
    case 'EEXIST':
      return `a ${seg} already exists; open it with 'c', 'w' or 'a', or delete it first`
    case 'EINVAL':
      if (key === 0) return "key 0 is IPC_PRIVATE: a private segment cannot be found by key; create one with 'c' or 'n'"
      if (existingSize !== undefined) {
        return `the ${seg} has ${existingSize} bytes, fewer than the ${size} asked for; ` +
          `ask for at most ${existingSize}, or delete it first (segments cannot grow)`
      }
      return `the system refused a segment of ${size} bytes: more than ${limits.shmmax} allows? ` +
        `(raise it with ${limits.raise})`
    case 'EACCES':
      if (syscall === 'shmget') {
        return `permission denied on the ${seg}: the mode asks for permissions it does not grant; ` +
          "attach with mode 0 (or 0o444 with 'a')"
      }
      if (syscall === 'shmat') return `permission denied attaching the ${seg} read-write; open it with 'a' to read it`
      return `permission denied reading the ${seg}`
    case 'EPERM':
      if (syscall === 'shmget') {
        return 'huge pages (SHM_HUGETLB, 0o4000 in the mode) need CAP_IPC_LOCK or the group in vm.hugetlb_shm_group'
      }
      return `only the owner or creator of the ${seg} (or root) can delete it`
    case 'ENOMEM':
      return `not enough memory for a segment of ${size} bytes (${limits.shmall}, or the memory overcommit policy)`
    case 'ENOSPC':
      return `the system limit on segments (${limits.shmmni}) or on shared memory in all (${limits.shmall}) ` +
        `is reached (raise it with ${limits.raise})`
    case 'EMFILE':
      return `this process has attached as many segments as ${limits.shmseg} allows (raise it with ${limits.raise})`
    case 'EIDRM':
      return `the ${seg} was deleted but is still open somewhere; its key is free once every process has closed it`
    default:
      return `the ${seg} could not be used`
  }
}

/**
 * A ShmError from the report of an operating-system failure, { code, errno,
 * syscall, reason, key }: from the addon, or lastErrorSHM()'s Error (kept as
 * the cause). `context` adds what the caller was doing (see explain()).
 */
function systemError (report, context = report, limits = undefined) {
  const { code, errno, syscall, reason } = report
  const message = `${code}: ${explain(code, syscall, context, limits)} (${syscall}: ${reason})`
  const cause = report instanceof Error ? report : undefined
  return new ShmError(message, { code, errno, syscall, key: context.key, cause })
}

const quoted = (names) => names.map((name) => JSON.stringify(name)).join(', ')
const tableCorrupt = (key, what) => `The section table in segment ${hex(key)} is corrupt: ${what}`

/*
 * The words of every other failure, by code: a string, or a function of the
 * failure's fields. Codes with several causes tell them apart by a field
 * (operation, part, argument).
 */
const WORDS = {
  ERR_ILLEGAL_CONSTRUCTOR: 'Segment cannot be constructed directly; use open()',
  ERR_SHM_CLOSED: ({ key, id }) => id === undefined
    ? `The section table ${hex(key)} is closed`
    : `The segment with key ${hex(key)} (id ${id}) is closed`,
  ERR_SHM_READ_ONLY: ({ operation, key }) => ({
    write: `The segment with key ${hex(key)} was opened read-only ('a') and cannot be written; open it with 'w' or 'c' to write`,
    view: "A segment opened read-only ('a') has no view: a write through it would crash the process. " +
      "Use read() or readInto(), or open it with 'w'",
    publish: 'A table attached read-only cannot publish',
    claim: 'A table attached read-only cannot claim a section',
    retire: 'A table attached read-only cannot be retired'
  })[operation],
  ERR_BUFFER_TOO_LARGE: ({ size, max }) =>
    `A segment of ${size} bytes is larger than a Buffer can be (${max} bytes); use read() or readInto() on parts of it`,
  ERR_SHM_UNSUPPORTED: ({ procFile }) => `Listing segments needs ${procFile} (Linux); use ipcs -m on this system`,
  ERR_SHM_WAIT_FAILED: 'Could not start a thread to wait on',
  ERR_SHM_READ_STARVED: ({ key, section, ms = 100 }) =>
    `No complete copy of ${section === undefined ? 'a section' : `section '${section}'`} of table ${hex(key)} in ${ms} ms: its writer overtook every ` +
    'read, or keeps the slots odd (a broken or hostile process with write access to the table)',
  ERR_SHM_NOT_SECTIONS: ({ key, size }) => size === undefined
    ? `Segment ${hex(key)} is not a section table (no "NJSHMSEC" at its start)`
    : `Segment ${hex(key)} (${size} bytes) is too small to hold a section table`,
  ERR_SHM_LAYOUT_VERSION: ({ key, version, supported }) =>
    `Segment ${hex(key)} holds a section table of layout version ${version}; this library reads version ${supported}`,
  ERR_SHM_CORRUPT: (fields) => corruptWords(fields),
  ERR_SHM_NO_SUCH_SECTION: ({ key, name, names }) =>
    `No section named ${JSON.stringify(name)} in table ${hex(key)}; it has ${quoted(names)}`,
  ERR_SHM_SECTION_BUSY: ({ key, section, pid }) =>
    `Section '${section}' of table ${hex(key)} is claimed by ` +
    (pid ? `process ${pid}` : 'a process that has not recorded its pid yet') +
    (pid === process.pid ? ' (this process, through another object or thread)' : '') +
    ': its claim lock is held, and the kernel frees it when the holder ends',
  ERR_SHM_TABLE_RETIRED: ({ key, retired, section, writer }) => {
    const table = `The section table ${hex(key)} was ${retired} by its manager`
    if (writer) {
      return `${table} while this process held section '${section}': the claim ended, and the last publish may not ` +
        'have reached the new table; claim the section again (claim() follows to the table now at the key)'
    }
    if (retired === 'removed') return `${table} (sections.remove); attach the table again to go on`
    return `${table} (sections.apply), and ` +
      (section === undefined ? 'no table is at its key now' : `the table now at its key has no section '${section}'`) +
      '; attach the table again to go on'
  },
  ERR_SHM_NOT_WRITER: ({ section }) => section === undefined
    ? "This process does not hold the section's claim; claim() it before publishing"
    : `Claim section '${section}' before publishing to it`,
  // Arguments lib/ checks itself, with Node's codes; `argument` tells which.
  ERR_OUT_OF_RANGE: ({ argument, ...found }) => ({
    key: () => 'The value of "key" is out of range. It must not be 0 (IPC_PRIVATE): no other process could attach the table',
    size: () => `Section ${JSON.stringify(found.name)} needs a size >= 1 (an integer); got ${found.size}`,
    buffer: () => `The buffer (${found.room} bytes) is too small for version ${found.version} (${found.length} bytes)`,
    projectId: () => `The value of "projectId" is out of range. It must be an integer from 0 to 255. Received ${found.received}`
  })[argument](),
  ERR_INVALID_ARG_TYPE: ({ argument, max, received }) => argument === undefined
    ? `The "sections" option must be an array of 1 to ${max} { name, size } objects`
    : {
        projectId: `The "projectId" argument must be a one-character string or an integer from 0 to 255. Received type ${received}`,
        options: `The "options" argument must be of type object or number (a timeout in milliseconds). ${received}`,
        names: `The "names" argument must be an array of section names. ${received}`,
        sinceVersions: `The "sinceVersions" argument must be an array of versions, one per name. ${received}`,
        'options.signal': `The "options.signal" property must be an instance of AbortSignal. ${received}`
      }[argument],
  ERR_INVALID_ARG_VALUE: ({ argument, name, max, names, count }) => ({
    names: () => `The argument 'names' must hold 1 or more distinct section names. Received ${inspect(names)}`,
    sinceVersions: () => `The argument 'sinceVersions' must hold one version per name (${names.length}). Received ${count} versions`
  })[argument]?.() ??
    `Section names must be distinct strings of 1 to ${max} UTF-8 bytes without NUL; got ${JSON.stringify(name)}`
}

/** What is wrong with a section or a section table (ERR_SHM_CORRUPT). */
function corruptWords ({ key, part, ...found }) {
  switch (part) {
    case 'bounds': return 'The section does not lie inside its segment'
    case 'control': return "The section's control block holds values no writer writes: the segment is corrupt"
    case 'byte order': return tableCorrupt(key, 'its byte-order mark is not 0x01020304 little-endian')
    case 'count': return tableCorrupt(key, `${found.count} sections in a header of ${found.headerSize} bytes`)
    case 'extent': return tableCorrupt(key, `it lays out ${found.laidOut} bytes in a segment of ${found.size}`)
    case 'checksum': return tableCorrupt(key, 'its checksum does not match')
    case 'name encoding': return tableCorrupt(key, `section ${found.index} has a name that is not UTF-8`)
    case 'name': return tableCorrupt(key, `section ${found.index} has an empty, repeated or malformed name`)
    case 'alignment': return tableCorrupt(key, `section '${found.name}' is misaligned or has no capacity`)
    case 'lock': return tableCorrupt(key, `section '${found.name}': ${lockWords(found.lock, found.why)}`)
    case 'retired word': return "The section's retired word holds a value no manager writes: the segment is corrupt"
    case 'retired at key':
      return tableCorrupt(key, `a control block says the table was ${found.retired}, yet it is still the table at its key`)
    default: return tableCorrupt(key, 'its sections overlap or reach outside it')
  }
}

/** Why a section's claim lock is not the set the table's manager made (docs/sections.md, section 2). */
function lockWords ({ key, id }, why) {
  const what = `its claim lock (semaphore set id ${id}, key ${hex(key)})`
  if (why === 'foreign') return `${what} is not the set the table's manager made (another key, size, owner or creator)`
  // IPC_STAT on a removed id: EINVAL. Any other failure (EACCES, on a set whose mode someone changed
  // with IPC_SET) is named as it is; staging one needs a tool that changes a set's mode.
  /* c8 ignore next */
  return `${what} cannot be used (${why}${why === 'EINVAL' ? ': it was removed' : ''})`
}

const TYPES = {
  ERR_ILLEGAL_CONSTRUCTOR: TypeError,
  ERR_INVALID_ARG_TYPE: TypeError,
  ERR_INVALID_ARG_VALUE: RangeError,
  ERR_OUT_OF_RANGE: RangeError,
  ERR_BUFFER_TOO_LARGE: RangeError,
  ERR_SHM_NO_SUCH_SECTION: RangeError
}

/** Node's "Received ..." tail of an argument error. */
function received (value) {
  if (value === null || value === undefined) return `Received ${value}`
  if (typeof value === 'function') return `Received function ${value.name}`
  if (typeof value === 'object') return `Received an instance of ${value.constructor?.name ?? 'Object'}`
  return `Received type ${typeof value} (${inspect(value)})`
}

/** The Error for a failure: its code (see WORDS) and the fields its words need. */
function failure (code, fields = {}, cause = undefined) {
  const Type = TYPES[code] ?? Error
  const words = WORDS[code]
  const message = typeof words === 'function' ? words(fields) : words
  const error = new Type(message, cause === undefined ? undefined : { cause })
  error.code = code
  if (code === 'ERR_SHM_TABLE_RETIRED') error.retired = fields.retired // 'replaced' (readers follow) or 'removed'
  return error
}

/**
 * An Error with a Node-style code, worded by its caller: for the modules that
 * never cross into the addon (the bridge's options, the binary loader), whose
 * words sit next to what they check.
 */
function codedError (Type, code, message) {
  return Object.assign(new Type(message), { code })
}

/** Makes the Error of each failure the addon reports (lib/binding.js hands it over). */
function fromAddon (report) {
  if (report.syscall === 'ftok') {
    const { code, errno, syscall, reason, path } = report
    return Object.assign(new Error(`${code}: ftok() failed for '${path}': ftok: ${reason}`), { code, errno, syscall, path })
  }
  return report.syscall ? systemError(report) : failure(report.code, report)
}

module.exports = { ShmError, systemError, failure, codedError, fromAddon, hex, limitNames, received }
