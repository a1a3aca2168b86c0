// Counts across the processes of one worker id, with real processes (no PM2): a reload (the
// successor starts first), a restart (it starts after), overlapping reloads, a crash, and
// handovers that must be refused. Every check reads the worker's series as a scrape would, and
// waits for its cause (which process speaks) rather than for time to pass.
import assert from 'node:assert/strict'
import { type ChildProcess, fork } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { waitFor } from '../../harness/net'
import { type Handover, writeHandover } from '../../packages/plugin/src/succession/handover'
import type { WorkerCommand } from '../fixtures/cluster-worker'

const FIXTURE = join(__dirname, '..', 'fixtures', 'cluster-worker.ts')
const base = mkdtempSync(join(tmpdir(), 'succession-'))
/** Every process a test started: one a failed test left running is killed, not waited for. */
const children = new Set<ChildProcess>()
after(() => {
  for (const child of children) child.kill('SIGKILL')
  rmSync(base, { recursive: true, force: true })
})
let dirs = 0

interface Answer {
  text?: string
  logs?: string[]
  current?: boolean
}

interface Counts {
  requests: number | undefined
  observed: number | undefined
  up: number | undefined
}

interface Worker {
  child: ChildProcess
  send(command: WorkerCommand): Promise<Answer>
  /** The worker's series as this process' gather reads them; `undefined` where one is absent. */
  counts(): Promise<Counts>
  isCurrent(): Promise<boolean>
}

async function startWorker(dir: string, workerId = '1', scope = 'app:1'): Promise<Worker> {
  const child = fork(FIXTURE, [dir, workerId, scope], {
    execArgv: ['--import', 'tsx'],
    // Piped, not inherited: a process left behind must not hold the test runner's output open.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  child.stdout?.pipe(process.stdout)
  child.stderr?.pipe(process.stderr)
  const next = () =>
    new Promise<Answer>((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)))
    })
  await next()
  const worker: Worker = {
    child,
    send: (command) => {
      const answer = next()
      child.send(command)
      return answer
    },
    counts: async () => {
      const { text = '' } = await worker.send({ op: 'gather' })
      const value = (name: string) => {
        const match = new RegExp(
          `^${name}\\{[^}]*worker_id="${workerId}"[^}]*\\} (\\S+)$`,
          'm',
        ).exec(text)
        return match === null ? undefined : Number(match[1])
      }
      return {
        requests: value('http_requests_total'),
        observed: value('http_request_duration_seconds_count'),
        up: value('cluster_metrics_worker_up'),
      }
    },
    isCurrent: async () => (await worker.send({ op: 'status' })).current === true,
  }
  return worker
}

/** What a scrape shows for a worker that answered with `n` requests counted. */
function answered(n: number): Counts {
  return { requests: n, observed: n, up: 1 }
}

async function stop(worker: Worker): Promise<string[]> {
  const exited = new Promise((resolve) => worker.child.once('exit', resolve))
  const { logs = [] } = await worker.send({ op: 'close' })
  await exited
  return logs
}

/** Waits until `worker` speaks for its worker id. */
async function becomesCurrent(worker: Worker): Promise<void> {
  await waitFor('the worker to speak for its worker id', () => worker.isCurrent())
}

function newDir(): string {
  return join(base, String(dirs++))
}

function counterHandover(over: Partial<Handover> & { value: number }): Handover {
  return {
    scope: 'app:1',
    workerId: '1',
    pid: 1,
    instance: 'abcdef0123',
    writtenAt: Date.now(),
    families: [
      {
        name: 'http_requests_total',
        type: 'counter',
        values: [
          {
            labels: { method: 'GET', route: '/', status_code: '200', worker_id: '1' },
            value: over.value,
          },
        ],
      },
    ],
    ...over,
  }
}

