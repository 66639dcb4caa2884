// Types for nodejs-shm: System V shared memory with PHP shmop's semantics.
//
// Errors, by `code`:
// - TypeError  ERR_INVALID_ARG_TYPE   an argument has the wrong type (nothing is coerced)
// - RangeError ERR_OUT_OF_RANGE       a number is not an integer, or outside its range
// - RangeError ERR_INVALID_ARG_VALUE  flags is not one of 'a', 'c', 'w', 'n' (or a bad ftok argument)
// - RangeError ERR_BUFFER_TOO_LARGE   a read or view larger than a Buffer can hold
// - Error      ERR_MEMORY_ALLOCATION_FAILED  no memory for the copy a read returns
// - Error      ERR_SHM_READ_ONLY      a write or view through a segment opened with 'a'
// - Error      ERR_SHM_BAD_HANDLE     (original API) a handle that is not open
// - Error      ERR_SHM_CLOSED         a Segment used after close()
// - Error      ERR_SHM_UNSUPPORTED    list() where the system cannot enumerate segments
// - ShmError   ENOENT, EEXIST, EACCES, EINVAL, ENOMEM, ENOSPC, EPERM, ...  operating-system failures

/// <reference types="node" />

/** PHP's access modes: 'a' read-only attach, 'w' read-write attach, 'c' create or attach, 'n' create only. */
export type Flags = 'a' | 'w' | 'c' | 'n'

/** What the kernel knows of a segment (IPC_STAT, or /proc/sysvipc/shm for list()). */
export interface SegmentStat {
  /** The key, signed 32-bit as key_t (and PHP's ftok()); 0 for IPC_PRIVATE and once marked for deletion. */
  key: number
  /** The kernel's shmid. */
  id: number
  /** Size in bytes. */
  size: number
  /** Permission bits, 0..0o777. */
  mode: number
  uid: number
  gid: number
  cuid: number
  cgid: number
  /** Creator's pid. */
  cpid: number
  /** Pid of the last attach or detach. */
  lpid: number
  /** Current number of attachments (nattch). */
  attachments: number
  /** Last attach; null if never. */
  atime: Date | null
  /** Last detach; null if never. */
  dtime: Date | null
  /** Last change. */
  ctime: Date | null
  /** Marked for deletion: destroyed at its last detach. */
  markedForDeletion: boolean
}

/** An operating-system failure, with what it means and what to do in its message. */
export class ShmError extends Error {
  constructor (message: string, fields: { code: string, errno: number, syscall: string, key?: number, cause?: unknown })
  readonly name: 'ShmError'
  /** 'ENOENT', 'EEXIST', 'EACCES', 'EINVAL', 'ENOMEM', 'ENOSPC', 'EPERM', ... */
  code: string
  /** The negated errno, as in Node's fs errors. */
  errno: number
  /** The call that failed: 'shmget', 'shmctl' or 'shmat'; for a table's claim lock 'semget', 'semop' or 'semctl'. */
  syscall: string
  /** The key involved. */
  key?: number
}

/** One attached segment. Get one from open(). */
export class Segment implements Disposable {
  private constructor ()
  /** The key it was opened with (signed 32-bit). */
  readonly key: number
  /** The kernel's shmid. */
  readonly id: number
  /** Size in bytes, as the kernel reports it. */
  readonly size: number
  /** Opened with 'a'. */
  readonly readOnly: boolean
  /** close() was called. */
  readonly closed: boolean
  /**
   * A copy of `length` bytes from `start` (length 0: to the end).
   * @throws RangeError ERR_OUT_OF_RANGE, ERR_BUFFER_TOO_LARGE; Error ERR_SHM_CLOSED
   */
  read (start?: number, length?: number): Buffer
  /**
   * Copies into `target` at `targetOffset`, allocating nothing; `length` defaults to all that fits.
   * @returns the number of bytes copied
   * @throws TypeError ERR_INVALID_ARG_TYPE; RangeError ERR_OUT_OF_RANGE; Error ERR_SHM_CLOSED
   */
  readInto (target: NodeJS.ArrayBufferView, targetOffset?: number, start?: number, length?: number): number
  /**
   * Writes `data` (a string is written as UTF-8) at `offset`, cut at the end of the segment.
   * @returns the number of bytes written
   * @throws Error ERR_SHM_READ_ONLY, ERR_SHM_CLOSED; RangeError ERR_OUT_OF_RANGE
   */
  write (data: string | NodeJS.ArrayBufferView, offset?: number): number
  /**
   * A Buffer over the segment's memory (no copy). It keeps the mapping alive after close()
   * until it is garbage-collected, so it never points at unmapped memory.
   * @throws Error ERR_SHM_READ_ONLY (opened with 'a'), ERR_SHM_CLOSED; RangeError ERR_BUFFER_TOO_LARGE
   */
  view (): Buffer
  /** @throws ShmError (EACCES, ...); Error ERR_SHM_CLOSED */
  stat (): SegmentStat
  /**
   * Marks the segment for deletion (IPC_RMID); it stays usable until closed.
   * @throws ShmError EPERM when not the owner; Error ERR_SHM_CLOSED
   */
  delete (): void
  /** Detaches. Never deletes. Calling it again does nothing. */
  close (): void
  [Symbol.dispose] (): void
}

