// Worker count under a CPU quota: the cgroup limit (v2 cpu.max, v1 cfs quota) caps "one worker
// per CPU", where PM2's own count (os.cpus()) sees every core of the host.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ROOT } from '../../harness/stack'
import { cgroupCpuLimit, usableCpus } from '../../packages/plugin/src/lib/cpu-quota'

test('cpu.max is read as whole CPUs, rounded up, and "max" or -1 as no limit', () => {
  assert.equal(cgroupCpuLimit('100000 100000\n'), 1)
  assert.equal(cgroupCpuLimit('150000 100000\n'), 2)
  assert.equal(cgroupCpuLimit('50000 100000\n'), 1)
  assert.equal(cgroupCpuLimit('400000 100000\n'), 4)
  assert.equal(cgroupCpuLimit('max 100000\n'), undefined)
  assert.equal(cgroupCpuLimit('-1 100000\n'), undefined)
  assert.equal(cgroupCpuLimit(''), undefined)
  assert.equal(cgroupCpuLimit(undefined), undefined)
})

test('a quota caps the CPU count; without one (or without cgroup files) the scheduler decides', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgroup-'))
  try {
    const v2 = join(dir, 'cpu.max')
    const v1 = join(dir, 'cpu')
    const none = join(dir, 'missing')
    writeFileSync(v2, '100000 100000\n')
    assert.equal(usableCpus(v2, none), 1)
    writeFileSync(v2, 'max 100000\n')
    assert.equal(usableCpus(v2, none), availableParallelism())
    // cgroup v1: no cpu.max, a cfs quota of one CPU.
    mkdirSync(v1)
    writeFileSync(join(v1, 'cpu.cfs_quota_us'), '100000\n')
    writeFileSync(join(v1, 'cpu.cfs_period_us'), '100000\n')
    assert.equal(usableCpus(none, v1), 1)
    writeFileSync(join(v1, 'cpu.cfs_quota_us'), '-1\n')
    assert.equal(usableCpus(none, v1), availableParallelism())
    assert.equal(usableCpus(none, none), availableParallelism())
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test("ecosystem.config.js gives PM2 a worker count for 'max', 0 and -1, and keeps a count", () => {
  const instances = (value: string) => {
    const result = spawnSync(
      process.execPath,
      ['-p', "require('./ecosystem.config.js').apps[0].instances"],
      { cwd: ROOT, env: { PATH: process.env.PATH, INSTANCES: value }, encoding: 'utf8' },
    )
    assert.equal(result.status, 0, result.stderr)
    return Number(result.stdout.trim())
  }
  assert.equal(instances('max'), usableCpus())
  assert.equal(instances('0'), usableCpus())
  assert.equal(instances('-1'), Math.max(1, usableCpus() - 1))
  assert.equal(instances('3'), 3)
})
