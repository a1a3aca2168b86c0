// Resident memory of the PM2 daemon and each worker of the real service (5 workers, isolated
// PM2_HOME, loopback), idle and after a bounded load with scrapes: the figures the compose
// memory limit is sized from (docs/operations.md). Prints one JSON object.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startLoad } from '../harness/load'
import { httpGet, sleep } from '../harness/net'
import { startPm2App } from '../harness/pm2'

const INSTANCES = 5
const LOAD = { rate: 300, durationSeconds: 30, connections: 10 }

/** VmRSS and VmHWM (peak) of a process, in MiB. */
function memoryOf(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1])
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 }
}

async function main() {
  const app = await startPm2App({ instances: INSTANCES, env: { NODE_ENV: 'production' } })
  try {
    const daemonPid = Number(readFileSync(join(app.home, 'pm2.pid'), 'utf8').trim())
    const sample = async () => {
      const workers = await app.list()
      return {
        daemon: memoryOf(daemonPid),
        workers: workers.map((w) => ({ workerId: w.workerId, ...memoryOf(w.pid) })),
      }
    }
    const idle = await sample()
    const load = startLoad({ url: app.baseUrl, path: '/items/1', ...LOAD })
    const scrapes = (async () => {
      for (let i = 0; i < LOAD.durationSeconds; i++) {
        await httpGet(`${app.baseUrl}/metrics`)
        await sleep(1000)
      }
    })()
    const [tally] = await Promise.all([load.done, scrapes])
    const loaded = await sample()
    process.stdout.write(
      `${JSON.stringify({ node: process.version, load: { ...LOAD, ok: tally.ok }, idle, loaded }, null, 2)}\n`,
    )
  } finally {
    await app.stop()
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`)
  process.exit(1)
})
