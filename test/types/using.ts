// `using` (explicit resource management) with a Segment: it is closed when the
// block ends, also when the block throws. test/types.test.js compiles this to
// es2022 (tsc rewrites `using`) and runs it: node using.js KEY.
import { open, type Segment } from 'nodejs-shm'

const key = Number(process.argv[2])
const states: Record<string, boolean> = {}
let kept: Segment | undefined

{
  using seg = open(key, 'n', 0o600, 16)
  seg.write('using')
  states.closedInside = seg.closed
  kept = seg
}
states.closedAfter = kept.closed

try {
  using seg = open(key, 'w')
  kept = seg
  throw new Error('the block fails')
} catch {
  states.closedAfterThrow = kept.closed
}

console.log(JSON.stringify(states))
