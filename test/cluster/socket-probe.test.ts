// Liveness by socket: the grace given to a silent socket whose pid exists is measured on a
// monotonic clock, so a step of the wall clock does not declare a live process dead.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { newInstance } from '../../packages/plugin/src/run-dir/socket-paths'
import { LivenessProbe } from '../../packages/plugin/src/run-dir/socket-probe'

const dir = mkdtempSync(join(tmpdir(), 'probe-'))
after(() => rmSync(dir, { recursive: true, force: true }))

test('a wall clock stepped forward does not end the grace of a silent socket whose pid lives', async (t) => {
  // This process' pid, and no socket file: as a live process whose socket a cleaner removed.
  const name = `1.${newInstance()}.sock`
  const probe = new LivenessProbe(dir)
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
  assert.equal(await probe.isLive(name), true, 'silent, within its grace')
  t.mock.timers.setTime(Date.now() + 60_000)
  assert.equal(await probe.isLive(name), true, 'still within its grace')
})
