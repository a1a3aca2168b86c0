// startPrometheus fails cleanly when Prometheus cannot run: a missing binary (the spawn's
// 'error' event) or one that exits at once rejects the start with the reason, instead of an
// uncaught error in the test runner, and leaves no data directory behind. PROMETHEUS_BIN picks
// the binary; here it names what Node alone provides.
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startPrometheus } from '../../harness/prometheus'

/** Runs `fn` with PROMETHEUS_BIN set to `bin` and TMPDIR to a fresh directory it returns. */
async function withBinary(
  t: { after: (fn: () => unknown) => void },
  bin: string,
  fn: () => Promise<unknown>,
): Promise<string> {
  const scratch = mkdtempSync(join(tmpdir(), 'prometheus-start-'))
  const saved = { PROMETHEUS_BIN: process.env.PROMETHEUS_BIN, TMPDIR: process.env.TMPDIR }
  t.after(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
    rmSync(scratch, { recursive: true, force: true })
  })
  process.env.PROMETHEUS_BIN = bin
  process.env.TMPDIR = scratch
  await fn()
  return scratch
}

test('a missing binary rejects the start, naming it and PROMETHEUS_BIN', async (t) => {
  const missing = '/nonexistent/bin/prometheus'
  const scratch = await withBinary(t, missing, () =>
    assert.rejects(startPrometheus('global: {}\n'), (err: Error) => {
      assert.match(err.message, /could not run Prometheus as "\/nonexistent\/bin\/prometheus"/)
      assert.match(err.message, /PROMETHEUS_BIN/)
      assert.match(err.message, /ENOENT/)
      return true
    }),
  )
  assert.deepEqual(readdirSync(scratch), [], 'the data directory was removed')
})

test('a binary that exits before it is ready rejects the start with its exit code and stderr', async (t) => {
  // Node refuses Prometheus' flags: `node: bad option: --config.file=...`, exit 9.
  const scratch = await withBinary(t, process.execPath, () =>
    assert.rejects(
      startPrometheus('global: {}\n'),
      /exited \(9\) before it was ready: .*bad option/s,
    ),
  )
  assert.deepEqual(readdirSync(scratch), [], 'the data directory was removed')
})
