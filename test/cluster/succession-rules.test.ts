// The succession's rules in one process, with the liveness of other processes held by the test:
// a stop while a round awaits a predecessor, a wall clock stepped during a wait, a crash restart
// that finds a stranger's handover, and a handover that cannot be written.
import assert from 'node:assert/strict'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { after, test } from 'node:test'
import {
  createHttpMetrics,
  createWorkerRegistry,
} from '../../packages/plugin/src/plugin/http-metrics'
import {
  createSocketPaths,
  newInstance,
  pidOfInstance,
  type SocketPaths,
} from '../../packages/plugin/src/run-dir/socket-paths'
import { CarriedMetrics } from '../../packages/plugin/src/succession/carried-metrics'
import { type HandoverContent, writeHandover } from '../../packages/plugin/src/succession/handover'
import { type Liveness, Succession } from '../../packages/plugin/src/succession/succession'

const root = mkdtempSync(join(tmpdir(), 'rules-'))
after(() => rmSync(root, { recursive: true, force: true }))
let dirs = 0

const SCOPE = 'app:1'
const COUNTER = 'http_requests_total'

/** Liveness as the test says: the named sockets are live; one call can be held at its await. */
class HeldProbe implements Liveness {
  readonly live = new Set<string>()
  calls = 0
  private holdNext: ((release: (live: boolean) => void) => void) | undefined

  /** Holds the next `isLive` call; resolves with the function that lets it answer. */
  holdNextCall(): Promise<(live: boolean) => void> {
    return new Promise((resolve) => {
      this.holdNext = resolve
    })
  }

  isLive(name: string): Promise<boolean> {
    this.calls++
    const hold = this.holdNext
    if (hold === undefined) return Promise.resolve(this.live.has(name))
    this.holdNext = undefined
    return new Promise((answer) => hold(answer))
  }

  isDead(name: string): Promise<boolean> {
    return Promise.resolve(!this.live.has(name))
  }
}

interface Logged {
  level: 'info' | 'warn' | 'error'
  obj: Record<string, unknown>
  msg: string
}

function setUp(overrides: Partial<SocketPaths> = {}) {
  const dir = join(root, String(dirs++))
  const paths = { ...createSocketPaths(dir), ...overrides }
  const registry = createWorkerRegistry('1', false)
  const http = createHttpMetrics(registry, [0.1, 1])
  const carried = new CarriedMetrics(registry, [COUNTER])
  const probe = new HeldProbe()
  const logs: Logged[] = []
  const instance = newInstance()
  const succession = new Succession({
    paths,
    workerId: '1',
    scope: SCOPE,
    instance,
    carried,
    probe,
    log: {
      info: (obj, msg) => logs.push({ level: 'info', obj: obj as Logged['obj'], msg }),
      warn: (obj, msg) => logs.push({ level: 'warn', obj: obj as Logged['obj'], msg }),
      error: (obj, msg) => logs.push({ level: 'error', obj: obj as Logged['obj'], msg }),
    },
  })
  const count = async () => {
    const family = (await carried.values()).find((f) => f.name === COUNTER)
    return family?.values.reduce((sum, v) => sum + v.value, 0) ?? 0
  }
  /** Another process of worker 1: its socket's name, live in the probe if asked. */
  const sibling = (live: boolean) => {
    const name = `1.${newInstance(process.pid + 1_000_000)}.sock`
    writeFileSync(join(dir, name), '')
    if (live) probe.live.add(name)
    return name
  }
  const ownName = basename(paths.ownSocket('1', instance))
  return { dir, paths, http, probe, logs, succession, count, sibling, ownName }
}

function handoverOf(author: string, value: number, workerIdLabel = '1'): HandoverContent {
  const instance = author.split('.')[1]
  return {
    scope: SCOPE,
    workerId: '1',
    pid: pidOfInstance(instance),
    instance,
    families: [
      {
        name: COUNTER,
        type: 'counter',
        values: [
          {
            labels: { method: 'GET', route: '/', status_code: '200', worker_id: workerIdLabel },
            value,
          },
        ],
      },
    ],
  }
}

