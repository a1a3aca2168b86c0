// Succession drills under mixed keep-alive traffic, against real PM2 (5 workers) and a real
// Prometheus scraping every second (and a second one at the project's 5 s interval):
//  - kill -9 of a worker's old process while its successor waits during `pm2 reload`;
//  - kill -9 of the waiting successor itself;
//  - one `pm2 reload` read back at the 5 s interval, and a second reload issued meanwhile;
//  - `pm2 reload` and `pm2 scale 3` issued together on 8 workers.
// Each drill reads what Prometheus stored between a scrape before it and two scrapes after it
// and compares it with what the clients were answered.
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { gaugeValue, scrape } from '../../harness/exposition'
import { type ClientConnection, describeTally, type KeepAliveLoad } from '../../harness/load'
import { httpGet, sleep, waitFor } from '../../harness/net'
import {
  identify,
  isAlive,
  isSameProcess,
  type Pm2App,
  type Pm2Process,
  parseStat,
  startPm2App,
} from '../../harness/pm2'
import { type PrometheusServer, startPrometheus } from '../../harness/prometheus'
import {
  abnormalExits,
  type Phase,
  type TrafficPhases,
  trafficPhases,
  workerErrors,
} from '../../harness/traffic-phases'
import { parseOwnSocket, pidOfInstance } from '../../packages/plugin/src/run-dir/socket-paths'

const JOB = 'webapp'
let app: Pm2App
let everySecond: PrometheusServer
let everyFive: PrometheusServer
let traffic: TrafficPhases
let trafficAtFive: TrafficPhases
/** Processes this file killed with SIGKILL; PM2 must log no other SIGKILL exit. */
let kills = 0

const prometheusConfig = (interval: number, timeout: number) => `
global:
  scrape_interval: ${interval}s
  scrape_timeout: ${timeout}s
scrape_configs:
  - job_name: ${JOB}
    static_configs:
      - targets: ['127.0.0.1:${app.port}']
`

before(async () => {
  // A generous gather deadline: a worker missing from a scrape was not there, not slow on a
  // loaded machine. No gather reuse: with two Prometheus servers, one scrape could otherwise be
  // answered from a gather made just before its own start.
  app = await startPm2App({
    instances: 5,
    env: { METRICS_GATHER_TIMEOUT_MS: '5000', METRICS_GATHER_REUSE_MS: '0' },
  })
  ;[everySecond, everyFive] = await Promise.all([
    startPrometheus(prometheusConfig(1, 1)),
    startPrometheus(prometheusConfig(5, 4)),
  ])
  traffic = trafficPhases({ app, prometheus: everySecond, job: JOB, intervalSeconds: 1 })
  trafficAtFive = trafficPhases({ app, prometheus: everyFive, job: JOB, intervalSeconds: 5 })
})
after(async () => {
  await everySecond?.stop()
  await everyFive?.stop()
  await app?.stop()
})