test('reload: the successor starts first, waits, and continues the counts', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 10 })
  const next = await startWorker(dir)
  // While the old process runs, the worker's series are still the old process' values.
  await next.send({ op: 'count', n: 3 })
  assert.equal(await next.isCurrent(), false)
  assert.deepEqual(await next.counts(), answered(10))
  await old.send({ op: 'count', n: 2 })
  assert.deepEqual(await next.counts(), answered(12))
  await stop(old)
  await becomesCurrent(next)
  assert.deepEqual(await next.counts(), answered(15))
  await stop(next)
})

test('restart: a successor that starts after the stop continues the counts', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 5 })
  await stop(old)
  const next = await startWorker(dir)
  assert.equal(await next.isCurrent(), true)
  assert.deepEqual(await next.counts(), answered(5))
  await next.send({ op: 'count', n: 1 })
  assert.deepEqual(await next.counts(), answered(6))
  await stop(next)
})

test('four reloads in a row add up', async () => {
  const dir = newDir()
  let current = await startWorker(dir)
  for (let i = 1; i <= 4; i++) {
    await current.send({ op: 'count', n: i })
    const next = await startWorker(dir)
    await stop(current)
    await becomesCurrent(next)
    current = next
  }
  assert.deepEqual(await current.counts(), answered(10))
  await stop(current)
})

test('a crash hands nothing over: the successor starts from zero, a full reset', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 5 })
  const exited = new Promise((resolve) => old.child.once('exit', resolve))
  old.child.kill('SIGKILL')
  await exited
  // Its socket and link are left behind; nobody listens there, so the next process takes over
  // at once instead of waiting for a predecessor that will never hand over.
  assert.ok(existsSync(join(dir, '1.sock')))
  const next = await startWorker(dir)
  assert.equal(await next.isCurrent(), true)
  await next.send({ op: 'count', n: 2 })
  assert.deepEqual(await next.counts(), answered(2))
  // The dead process' socket was removed.
  assert.deepEqual(
    readdirSync(dir).filter((name) => /^1\.\d+-[a-f0-9]+\.sock$/.test(name)),
    [readlinkSync(join(dir, '1.sock'))],
  )
  await stop(next)
})

test('a handover for another app or port, or an old one, is refused at start and moved aside', async () => {
  for (const [over, reason] of [
    [{ scope: 'other:2' }, /it is for other:2 worker 1/],
    [{ writtenAt: Date.now() - 3_600_000 }, /written 3600 s ago/],
  ] as const) {
    const dir = newDir()
    mkdirSync(dir, { mode: 0o700 })
    writeHandover(join(dir, '1.handover.json'), counterHandover({ value: 99, ...over }))
    const next = await startWorker(dir)
    assert.equal(await next.isCurrent(), true)
    await next.send({ op: 'count', n: 1 })
    assert.deepEqual(await next.counts(), answered(1))
    const logs = await stop(next)
    assert.ok(
      logs.some((line) => line.startsWith('refused a handover')),
      logs.join('; '),
    )
    const aside = readdirSync(dir).filter((name) => name.includes('.refused-'))
    assert.equal(aside.length, 1, `${reason}: ${readdirSync(dir).join(' ')}`)
  }
})

test('a waiting successor takes a handover from the process it waits for only', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 5 })
  const successor = await startWorker(dir)
  // A handover from a stranger appears while the old process still speaks.
  writeHandover(join(dir, '1.handover.json'), counterHandover({ value: 99 }))
  await waitFor('the stranger’s handover to be taken', async () => {
    return !existsSync(join(dir, '1.handover.json'))
  })
  // It was refused: the old process still speaks, with its own values.
  assert.equal(await successor.isCurrent(), false)
  assert.equal(await old.isCurrent(), true)
  assert.deepEqual(await successor.counts(), answered(5))
  assert.equal(readdirSync(dir).filter((name) => name.includes('.refused-')).length, 1)
  await successor.send({ op: 'count', n: 1 })
  await stop(old)
  await becomesCurrent(successor)
  assert.deepEqual(await successor.counts(), answered(6))
  await stop(successor)
})