/**
 * Opens a segment as PHP's shmop_open() does.
 * @param key an integer in [-2^31, 2^32); only its low 32 bits count; 0 is IPC_PRIVATE
 * @param mode permissions (and flags) passed to shmget unmasked; default 0o644 for 'c'/'n', 0 for 'a'/'w'
 * @param size bytes, for 'c'/'n' only (>= 1); ignored by 'a'/'w'
 * @throws ShmError (ENOENT, EEXIST, EACCES, EINVAL, ENOMEM, ENOSPC); TypeError ERR_INVALID_ARG_TYPE;
 *   RangeError ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE
 */
export function open (key: number, flags: Flags, mode?: number, size?: number): Segment

/** @throws ShmError (ENOENT, EACCES, EINVAL for key 0) */
export function stat (key: number): SegmentStat

/**
 * Every segment this user can see (Linux: /proc/sysvipc/shm).
 * @throws Error ERR_SHM_UNSUPPORTED elsewhere
 */
export function list (): SegmentStat[]

/**
 * The key PHP's ftok() and C's ftok(3) give (signed 32-bit). The project id is one character
 * ('\u0000'..'\u00ff', as PHP's) or an integer 0..255 (as C's and Python's): ftok(p, 65) === ftok(p, 'A').
 * @throws Error with `code` (ENOENT, EACCES, ...), `errno`, `syscall` 'ftok' and `path` when the path
 *   cannot be stat'ed; RangeError ERR_INVALID_ARG_VALUE (empty path, NUL in path, projectId not one byte);
 *   RangeError ERR_OUT_OF_RANGE (a number that is not an integer 0..255); TypeError ERR_INVALID_ARG_TYPE
 */
export function ftok (path: string, projectId: string | number): number

/**
 * Marks the segment with this key for deletion, without attaching to it.
 * @throws ShmError (ENOENT, EPERM)
 */
export function remove (key: number): void

// The original API (2013): operating-system failures return 0, with the reason in lastErrorSHM().

/** @returns a handle >= 1, or 0 on an operating-system failure */
export function openSHM (key: number, flags: Flags | string, mode: number, size: number): number
export function sizeSHM (handle: number): number
/** @returns the bytes written, cut at the end of the segment */
export function writeSHM (handle: number, data: string | NodeJS.ArrayBufferView, offset: number, data_len?: number): number
/** @param length 0: to the end */
export function readSHM (handle: number, start: number, length: number): Buffer
/** @returns 1, or 0 (see lastErrorSHM()) */
export function deleteSHM (handle: number): 0 | 1
/** @returns 1 when it detached, 0 when the handle was not open */
export function closeSHM (handle: number): 0 | 1
/** The last failure of the original API in this thread, or null. */
export function lastErrorSHM (): (Error & { code: string, errno?: number, syscall?: string, key?: number }) | null

// Sections (docs/sections.md): one segment cut into named sections, one writer each.
// Errors: ERR_SHM_NOT_SECTIONS, ERR_SHM_LAYOUT_VERSION, ERR_SHM_CORRUPT (attach, also a claim lock that is
// not the manager's); ERR_SHM_SECTION_BUSY (claim); ERR_SHM_NOT_WRITER (publish without claim);
// ERR_SHM_TABLE_RETIRED (the manager replaced or removed the table); ERR_SHM_NO_SUCH_SECTION;
// ERR_SHM_READ_ONLY; ERR_SHM_CLOSED; ERR_SHM_READ_STARVED (read, readInto, info: no complete copy in
// 100 ms, see the README).