test('kill -9 of the old process while its successor waits: the successor takes over, its series reset once, every scrape after holds it', {
  timeout: 120_000,
}, async (t) => {
  const workerId = '2' // PM2 reloads two workers at a time in pm_id order: this one mid-reload
  const old = workerOf(await app.waitOnline(5), workerId)
  const oldIdentity = identify(old.pid)
  assert.ok(oldIdentity)
  let kill: Kill | undefined
  let successor: Overlap | undefined
  let speaksAt = 0
  let firstAnswer = 0
  let stranded = new Set<number>()
  const p = await traffic.phase('kill -9 of the old process', async (load) => {
    await duringReload(async () => {
      successor = await catchWaitingSuccessor(workerId, old.pid)
      // The pid PM2 listed for this worker before the reload, still that very process.
      assert.ok(isSameProcess(oldIdentity), `pid ${old.pid} is no longer PM2's worker ${workerId}`)
      const overlap = successor
      kill = freezeAndKill(old.pid, () => waitingProblem(workerId, overlap))
      speaksAt = await linkNames(workerId, overlap.newSocket)
      // A process that has answered nothing has no request series yet: make sure it has.
      firstAnswer = await answerFrom(workerId)
    })
    await app.waitOnline(5)
    stranded = await strandedLoadConnections(load)
  })
  assert.ok(kill && successor)
  const killedAt = kill.at
  const scrapes = await scrapesBetween(everySecond, p.from, p.to, workerId)
  const afterKill = scrapes.filter((s) => s.at > killedAt)
  const back = afterKill.find((s) => s.up === 1)
  const missing = afterKill.filter((s) => s.at < (back?.at ?? Number.POSITIVE_INFINITY))
  const listed = workerOf(await app.list(), workerId)
  t.diagnostic(
    `${describePhase(p)}; lost ${p.answered - p.counted} (the old process' counts since its last scrape); ${p.drops.length} series of worker ${workerId} stored a reset`,
  )
  t.diagnostic(
    `kill → successor speaks ${ms(speaksAt - kill.at)}; kill → first scrape with worker ${workerId} back ${back ? ms(back.at - kill.at) : 'never'}; ` +
      `${missing.length} scrape(s) without it in between; its first /health answer ${ms(firstAnswer - kill.at)} after the kill; ` +
      `the old process held ${kill.peers.size} client connection(s), ${stranded.size} more were dealt to it and never taken; PM2 now lists pid ${listed.pid} (restarts ${listed.restarts}); the reload took ${reloadSeconds.toFixed(1)} s`,
  )

  assertCleanRun()
  // The successor PM2 started is the process that speaks now: PM2 did not restart the old one.
  assert.equal(listed.pid, successor.newPid)
  assert.ok(p.tally.statuses.get(200) && p.tally.statuses.get(404) && p.tally.statuses.get(400))
  // Only requests in flight on the killed process' connections fail, at most one on each: those
  // it held, and those the cluster primary had dealt to it but it had not yet taken.
  assert.ok(
    p.tally.errors + p.tally.unanswered <= kill.peers.size + stranded.size,
    describeTally(p.tally),
  )
  // The successor found no handover: its series restart from zero, the crash's own reset, once
  // per series of this worker and no other decrease.
  assert.deepEqual(
    workerLog(successor.newPid).filter((msg) => /start from zero|restart from zero/.test(msg)),
    ['the previous process of this worker exited without handing over; its series start from zero'],
  )
  const drops = p.drops.map((d) => JSON.parse(d) as Record<string, string>)
  assert.deepEqual(
    drops.filter((d) => d.worker_id !== workerId),
    [],
  )
  assert.equal(new Set(p.drops).size, p.drops.length, `a series reset twice: ${p.drops}`)
  // What the old process counted since its last scrape is lost; nothing is counted twice.
  assert.ok(p.counted <= p.answered, `counted ${p.counted} > answered ${p.answered}`)
  // From the moment the successor speaks, every scrape holds the worker, up; and its request
  // series, from its first answer on.
  const sinceSpeaking = scrapes.filter((s) => s.at > speaksAt)
  assert.ok(sinceSpeaking.length > 0)
  for (const s of sinceSpeaking) {
    assert.equal(s.scraped, 1, `scrape at ${s.at} failed`)
    assert.equal(s.up, 1, `scrape at ${s.at}: worker ${workerId} up = ${s.up}`)
    if (s.at > firstAnswer) {
      assert.ok(s.requestSeries > 0, `scrape at ${s.at} has no request series of ${workerId}`)
    }
  }
})

