// harness/tools.ts: which Prometheus, promtool, Alertmanager and amtool the tests run.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { toolPath } from '../../harness/tools'

test('an environment variable wins, then the unpacked binary, then the name on PATH', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tools-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'prometheus'), '')

  assert.equal(
    toolPath('prometheus', { PROMETHEUS_BIN: '/opt/p/prometheus' }, dir),
    '/opt/p/prometheus',
  )
  assert.equal(toolPath('prometheus', {}, dir), join(dir, 'prometheus'))
  // An empty variable is unset, as in `PROMETHEUS_BIN= npm test`.
  assert.equal(toolPath('prometheus', { PROMETHEUS_BIN: '' }, dir), join(dir, 'prometheus'))
  // Nothing unpacked for promtool: PATH's.
  assert.equal(toolPath('promtool', {}, dir), 'promtool')
  assert.equal(toolPath('promtool', { PROMETHEUS_BIN: '/opt/p/prometheus' }, dir), 'promtool')
  assert.equal(toolPath('amtool', { AMTOOL_BIN: '/x/amtool' }, dir), '/x/amtool')
  assert.equal(toolPath('prometheus-alertmanager', { ALERTMANAGER_BIN: '/x/am' }, dir), '/x/am')
})
