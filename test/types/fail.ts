// Wrong uses of nodejs-shm that tsc must refuse: each line marked "// error"
// has a type error (test/types.test.js checks exactly those lines).
import { open, stat, list, ftok, remove, Segment, ShmError, readSHM, writeSHM, sections, type SegmentStat } from 'nodejs-shm'

const seg = open(1, 'c', 0o600, 8)
open('1', 'c') // error: key is a number
open(1, 'x') // error: flags is 'a', 'w', 'c' or 'n'
open(1, 'c', '0644') // error: mode is a number
seg.write(42) // error: data is a string or a view
seg.write('x', '1') // error: offset is a number
seg.key = 2 // error: read-only
seg.closed = true // error: read-only
new Segment() // error: the constructor is private
const text: string = seg.read() // error: read() returns a Buffer
seg.readInto('abc') // error: the target is a view
const view: Uint8Array = seg.view()
const st: SegmentStat = stat(1)
st.atime.getTime() // error: atime may be null
stat() // error: a key is needed
stat('0x10') // error: the key is a number
const rows: SegmentStat = list() // error: list() returns an array
ftok('/tmp', true) // error: the project is a string or a number
const nothing: number = remove(1) // error: remove() returns nothing
const error = new ShmError('EIO') // error: a ShmError needs its code, errno and syscall
readSHM(1, 0) // error: length is needed
writeSHM(1, {}, 0) // error: data is a string or a view
const table = sections.attach(1)
table.wait('a', [0]) // error: names is an array
table.wait(['a'], { a: 0 }) // error: sinceVersions is an array of numbers
const changed: number = table.waitSync(['a'], [0]) // error: waitSync returns [{ name, version }]
export { text, view, rows, nothing, error, changed }