test('kill -9 of the waiting successor: the old process serves on and hands over to PM2’s next one, nothing stepping back', {
  timeout: 120_000,
}, async (t) => {
  const workerId = '3'
  const old = workerOf(await app.waitOnline(5), workerId)
  const oldIdentity = identify(old.pid)
  assert.ok(oldIdentity)
  let kill: Kill | undefined
  let victim: Overlap | undefined
  let victimConnections: ClientConnection[] = []
  let oldServedOn = false
  let probes: Probes = { answered: 0, byTarget: 0 }
  const links: string[] = []
  let stranded = new Set<number>()
  const p = await traffic.phase('kill -9 of the waiting successor', async (load) => {
    await duringReload(async () => {
      victim = await catchWaitingSuccessor(workerId, old.pid)
      const overlap = victim
      // The successor's pid: a child of this app's PM2 daemon, in this app's environment. PM2
      // lists it only once it is online, and `pm2 jlist` takes longer than a wait may last.
      assert.equal(pm2WorkerProblem(overlap.newPid), undefined)
      // Its answers die with it: make sure it has some, so the count below shows that exactly
      // those are lost.
      probes = await probeUntilAnswered(overlap.newPid)
      kill = freezeAndKill(overlap.newPid, () => waitingProblem(workerId, overlap))
      victimConnections = latestByPort(load.connections(), kill.peers)
      oldServedOn = isSameProcess(oldIdentity)
      await followLink(workerId, links, () => !isSameProcess(oldIdentity))
    })
    await app.waitOnline(5)
    stranded = await strandedLoadConnections(load)
  })
  assert.ok(kill && victim)
  const listed = workerOf(await app.list(), workerId)
  // Answered by the killed process: the probes it answered, and every answer on the load's
  // connections it held (a connection is served by one process). Its counts died with it.
  const onConnections = victimConnections.reduce((n, c) => n + c.answered, 0)
  const lost = probes.byTarget + onConnections
  const answered = p.answered + probes.answered
  const ratio = p.counted / (answered - lost)
  t.diagnostic(
    `${p.name}: answered ${p.answered} to the load and ${probes.answered} to probes, ${lost} of them by the killed successor (${probes.byTarget} probes; ${onConnections} on the ${victimConnections.length} load connection(s) among the ${kill.peers.size} it held; ${stranded.size} dealt to it and never taken); ` +
      `counted ${p.counted} ÷ ${answered - lost} = ${ratio.toFixed(4)}; ${describeTally(p.tally)}`,
  )
  t.diagnostic(
    `links after the kill: ${links.join(' → ') || 'unchanged'}; PM2 now lists pid ${listed.pid} for worker ${workerId} (restarts ${listed.restarts}, was ${old.restarts}); the reload took ${reloadSeconds.toFixed(1)} s`,
  )

  assertCleanRun()
  // The old process ran on after the kill and kept the link until it stopped; the killed
  // process never spoke.
  assert.ok(oldServedOn, 'the old process was still running when its successor was killed')
  assert.equal(links[0], victim.oldSocket)
  assert.ok(!links.includes(victim.newSocket), links.join(' → '))
  // PM2 started another process for the worker.
  assert.notEqual(listed.pid, victim.newPid)
  assert.notEqual(listed.pid, old.pid)
  assert.ok(p.tally.statuses.get(200) && p.tally.statuses.get(404) && p.tally.statuses.get(400))
  assert.ok(
    p.tally.errors + p.tally.unanswered <= kill.peers.size + stranded.size,
    describeTally(p.tally),
  )
  // The old process' values continue into whichever process speaks next: no decrease at all.
  assert.deepEqual(p.drops, [])
  assert.ok(probes.byTarget > 0)
  assert.ok(p.counted <= answered - lost, `counted ${p.counted} > ${answered - lost}`)
  assert.ok(Math.abs(ratio - 1) <= 0.001, `counted ÷ (answered − its answers) = ${ratio}`)
})

test('one reload at the 5 s scrape interval counts every answer once; a second reload meanwhile is refused', {
  timeout: 120_000,
}, async (t) => {
  await app.waitOnline(5)
  let refusal = ''
  const p = await trafficAtFive.phase('reload (5 s scrapes)', async () => {
    await duringReload(async () => {
      // Once the first reload is under way (a new process of worker 0 runs), ask for another.
      await waitFor('the reload to start a new process', async () => {
        return liveSockets('0').size > 1 ? true : undefined
      })
      refusal = await app.pm2('reload', app.name).then(
        (out) => `accepted: ${out.slice(-300)}`,
        (err: { stdout?: string; stderr?: string }) => `${err.stderr ?? ''}${err.stdout ?? ''}`,
      )
    })
    await app.waitOnline(5)
  })
  const ratio = p.counted / p.answered
  t.diagnostic(`${describePhase(p)}; the reload took ${reloadSeconds.toFixed(1)} s`)
  t.diagnostic(`second reload: ${firstLine(refusal, /reload/i)}`)

  assertCleanRun()
  assert.match(refusal, /Reload already in progress/)
  assert.equal(p.tally.errors + p.tally.unanswered, 0, describeTally(p.tally))
  assert.ok(p.tally.statuses.get(200) && p.tally.statuses.get(404) && p.tally.statuses.get(400))
  assert.deepEqual(p.drops, [])
  assert.ok(Math.abs(ratio - 1) <= 0.001, `counted ÷ answered = ${ratio}`)
})