/** Real timers: rounds of the rule run every 100 ms; waits for a cause, not for a time. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20))
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

test('a successor stopped while its round awaits the predecessor never takes over', async () => {
  const { paths, probe, succession, count, sibling } = setUp()
  const predecessor = sibling(true)
  symlinkSync(predecessor, paths.linkFor('1'))
  await succession.start()
  assert.equal(succession.isCurrent(), false, 'it waits for the live predecessor')

  const answer = await probe.holdNextCall() // a round is now held at the liveness await
  writeHandover(paths.handoverFor('1'), handoverOf(predecessor, 7))
  const released = succession.release()
  answer(true)
  await released
  for (let i = 0; i < 5; i++) await tick()

  assert.equal(succession.isCurrent(), false)
  assert.equal(readlinkSync(paths.linkFor('1')), predecessor, 'the link stays with the predecessor')
  assert.equal(existsSync(paths.handoverFor('1')), true, 'the handover is left for the next one')
  assert.equal(await count(), 0)
})

test('a wall clock stepped 60 s forward does not make a waiting successor overrule a live predecessor', async (t) => {
  const { paths, probe, succession, sibling } = setUp()
  const predecessor = sibling(true)
  symlinkSync(predecessor, paths.linkFor('1'))
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
  await succession.start()
  t.after(() => succession.release())
  t.mock.timers.setTime(Date.now() + 60_000)
  const rounds = probe.calls
  await until(() => probe.calls >= rounds + 3 || succession.isCurrent())
  assert.equal(succession.isCurrent(), false)
  assert.equal(readlinkSync(paths.linkFor('1')), predecessor)
})

test('a wall clock stepped back during the stop’s wait for a successor does not prolong it', {
  timeout: 20_000,
}, async (t) => {
  const { paths, succession, sibling, logs, ownName } = setUp()
  await succession.start()
  assert.equal(readlinkSync(paths.linkFor('1')), ownName)
  sibling(true) // a successor that is live but never takes over
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
  const released = succession.release()
  t.mock.timers.setTime(Date.now() - 60_000)
  await released
  const handed = logs.find((line) => line.msg === 'handed this worker’s counts over')
  assert.equal(handed?.obj.successor_took_over, false)
  assert.equal(existsSync(paths.handoverFor('1')), true)
})

test('after a crash, a handover from another process than the one the link names is refused, saying why', async () => {
  const { paths, succession, count, sibling, logs, dir } = setUp()
  const killed = sibling(false)
  symlinkSync(killed, paths.linkFor('1'))
  const stranger = `1.${newInstance(4242)}.sock`
  writeHandover(paths.handoverFor('1'), handoverOf(stranger, 123_456))
  await succession.start()
  stopAfterTests(succession)
  assert.equal(succession.isCurrent(), true)
  assert.equal(await count(), 0)
  const refused = logs.find((line) => line.msg.startsWith('refused a handover'))
  assert.match(String(refused?.obj.reason), new RegExp(`but the link names ${killed}`))
  assert.equal(readdirSync(dir).filter((name) => name.includes('.refused-')).length, 1)
})

test('after a crash, the handover of the process the link names is continued', async () => {
  const { paths, succession, count, sibling } = setUp()
  const killed = sibling(false)
  symlinkSync(killed, paths.linkFor('1'))
  writeHandover(paths.handoverFor('1'), handoverOf(killed, 41))
  await succession.start()
  stopAfterTests(succession)
  assert.equal(await count(), 41)
})

test('a handover whose series are labelled with another worker_id is refused at start', async () => {
  const { paths, succession, count, sibling, logs } = setUp()
  writeHandover(paths.handoverFor('1'), handoverOf(sibling(false), 999_119, '0'))
  await succession.start()
  stopAfterTests(succession)
  assert.equal(await count(), 0)
  const refused = logs.find((line) => line.msg.startsWith('refused a handover'))
  assert.match(String(refused?.obj.reason), /worker_id="0"/)
})

test('a stop that cannot write its handover logs an error naming the path, and does not throw', async () => {
  const { dir, succession, http, logs } = setUp({
    handoverFor: () => join(root, 'missing-dir', '1.handover.json'),
  })
  await succession.start()
  http.requestsTotal.inc({ method: 'GET', route: '/', status_code: '200', worker_id: '1' })
  await succession.release()
  const error = logs.find((line) => line.level === 'error')
  assert.equal(error?.obj.path, join(root, 'missing-dir', '1.handover.json'))
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.endsWith('.tmp')),
    [],
  )
})

/** Stops the succession's rounds once the test is done. */
function stopAfterTests(succession: Succession): void {
  after(() => succession.release())
}

test('a start removes the temporary files of writers that died mid-way, and only theirs', async () => {
  const { dir, paths, succession } = setUp()
  const dead = `${paths.handoverFor('1')}.999999999.tmp`
  const live = `${paths.handoverFor('1')}.${process.pid}.tmp`
  const deadLink = `${paths.linkFor('1')}.${newInstance(999_999_999)}.tmp`
  for (const path of [dead, live, deadLink]) writeFileSync(path, '{')
  await succession.start()
  stopAfterTests(succession)
  const left = readdirSync(dir).filter((name) => name.endsWith('.tmp'))
  assert.deepEqual(left, [basename(live)])
})

test('a stop moves a directory planted at its handover path aside, says so, and hands its counts over', async () => {
  const { paths, succession, http, logs } = setUp()
  await succession.start()
  http.requestsTotal.inc({ method: 'GET', route: '/', status_code: '200', worker_id: '1' }, 5)
  mkdirSync(paths.handoverFor('1'))
  await succession.release()
  const moved = logs.find((line) => line.msg.startsWith('moved aside what was in the way'))
  assert.equal(moved?.obj.path, paths.handoverFor('1'))
  const written = JSON.parse(readFileSync(paths.handoverFor('1'), 'utf8'))
  assert.equal(written.families[0].values[0].value, 5)
})
