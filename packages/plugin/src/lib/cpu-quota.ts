// How many CPUs this process may really use: the cgroup CPU quota (a container's `cpus:` limit;
// v2 /sys/fs/cgroup/cpu.max, or v1 cpu.cfs_quota_us) when one is set, else the scheduler's view. os.cpus(), which
// PM2 uses for `instances: 'max'`, counts the host's cores and ignores the quota.
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

export const CPU_MAX_PATH = '/sys/fs/cgroup/cpu.max'
const CFS_DIR = '/sys/fs/cgroup/cpu'

/**
 * CPUs the cgroup quota allows, rounded up (1.5 CPUs run 2 workers), or `undefined` without a
 * quota. `cpu.max` holds "<quota> <period>" in microseconds, or "max <period>" for none.
 */
export function cgroupCpuLimit(cpuMax: string | undefined): number | undefined {
  const [quota, period] = (cpuMax ?? '').trim().split(/\s+/)
  const q = Number(quota)
  const p = Number(period)
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined
  return Math.max(1, Math.ceil(q / p))
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined // not this cgroup version
  }
}

/** cpu.max (v2), else the v1 quota and period in the same "<quota> <period>" form (-1: none). */
function readCpuMax(cpuMaxPath: string, cfsDir: string): string | undefined {
  const v2 = read(cpuMaxPath)
  if (v2 !== undefined) return v2
  const quota = read(`${cfsDir}/cpu.cfs_quota_us`)
  const period = read(`${cfsDir}/cpu.cfs_period_us`)
  return quota === undefined || period === undefined ? undefined : `${quota.trim()} ${period}`
}

/** The smaller of the cgroup quota and the CPUs this process may be scheduled on. */
export function usableCpus(cpuMaxPath = CPU_MAX_PATH, cfsDir = CFS_DIR): number {
  const limit = cgroupCpuLimit(readCpuMax(cpuMaxPath, cfsDir))
  const cpus = availableParallelism()
  return limit === undefined ? cpus : Math.min(limit, cpus)
}