test('reload and scale 8 → 3 issued together: no decrease, no abnormal exit, every scrape after expects exactly PM2’s live workers', {
  timeout: 150_000,
}, async (t) => {
  await app.waitOnline(5)
  let outcome = ''
  let live: Pm2Process[] = []
  let settledAt = 0
  const p = await traffic.phase('reload during scale 8 → 3', async () => {
    await app.pm2('scale', app.name, '8')
    await app.waitOnline(8)
    await sleep(2000)
    // PM2 has no lock between the two: both commands act on the daemon at once.
    const started = performance.now()
    const [reload, scale] = await Promise.allSettled([
      app.pm2('reload', app.name),
      app.pm2('scale', app.name, '3'),
    ])
    outcome = `reload ${settledOutcome(reload)}; scale ${settledOutcome(scale)}; both returned after ${((performance.now() - started) / 1000).toFixed(1)} s`
    live = await settledWorkers()
    settledAt = Date.now() / 1000
  })
  const ids = live.map((w) => w.workerId).sort()
  const scrapes = await membershipBetween(everySecond, settledAt, p.to)
  t.diagnostic(`${describePhase(p)}`)
  const described = [...live]
    .sort((a, b) => a.pmId - b.pmId)
    .map((w) => `${w.workerId} (pm_id ${w.pmId}, restarts ${w.restarts})`)
  t.diagnostic(`${outcome}; PM2 runs ${ids.length} worker(s) after: ${described.join(', ')}`)

  assertCleanRun()
  assert.equal(p.tally.errors + p.tally.unanswered, 0, describeTally(p.tally))
  assert.ok(p.tally.statuses.get(200) && p.tally.statuses.get(404) && p.tally.statuses.get(400))
  assert.deepEqual(p.drops, [])
  // A replaced process hands over to its successor, and a removed worker's last counts are
  // served by the workers that stay until Prometheus has stored them: exact within 0.1 %.
  const ratio = p.counted / p.answered
  assert.ok(p.counted <= p.answered, `counted ${p.counted} > answered ${p.answered}`)
  assert.ok(Math.abs(ratio - 1) <= 0.001, `counted ÷ answered = ${ratio}`)
  // Once PM2 has settled, every scrape expects and holds exactly its live workers.
  assert.ok(scrapes.length > 0)
  for (const s of scrapes) {
    assert.equal(s.expected, ids.length, `scrape at ${s.at}`)
    assert.equal(s.answered, ids.length, `scrape at ${s.at}`)
    assert.deepEqual(s.up, ids, `scrape at ${s.at}`)
  }
  const text = await scrape(app.baseUrl)
  assert.equal(gaugeValue(text, 'cluster_metrics_workers_expected'), ids.length)
  assert.equal(gaugeValue(text, 'cluster_metrics_workers_answered'), ids.length)
})

// --- helpers ---

interface Overlap {
  oldSocket: string
  newSocket: string
  newPid: number
}

interface Kill {
  /** When SIGKILL was sent, in seconds. */
  at: number
  /** Client ports of the killed process' connections to the app's port. */
  peers: Set<number>
}

function workerOf(processes: Pm2Process[], workerId: string): Pm2Process {
  const found = processes.find((p) => p.workerId === workerId)
  assert.ok(found, `PM2 lists no worker ${workerId}`)
  return found
}

/** How long the last `pm2 reload` run by duringReload took, in seconds. */
let reloadSeconds = 0

/** Runs `during` while a `pm2 reload` of the app runs; returns once both are done. */
async function duringReload(during: () => Promise<void>): Promise<void> {
  const started = performance.now()
  const reloading = app.pm2('reload', app.name).finally(() => {
    reloadSeconds = (performance.now() - started) / 1000
  })
  try {
    await during()
  } finally {
    await reloading
  }
}