test('overlapping reloads: one process speaks at a time, and the counts add up exactly', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 10 })
  // Two successors wait for the same process, as when a second reload starts during the first.
  const first = await startWorker(dir)
  const second = await startWorker(dir)
  await first.send({ op: 'count', n: 1 })
  await second.send({ op: 'count', n: 2 })
  const seen: number[] = []
  const observe = async (worker: Worker) => {
    const { requests } = await worker.counts()
    assert.notEqual(requests, undefined)
    seen.push(requests as number)
  }
  await observe(first)
  await stop(old)
  await waitFor('one successor to speak', async () => {
    const states = [await first.isCurrent(), await second.isCurrent()]
    return states.filter(Boolean).length === 1
  })
  const [speaker, waiter] = (await first.isCurrent()) ? [first, second] : [second, first]
  await observe(waiter)
  assert.equal(await waiter.isCurrent(), false)
  await stop(speaker)
  await becomesCurrent(waiter)
  await observe(waiter)
  assert.deepEqual(await waiter.counts(), answered(13))
  // Never a step back in what a scrape saw.
  assert.deepEqual(
    seen,
    [...seen].sort((a, b) => a - b),
  )
  await stop(waiter)
})

test('a waiter stalled through a whole overlapping reload takes the handover of the last speaker', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 10 })
  const stalled = await startWorker(dir)
  await stalled.send({ op: 'count', n: 1 })
  // Stopped by the kernel (a loaded machine, a paused container): it misses every round below.
  stalled.child.kill('SIGSTOP')
  const second = await startWorker(dir)
  await second.send({ op: 'count', n: 2 })
  await stop(old)
  await becomesCurrent(second)
  assert.deepEqual(await second.counts(), answered(12))
  // Its successor never answers, so the link is removed; the handover names `second`.
  await stop(second)
  assert.equal(existsSync(join(dir, '1.sock')), false)
  stalled.child.kill('SIGCONT')
  await becomesCurrent(stalled)
  assert.deepEqual(await stalled.counts(), answered(13))
  assert.equal(readdirSync(dir).filter((name) => name.includes('.refused-')).length, 0)
  await stop(stalled)
})

test('a process whose link is taken by another live process restarts from zero and waits for it', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 4 })
  const other = await startWorker(dir)
  await other.send({ op: 'count', n: 3 })
  // Point the link at the waiting process from outside (as a second copy of one worker id would).
  const target = readdirSync(dir).find(
    (name) => /^1\.\d+-[a-f0-9]+\.sock$/.test(name) && name !== readlinkSync(join(dir, '1.sock')),
  ) as string
  symlinkSync(target, join(dir, 'tmp-link'))
  renameSync(join(dir, 'tmp-link'), join(dir, '1.sock'))
  await becomesCurrent(other)
  await waitFor('the displaced process to wait', async () => !(await old.isCurrent()))
  assert.deepEqual(await other.counts(), answered(3))
  await old.send({ op: 'count', n: 1 })
  // The displaced process hands nothing over at its stop; the one that speaks keeps its values.
  await stop(old)
  assert.deepEqual(await other.counts(), answered(3))
  await stop(other)
})

test('a handover path that is a directory is moved aside and the worker starts', async () => {
  const dir = newDir()
  mkdirSync(dir, { mode: 0o700 })
  mkdirSync(join(dir, '1.handover.json'))
  const next = await startWorker(dir)
  assert.equal(await next.isCurrent(), true)
  assert.equal(existsSync(join(dir, '1.handover.json')), false)
  assert.equal(readdirSync(dir).filter((name) => name.includes('.refused-')).length, 1)
  await stop(next)
})

test('the directory removed while a successor waits: no crash, and the reload still hands over', async () => {
  const dir = newDir()
  const old = await startWorker(dir)
  await old.send({ op: 'count', n: 7 })
  const successor = await startWorker(dir)
  rmSync(dir, { recursive: true, force: true })
  // Both processes recreate what they need: the directory, their sockets, the old one's link.
  await waitFor('the link to be restored', async () => existsSync(join(dir, '1.sock')))
  assert.equal(await successor.isCurrent(), false)
  await stop(old)
  await becomesCurrent(successor)
  assert.deepEqual(await successor.counts(), answered(7))
  await stop(successor)
})
