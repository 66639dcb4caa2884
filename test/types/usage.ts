// Every export of nodejs-shm but `sections` (tested with its own types), used
// with the types a user would write. tsc checks it (--strict); test/types.test.js
// also compiles it and runs it: node usage.js KEY KEY2 KEY3, with three free keys.
import assert from 'node:assert/strict'
import * as shm from 'nodejs-shm'
import { open, stat, list, ftok, remove, Segment, ShmError, type Flags, type SegmentStat } from 'nodejs-shm'

const [key, key2, key3] = process.argv.slice(2).map(Number)

// open() and Segment
const flags: Flags = 'n'
const seg: Segment = open(key, flags, 0o600, 64)
assert.ok(seg instanceof Segment)
const description: { key: number, id: number, size: number, readOnly: boolean, closed: boolean } = seg
assert.deepEqual({ ...description, closed: seg.closed }, { key, id: seg.id, size: 64, readOnly: false, closed: false })
const written: number = seg.write('hello') + seg.write(Buffer.from(', '), 5) + seg.write(new Uint8Array([0x57]), 7)
assert.equal(written, 8)
const copy: Buffer = seg.read()
assert.equal(copy.length, 64)
assert.equal(seg.read(0, 8).toString() + seg.read(62).length, 'hello, W2')
const target = new Uint8Array(8)
const copied: number = seg.readInto(target) + seg.readInto(target, 4) + seg.readInto(target, 0, 1) + seg.readInto(new DataView(new ArrayBuffer(4)), 0, 0, 4)
assert.equal(copied, 8 + 4 + 8 + 4)
const view: Buffer = seg.view()
view.write('J', 7)
assert.equal(seg.read(0, 8).toString(), 'hello, J')

// stat(), list(), remove(), ftok()
const st: SegmentStat = seg.stat()
const ids: number[] = [st.key, st.id, st.size, st.mode, st.uid, st.gid, st.cuid, st.cgid, st.cpid, st.lpid, st.attachments]
assert.deepEqual(ids.slice(0, 4), [key, seg.id, 64, 0o600])
const times: Array<Date | null> = [st.atime, st.dtime, st.ctime]
assert.ok(times[0] instanceof Date && times[1] === null)
const marked: boolean = st.markedForDeletion
assert.equal(marked, false)
assert.deepEqual(stat(key), st)
const all: SegmentStat[] = list()
assert.deepEqual(all.find((row) => row.id === seg.id), st)
const projectKey: number = ftok(__filename, 'a')
assert.ok(Number.isInteger(projectKey))
open(key2, 'c', 0o600, 8).close()
const removed: void = remove(key2)
assert.equal(removed, undefined)

// ShmError
try {
  open(key, 'n', 0o600, 64)
  assert.fail('open() of an existing key with n')
} catch (error) {
  assert.ok(error instanceof ShmError)
  const { name, code, errno, syscall }: { name: 'ShmError', code: string, errno: number, syscall: string } = error
  const errorKey: number | undefined = error.key
  assert.deepEqual([name, code, errno, syscall, errorKey], ['ShmError', 'EEXIST', -17, 'shmget', key])
}

// delete(), close(), [Symbol.dispose]()
const deleted: void = seg.delete()
assert.equal(deleted, undefined)
const closed: void = seg.close()
assert.equal(closed, undefined)
seg[Symbol.dispose]()
assert.equal(seg.closed, true)
const reader = open(key3, 'c', undefined, 8)
const disposable: Disposable = reader
disposable[Symbol.dispose]()
assert.equal(reader.closed, true)
remove(key3)

// The original API
const handle: number = shm.openSHM(key2, 'c', 0o600, 16)
const size: number = shm.sizeSHM(handle)
const raw: number = shm.writeSHM(handle, 'raw', 0) + shm.writeSHM(handle, Buffer.from('xyz'), 3, 2)
const back: Buffer = shm.readSHM(handle, 0, 0)
assert.deepEqual([size, raw, back.toString('latin1', 0, 5)], [16, 5, 'rawxy'])
const deleteResult: 0 | 1 = shm.deleteSHM(handle)
const closeResult: 0 | 1 = shm.closeSHM(handle)
assert.deepEqual([deleteResult, closeResult, shm.closeSHM(handle)], [1, 1, 0])
const last = shm.lastErrorSHM()
assert.ok(last !== null)
const lastCode: string = last.code
assert.equal(lastCode, 'ERR_SHM_BAD_HANDLE')
assert.equal(shm.openSHM(key2, 'w', 0, 0), 0)
const reason: number | undefined = shm.lastErrorSHM()?.errno
assert.equal(reason, -2)

// The bridge, as typed (its behaviour is tested in bridge.test.js and bridge-hosts.test.js): not started here.
const bridgeOptions: shm.BridgeOptions = { redis: 'redis://127.0.0.1:6379', table: key, exports: ['prices'], leaseMs: 5000, log: (line: string) => console.error(line) }
const unstarted: shm.Bridge = new shm.Bridge(bridgeOptions)
const bridgeStatus: shm.BridgeStatus = unstarted.status()
const direction: 'export' | 'import' = bridgeStatus.sections[0].direction
assert.deepEqual([bridgeStatus.redis, direction, bridgeStatus.sections[0].state], ['down', 'export', 'starting'])
const starting: (options: shm.BridgeOptions) => Promise<shm.Bridge> = shm.bridge
assert.equal(typeof starting, 'function')

console.log('usage ok')