/** Sockets of live processes of `workerId` in the app's socket directory, by pid. */
function liveSockets(workerId: string): Map<number, string> {
  const sockets = new Map<number, string>()
  for (const name of readdirSync(app.socketDir)) {
    const own = parseOwnSocket(name)
    if (own?.workerId !== workerId) continue
    const pid = pidOfInstance(own.instance)
    // A crashed process' socket stays until the worker's next process starts.
    if (isAlive(pid)) sockets.set(pid, name)
  }
  return sockets
}

function linkTarget(workerId: string): string | undefined {
  try {
    return readlinkSync(join(app.socketDir, `${workerId}.sock`))
  } catch {
    return undefined
  }
}

/**
 * Waits for the moment a reload's new process of `workerId` waits for the old one: both have
 * their own socket, the link still names the old one, and the old one has begun its stop (its
 * stopping mark). PM2 stops the old process only once the new one has sent `ready`, which it
 * sends after its succession started; so the new process is past its start and waiting.
 */
async function catchWaitingSuccessor(workerId: string, oldPid: number): Promise<Overlap> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const sockets = liveSockets(workerId)
    const oldSocket = sockets.get(oldPid)
    const others = [...sockets].filter(([pid]) => pid !== oldPid)
    if (
      oldSocket !== undefined &&
      others.length === 1 &&
      existsSync(join(app.socketDir, `${oldSocket}.stopping`)) &&
      linkTarget(workerId) === oldSocket
    ) {
      const [[newPid, newSocket]] = others
      return { oldSocket, newSocket, newPid }
    }
    await sleep(5)
  }
  throw new Error(`no successor of worker ${workerId} seen waiting during the reload`)
}

/** Why the overlap is no longer a successor waiting for a live predecessor, or undefined. */
function waitingProblem(workerId: string, overlap: Overlap): string | undefined {
  const target = linkTarget(workerId)
  if (target !== overlap.oldSocket) return `the link names ${target}, not ${overlap.oldSocket}`
  const sockets = liveSockets(workerId)
  if (![...sockets.values()].includes(overlap.newSocket)) return 'the successor is gone'
  return undefined
}

/** Why `pid` is not a worker of this app's PM2 daemon, or undefined. */
function pm2WorkerProblem(pid: number): string | undefined {
  const daemon = Number(readFileSync(join(app.home, 'pm2.pid'), 'utf8').trim())
  const parent = Number(parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))[1])
  if (parent !== daemon) return `pid ${pid}'s parent is ${parent}, not PM2's daemon ${daemon}`
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')
  for (const wanted of [`PM2_HOME=${app.home}`, `PORT=${app.port}`]) {
    if (!environ.includes(wanted)) return `pid ${pid} runs without ${wanted}`
  }
  return undefined
}

/**
 * SIGKILL for `pid`, sent after a SIGSTOP that holds it still while the moment is checked and
 * its connections are read (a stopped process dies of SIGKILL as a running one does).
 */
function freezeAndKill(pid: number, problem: () => string | undefined): Kill {
  process.kill(pid, 'SIGSTOP')
  const why = problem()
  if (why !== undefined) {
    process.kill(pid, 'SIGCONT')
    throw new Error(`not killing ${pid}: ${why}`)
  }
  const peers = clientPortsOf(pid)
  const at = Date.now() / 1000
  process.kill(pid, 'SIGKILL')
  kills++
  return { at, peers }
}

/**
 * The load's connections that PM2's daemon, the cluster primary, still holds: it accepts each
 * connection and deals it to a worker, and closes its own copy once the worker has taken it. A
 * connection dealt to a process at the moment it is killed is never taken: the primary holds it
 * and the client waits for its timeout. Connections in passage to a live worker are taken within
 * milliseconds: only those held on two looks a second apart count.
 */
async function strandedLoadConnections(load: KeepAliveLoad): Promise<Set<number>> {
  const daemon = Number(readFileSync(join(app.home, 'pm2.pid'), 'utf8').trim())
  const first = clientPortsOf(daemon)
  await sleep(1000)
  const second = clientPortsOf(daemon)
  const loadPorts = new Set(load.connections().map((c) => c.localPort))
  return new Set([...first].filter((port) => second.has(port) && loadPorts.has(port)))
}

