// The built service under real PM2: 5 cluster workers online, every one answering on the
// shared port, and nothing left running after PM2 is stopped.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { httpGet } from '../helpers/net'
import { isAlive, type Pm2App, type Pm2Process, startPm2App } from '../helpers/pm2'

let app: Pm2App
let workers: Pm2Process[]

before(async () => {
  app = await startPm2App({ instances: 5 })
  workers = await app.waitOnline(5)
})

after(async () => {
  await app?.stop()
})

test('PM2 runs 5 cluster workers numbered 0..4', async () => {
  assert.equal(workers.length, 5)
  assert.deepEqual(workers.map((w) => w.workerId).sort(), ['0', '1', '2', '3', '4'])
  assert.equal(new Set(workers.map((w) => w.pid)).size, 5)
})

test('each of the 5 workers answers on the shared port', async () => {
  const seen = new Map<string, number>()
  for (let i = 0; i < 200 && seen.size < 5; i++) {
    const res = await httpGet(`${app.baseUrl}/`)
    assert.equal(res.status, 200)
    const body = JSON.parse(res.body) as { worker_id: string; pid: number; message: string }
    assert.equal(body.message, `Hello from worker ${body.worker_id}`)
    seen.set(body.worker_id, body.pid)
  }
  assert.deepEqual([...seen.keys()].sort(), ['0', '1', '2', '3', '4'])
  for (const worker of workers) assert.equal(seen.get(worker.workerId), worker.pid)
})

test('stopping PM2 leaves no process behind', async () => {
  const pids = workers.map((w) => w.pid)
  await app.stop()
  for (const pid of pids) assert.equal(isAlive(pid), false, `worker pid ${pid} still running`)
})
