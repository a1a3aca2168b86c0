import { usableCpus } from './cpu-quota'

// Who this process is inside a PM2 app: its worker id, its app name, how many siblings it has.
// PM2 copies the app's settings into every worker's environment (`name`, `instances`,
// `instance_var`, `exec_mode`) and sets the instance variable (`NODE_APP_INSTANCE` unless the
// app renames it with `instance_var`) to 0..instances-1. Only PM2's variables are read: an
// app's own settings reach the plugin as options (`workerId`), never through the environment.

/** The worker id used outside PM2 (e.g. `node dist/server.js`). */
export const STANDALONE_WORKER_ID = '0'

export interface WorkerIdentity {
  /** Value of the `worker_id` label: the PM2 instance number, or `STANDALONE_WORKER_ID`. */
  workerId: string
  /** True when PM2 runs this process in cluster mode (siblings exist and share the port). */
  clusterMode: boolean
  /** PM2 app name (`name` in the ecosystem file); `undefined` outside PM2. */
  appName: string | undefined
  /** Number of instances PM2 was asked to run, when it can be known. */
  instances: number | undefined
}

export function resolveWorkerIdentity(env: NodeJS.ProcessEnv = process.env): WorkerIdentity {
  const instanceVar = env.instance_var || 'NODE_APP_INSTANCE'
  const instance = env[instanceVar]
  const underPm2 = env.pm_id !== undefined || instance !== undefined
  return {
    workerId: instance !== undefined && instance !== '' ? instance : STANDALONE_WORKER_ID,
    clusterMode: underPm2 && env.exec_mode === 'cluster_mode' && instance !== undefined,
    appName: underPm2 ? env.name : undefined,
    instances: parseInstances(env.instances),
  }
}

// PM2 accepts `instances` as a number, 0 / -1 / 'max' meaning "one per CPU" (minus one for -1);
// "per CPU" counts the CPUs the container's quota allows, as ecosystem.config.js does.
function parseInstances(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const cpus = usableCpus()
  if (value === 'max' || value === '0') return cpus
  const n = Number(value)
  if (!Number.isInteger(n)) return undefined
  if (n < 0) return Math.max(1, cpus + n)
  return n
}