/** Client ports of `pid`'s TCP connections to the app's port, from /proc. */
function clientPortsOf(pid: number): Set<number> {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (socket) inodes.add(socket[1])
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>()
  for (const table of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10 || !inodes.has(fields[9])) continue
      const local = Number.parseInt(fields[1].split(':')[1], 16)
      const remote = Number.parseInt(fields[2].split(':')[1], 16)
      if (local === app.port && remote !== 0) ports.add(remote)
    }
  }
  return ports
}

/**
 * The load's connections on `ports`: on each port the latest one opened (a port is reused only
 * once the connection that had it is gone on both sides).
 */
function latestByPort(
  connections: readonly ClientConnection[],
  ports: Set<number>,
): ClientConnection[] {
  const latest = new Map<number, ClientConnection>()
  for (const c of connections) {
    if (c.localPort !== undefined && ports.has(c.localPort)) latest.set(c.localPort, c)
  }
  return [...latest.values()]
}

/** Waits until the link of `workerId` names `socket`; returns when, in seconds. */
async function linkNames(workerId: string, socket: string): Promise<number> {
  return waitFor(
    `the link of worker ${workerId} to name ${socket}`,
    async () => (linkTarget(workerId) === socket ? Date.now() / 1000 : undefined),
    { timeoutMs: 30_000, intervalMs: 5 },
  )
}

/** Records each process the link of `workerId` names, until `done()` and one more look. */
async function followLink(workerId: string, seen: string[], done: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000
  let finished = false
  while (!finished && Date.now() < deadline) {
    finished = done()
    const target = linkTarget(workerId) ?? '(none)'
    if (seen.at(-1) !== target) seen.push(target)
    await sleep(5)
  }
}

/**
 * Asks /health on new connections until worker `workerId` answers; returns when, in seconds.
 * Once its old process is dead, only its successor can answer for it. /health is outside the
 * counts the drills compare.
 */
async function answerFrom(workerId: string): Promise<number> {
  return waitFor(
    `worker ${workerId} to answer /health`,
    async () => {
      const res = await httpGet(`${app.baseUrl}/health`)
      const answered = res.status === 200 && JSON.parse(res.body).worker_id === workerId
      return answered ? Date.now() / 1000 : undefined
    },
    { timeoutMs: 30_000, intervalMs: 20 },
  )
}

interface Probes {
  answered: number
  /** Answered by the process probed for. */
  byTarget: number
}

/**
 * GET / on new connections, ten at a time, until process `pid` has answered one: the cluster
 * primary deals new connections to the listening workers in turn. `/` answers with its pid.
 */
async function probeUntilAnswered(pid: number): Promise<Probes> {
  const probes = { answered: 0, byTarget: 0 }
  for (let round = 0; round < 20 && probes.byTarget === 0; round++) {
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => httpGet(`${app.baseUrl}/`).catch(() => undefined)),
    )
    for (const res of answers) {
      if (res === undefined) continue
      probes.answered++
      if (res.status === 200 && JSON.parse(res.body).pid === pid) probes.byTarget++
    }
  }
  return probes
}

/** The `msg` of each line process `pid` logged (its JSON lines in PM2's logs). */
function workerLog(pid: number): string[] {
  const logs = join(app.home, 'logs')
  return readdirSync(logs)
    .filter((name) => name.endsWith('.log'))
    .flatMap((name) => readFileSync(join(logs, name), 'utf8').split('\n'))
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { pid?: number; msg?: string }
        return entry.pid === pid && entry.msg !== undefined ? [entry.msg] : []
      } catch {
        return []
      }
    })
}

/** PM2's list once it is steady: every process online, the same pids on two looks 1 s apart. */
async function settledWorkers(): Promise<Pm2Process[]> {
  let previous = ''
  return waitFor(
    'PM2 to settle',
    async () => {
      const list = await app.list()
      const key = JSON.stringify(list.map((p) => [p.workerId, p.pid, p.status]))
      const steady = key === previous && list.every((p) => p.status === 'online' && p.pid > 0)
      previous = key
      return steady ? list : undefined
    },
    { timeoutMs: 60_000, intervalMs: 1000 },
  )
}

