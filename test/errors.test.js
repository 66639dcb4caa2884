'use strict'
// The explanations ShmError gives, for the failures this machine cannot
// produce on demand: macOS's limits (EMFILE at shmat when kern.sysv.shmseg is
// reached), Windows's EIDRM (a deleted key still open), and a code with no
// explanation of its own. The reports are shaped as the addon makes them.
const t = require('tap')
const { systemError, limitNames, ShmError } = require('../lib/errors')

const raw = (code, errno, syscall, reason) => ({ code, errno, syscall, key: 0x5e000001, reason })

t.test('limit names by platform', async (t) => {
  t.match(limitNames('linux'), { shmmax: 'kernel.shmmax', shmseg: 'SHMSEG' })
  t.match(limitNames('darwin'), { shmmax: /^kern\.sysv\.shmmax, 4 MiB/, shmseg: /^kern\.sysv\.shmseg, 8 / })
  t.equal(limitNames('freebsd'), limitNames('linux'), "an unknown system gets Linux's names")
  t.equal(limitNames(), limitNames(process.platform), 'the default is this system')
})

t.test('macOS: each limit error names its sysctl and how to raise it', async (t) => {
  const mac = limitNames('darwin')
  const context = { key: 0x5e000001, flags: 'c', size: 8 << 20 }
  const emfile = systemError(raw('EMFILE', -24, 'shmat', 'Too many open files'), context, mac)
  t.ok(emfile instanceof ShmError)
  t.equal(emfile.message, 'EMFILE: this process has attached as many segments as kern.sysv.shmseg, 8 by default ' +
    'on macOS allows (raise it with sudo sysctl -w kern.sysv.<name>=<value>) (shmat: Too many open files)')
  t.match(systemError(raw('EINVAL', -22, 'shmget', 'Invalid argument'), context, mac).message,
    /more than kern\.sysv\.shmmax, 4 MiB by default on macOS allows\? \(raise it with sudo sysctl/)
  t.match(systemError(raw('ENOSPC', -28, 'shmget', 'No space left on device'), context, mac).message,
    /\(kern\.sysv\.shmmni, 32 by default on macOS\) or on shared memory in all \(kern\.sysv\.shmall/)
  t.match(systemError(raw('ENOMEM', -12, 'shmget', 'Cannot allocate memory'), context, mac).message,
    /\(kern\.sysv\.shmall, 1024 pages by default on macOS, or the memory overcommit policy\)/)
})

t.test('EIDRM (Windows: the key was deleted but is still open) and codes without their own words', async (t) => {
  const context = { key: 0x5e000001, flags: 'c', size: 64 }
  const eidrm = systemError(raw('EIDRM', -43, 'shmget', 'Identifier removed'), context)
  t.equal(eidrm.message, 'EIDRM: the segment with key 0x5e000001 was deleted but is still open somewhere; ' +
    'its key is free once every process has closed it (shmget: Identifier removed)')
  t.match(eidrm, { code: 'EIDRM', errno: -43, syscall: 'shmget', key: 0x5e000001 })
  t.equal(systemError(raw('EACCES', -13, 'semget', 'Permission denied'), context).message,
    'EACCES: permission denied on the claim lock of the segment with key 0x5e000001: claiming needs write ' +
    'permission on the table (semget: Permission denied)')
  t.equal(systemError(raw('ENOSPC', -28, 'semget', 'No space left on device'), context).message,
    'ENOSPC: the claim lock of the segment with key 0x5e000001 could not be used (semget: No space left on device)')
  t.equal(systemError(raw('ENFILE', -23, 'shmat', 'Too many open files in system'), context).message,
    'ENFILE: the segment with key 0x5e000001 could not be used (shmat: Too many open files in system)')
})