export interface SectionSpec {
  /** 1 to 32 UTF-8 bytes, no NUL, unique in the table. */
  name: string
  /** Capacity in bytes (the largest payload). */
  size: number
}

export interface WaitOptions {
  /** Milliseconds (default: no limit). */
  timeout?: number
  /**
   * Hot mode: check the commit word in a tight loop, with the CPU's pause instruction, for up to
   * this many microseconds (0–1 000 000) before sleeping. It costs a whole core while it spins, and
   * pays only when publishes come faster than a sleep and a wake-up take (tens of µs) and a core is
   * free. Never on by default.
   */
  spin?: number
}

/** A section whose version differs from the one a table wait was given. */
export interface SectionChange {
  name: string
  version: number
}

export interface SectionInfo {
  name: string
  /** Offset of the section's first data area in the segment. */
  offset: number
  capacity: number
  /** Bytes of the committed payload. */
  length: number
  version: number
  /**
   * The claimant, or null. pid: as the claimant sees it (its own PID namespace);
   * alive: whether its claim lock is held (the kernel frees it when the claimant
   * ends, in any PID namespace), or on Windows whether that pid runs.
   */
  writer: { pid: number, alive: boolean, self: boolean } | null
  /** Pid of the process that published the committed version (0: none yet). */
  lastWriterPid: number
  publishedAt: Date | null
}

export class Section {
  private constructor ()
  readonly name: string
  readonly capacity: number
  readonly offsets: { control: number, data: [number, number] }
  /** The committed version; 0 before the first publish. */
  readonly version: number
  /** This object holds the section's claim. */
  readonly claimed: boolean
  /** The last complete payload (never torn), copied. */
  read (): { version: number, data: Buffer }
  /** @throws RangeError ERR_OUT_OF_RANGE when buffer is too small for the payload */
  readInto (buffer: NodeJS.ArrayBufferView): { version: number, length: number }
  /**
   * Never waits. @throws Error ERR_SHM_SECTION_BUSY (another process, thread or table object holds
   * it), ERR_SHM_READ_ONLY, ERR_SHM_TABLE_RETIRED, ERR_SHM_CORRUPT (its claim lock is not the manager's)
   */
  claim (): void
  release (): void
  /**
   * Publishes the next version; readers see it whole or not at all.
   * @throws Error ERR_SHM_NOT_WRITER; ERR_SHM_TABLE_RETIRED (the claim ended: attach and claim again);
   * RangeError ERR_OUT_OF_RANGE (larger than the capacity)
   */
  publish (data: string | NodeJS.ArrayBufferView): number
  /**
   * Resolves with the version once it differs from sinceVersion; with sinceVersion itself when
   * `timeout` (ms) passes. Rejects with signal.reason on abort. A pending wait keeps the process alive.
   * A number as the second argument is the timeout, in milliseconds (as for waitSync).
   * `spin` (µs, 0–1 000 000; default none): hot mode, see {@link WaitOptions.spin}; here the spinning
   * blocks the event loop.
   */
  wait (sinceVersion: number, options?: number | (WaitOptions & { signal?: AbortSignal })): Promise<number>
  /**
   * Blocks the calling thread; returns the version (sinceVersion itself on timeout).
   * worker.terminate() ends a worker blocked here within about 50 ms.
   */
  waitSync (sinceVersion: number, timeoutMs?: number): number
  waitSync (sinceVersion: number, options?: WaitOptions): number
  info (): SectionInfo
}

export class SectionTable implements Disposable {
  private constructor ()
  readonly key: number
  readonly mode: number
  readonly readOnly: boolean
  readonly closed: boolean
  readonly names: string[]
  readonly sections: Section[]
  /** Set once the manager retired the table and no table could be followed to. */
  readonly retired: 'replaced' | 'removed' | undefined
  /** @throws RangeError ERR_SHM_NO_SUCH_SECTION */
  section (name: string): Section
  /**
   * Waits on several sections at once, with one sleeper for all of them: resolves, as soon as the
   * version of any named section differs from its since version (sinceVersions[i] for names[i]),
   * with every section that differs, in the order of names; with [] when `timeout` (ms) passes or
   * the table is closed. Rejects with signal.reason on abort; Error ERR_SHM_TABLE_RETIRED when the
   * table is removed (a replaced one is followed); RangeError ERR_SHM_NO_SUCH_SECTION; the argument
   * errors waitSync throws. A number as the third argument is the timeout, in milliseconds.
   */
  wait (names: readonly string[], sinceVersions: readonly number[], options?: number | { timeout?: number, signal?: AbortSignal }): Promise<SectionChange[]>
  /** Blocks the calling thread; returns what wait() resolves with. */
  waitSync (names: readonly string[], sinceVersions: readonly number[], timeoutMs?: number): SectionChange[]
  waitSync (names: readonly string[], sinceVersions: readonly number[], options?: { timeout?: number }): SectionChange[]
  /** Gives back claims taken through this table, ends its pending waits, detaches. Never deletes; never throws. */
  close (): void
  [Symbol.dispose] (): void
}