interface WorkerScrape {
  at: number
  /** `up` of the scrape: 1 if Prometheus read the app. */
  scraped: number
  /** `cluster_metrics_worker_up` of the worker; undefined if the scrape did not hold it. */
  up: number | undefined
  /** How many of the worker's request series the scrape held. */
  requestSeries: number
}

/** Each of Prometheus' scrapes in (from, to] as it stored it for one worker. */
async function scrapesBetween(
  prometheus: PrometheusServer,
  from: number,
  to: number,
  workerId: string,
): Promise<WorkerScrape[]> {
  const range = `[${Math.round((to - from) * 1000)}ms]`
  const samples = async (expr: string) => {
    const byTime = new Map<number, number[]>()
    for (const s of await prometheus.query(`${expr}${range}`, to)) {
      for (const [at, v] of s.values ?? []) {
        const list = byTime.get(Number(at)) ?? []
        list.push(Number(v))
        byTime.set(Number(at), list)
      }
    }
    return byTime
  }
  const up = await samples(`up{job="${JOB}"}`)
  const workerUp = await samples(`cluster_metrics_worker_up{worker_id="${workerId}"}`)
  const requests = await samples(`http_requests_total{worker_id="${workerId}"}`)
  return [...up]
    .map(([at, [scraped]]) => ({
      at,
      scraped,
      up: workerUp.get(at)?.[0],
      requestSeries: requests.get(at)?.length ?? 0,
    }))
    .sort((a, b) => a.at - b.at)
}

interface MembershipScrape {
  at: number
  expected: number | undefined
  answered: number | undefined
  /** Worker ids whose `cluster_metrics_worker_up` is 1, sorted. */
  up: string[]
}

/** Membership as each scrape in (from, to] stored it. */
async function membershipBetween(
  prometheus: PrometheusServer,
  from: number,
  to: number,
): Promise<MembershipScrape[]> {
  const range = `[${Math.round((to - from) * 1000)}ms]`
  const query = (expr: string) => prometheus.query(`${expr}${range}`, to)
  const valueAt = async (expr: string) =>
    new Map(((await query(expr))[0]?.values ?? []).map(([at, v]) => [Number(at), Number(v)]))
  const expected = await valueAt('cluster_metrics_workers_expected')
  const answered = await valueAt('cluster_metrics_workers_answered')
  const upAt = new Map<number, string[]>()
  for (const s of await query('cluster_metrics_worker_up')) {
    for (const [at, v] of s.values ?? []) {
      const ids = upAt.get(Number(at)) ?? []
      if (Number(v) === 1) ids.push(s.metric.worker_id)
      upAt.set(Number(at), ids)
    }
  }
  const times = (await valueAt(`up{job="${JOB}"}`)).keys()
  return [...times]
    .sort((a, b) => a - b)
    .map((at) => ({
      at,
      expected: expected.get(at),
      answered: answered.get(at),
      up: (upAt.get(at) ?? []).sort(),
    }))
}

/** No worker exited with a code other than 0, and PM2 killed no process: only this file did. */
function assertCleanRun(): void {
  assert.deepEqual(abnormalExits(app), [], workerErrors(app))
  const log = readFileSync(join(app.home, 'pm2.log'), 'utf8')
  const killed = log.split('\n').filter((line) => /via signal \[SIGKILL\]/.test(line))
  assert.equal(killed.length, kills, killed.join('\n'))
}

function settledOutcome(result: PromiseSettledResult<string>): string {
  if (result.status === 'fulfilled') return 'succeeded'
  const err = result.reason as { code?: number; stderr?: string; stdout?: string }
  return `exited ${err.code}: ${firstLine(`${err.stderr ?? ''}\n${err.stdout ?? ''}`, /ERROR/)}`
}

function firstLine(text: string, pattern: RegExp): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: PM2 colours its output
  const plain = text.replace(/\u001b\[[0-9;]*m/g, '')
  return plain.split('\n').find((line) => pattern.test(line)) ?? plain.trim().slice(0, 200)
}

function describePhase(p: Phase): string {
  return `${p.name}: answered ${p.answered}, counted ${p.counted}, ratio ${(p.counted / p.answered).toFixed(4)}; ${describeTally(p.tally)}`
}

function ms(seconds: number): string {
  return `${Math.round(seconds * 1000)} ms`
}
