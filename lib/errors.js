'use strict'
// ShmError: an operating-system failure, explained. The addon reports what
// failed (code, errno, syscall, key); this adds what it means and what to do.

const { hex } = require('./util')

class ShmError extends Error {
  constructor (message, { code, errno, syscall, key, cause }) {
    super(message, { cause })
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

/*
 * What a failure means, by code and by the call that failed. `context` is
 * what the caller was doing: { key, flags, mode, size, existingSize }.
 */
function explain (code, syscall, { key, flags, size, existingSize }, limits = limitNames()) {
  const seg = `segment with key ${hex(key)}`
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
      if (syscall === 'semget' || syscall === 'semop') {
        return `permission denied on the claim lock of the ${seg}: claiming needs write permission on the table`
      }
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

/** A ShmError from the addon's report of an operating-system failure. */
function systemError (raw, context, limits) {
  // The addon's message ends with "<syscall>: <strerror>".
  const detail = raw.message.slice(raw.message.lastIndexOf(`${raw.syscall}: `))
  const message = `${raw.code}: ${explain(raw.code, raw.syscall, context, limits)} (${detail})`
  return new ShmError(message, { code: raw.code, errno: raw.errno, syscall: raw.syscall, key: context.key, cause: raw })
}

/** Runs fn; an operating-system failure it throws becomes a ShmError, misuse passes through. */
function explained (fn, context) {
  try {
    return fn()
  } catch (raw) {
    // The key as the addon reports it: signed 32-bit, as open()'s errors and Segment#key have it.
    throw raw.syscall ? systemError(raw, { ...context, key: raw.key }) : raw
  }
}

/** An Error with a Node-style code, for misuse the addon cannot see. */
function codedError (Type, code, message) {
  const error = new Type(message)
  error.code = code
  return error
}

module.exports = { ShmError, systemError, explained, codedError, hex, limitNames }