export namespace sections {
  /**
   * The central manager's call: creates the segment ('n': it must not exist) and writes the table.
   * @throws ShmError EEXIST; TypeError/RangeError for a bad configuration
   */
  function create (key: number, options: { mode?: number, sections: SectionSpec[] }): SectionTable
  /** @throws ShmError ENOENT...; Error ERR_SHM_NOT_SECTIONS, ERR_SHM_LAYOUT_VERSION, ERR_SHM_CORRUPT */
  function attach (key: number, options?: { readOnly?: boolean }): SectionTable
  /**
   * The central manager, live: creates the table, leaves it (same layout), or replaces it, carrying
   * over the last payload of each section whose name survives and fits.
   * @throws Error ERR_SHM_NOT_SECTIONS (the key holds something else: nothing is touched)
   */
  function apply (key: number, layout: { mode?: number, sections: SectionSpec[] }): {
    action: 'created' | 'unchanged' | 'replaced'
    table: SectionTable
    carried: Array<{ name: string, version: number, length: number }>
    dropped: Array<{ name: string, version: number, length: number, why: string }>
  }
  /**
   * Retires the table (everyone using it is told), removes its segment and every claim lock it owns.
   * @throws Error ERR_SHM_NOT_SECTIONS (not a section table: nothing is deleted)
   */
  function remove (key: number): { segment: number, locks: number[] }
  /**
   * How wait() sleeps in this thread: 'io_uring' (the event loop's own futex sleeps, Linux 6.7+
   * where io_uring is allowed) or 'threads' (helper threads; forced by NODEJS_SHM_WAIT_THREADS=1).
   */
  function waitMechanism (): 'io_uring' | 'threads'
}

// The bridge (docs/bridge.md): mirrors sections between hosts through Redis. Needs @redis/client.
export interface BridgeOptions {
  /** redis:// or rediss:// URL */
  redis: string
  /** the local section table's key */
  table: number
  /** sections whose local versions go to Redis (one exporting bridge per section, by lease) */
  exports?: string[]
  /** sections this bridge claims locally and publishes from Redis */
  imports?: string[]
  /** shared by all hosts of one table; default: the table key in hex (0x5e000100) */
  namespace?: string
  /** stream entries' host field and the lease's holder; default: os.hostname() */
  host?: string
  /** lease length; default 10000 */
  leaseMs?: number
  /** stream entries kept per section (XADD MAXLEN); default 4 */
  keep?: number
  /** one line per event worth a log line (problems, recoveries) */
  log?: (line: string) => void
}

export interface BridgeSectionStatus {
  name: string
  direction: 'export' | 'import'
  /** 'ok', 'starting', 'retrying', 'refused', 'too large', 'skipped', 'waiting for …' */
  state: string
  error: string | null
  /** the local version last exported or published */
  version: number
  /** the exporting host's version of the last entry */
  remoteVersion: number
  streamId: string | null
  /** ms from the local publish (export) or the remote publish (import) to this bridge's step */
  lagMs: number | null
  leaseHolder: string | null
}

export interface BridgeStatus {
  host: string
  table: string
  namespace: string
  redis: 'up' | 'down'
  sections: BridgeSectionStatus[]
}

export class Bridge {
  constructor (options: BridgeOptions)
  readonly host: string
  /** this run's lease value: host, pid and a random tag */
  readonly owner: string
  /** Connects; resolves once every section has made its first attempt. */
  start (): Promise<this>
  status (): BridgeStatus
  /** Gives back its leases, releases its local claims, disconnects. */
  close (): Promise<void>
}

/** new Bridge(options).start() */
export function bridge (options: BridgeOptions): Promise<Bridge>
