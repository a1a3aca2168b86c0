// The container tier, stack half: docker-compose.yml as written, run for real with Compose v2
// (`up --scale webapp=3 webapp prometheus alertmanager`; Grafana's image cannot be had here),
// then checked through Docker's own records and the answers of the services. Every address the
// checks send to is 127.0.0.1 on the host or a container on the project's compose network.
import assert from 'node:assert/strict'
import { httpGet, waitFor } from '../../harness/net'
import {
  assertPortsFree,
  type ComposeConfig,
  ComposeProject,
  docker,
  firstPassAfterStart,
  hostListeners,
  type Inspect,
  inspect,
  isLoopback,
  memoryCgroup,
  metricsInside,
  nodeOnNetwork,
  ok,
  processes,
  requireEngine,
  run,
  seconds,
  startTimes,
  tierHooks,
  tierTest,
  waitAllWorkers,
  waitHealthy,
} from './docker'

const REPLICAS = 3
const project = new ComposeProject()
let config: ComposeConfig
let webapps: string[] = []
let workers = 0

tierHooks(
  async () => {
    await requireEngine()
    assertPortsFree()
    config = await project.config()
    workers = Number(config.services.webapp.environment?.INSTANCES)
    await ok(project.run(['build', 'webapp'], { timeoutMs: 900_000 }), 'compose build webapp')
    await ok(
      project.run(
        ['up', '--detach', '--scale', `webapp=${REPLICAS}`, 'webapp', 'prometheus', 'alertmanager'],
        { timeoutMs: 300_000 },
      ),
      'compose up',
    )
    webapps = await project.containers('webapp')
  },
  async () => {
    await project.down()
    assert.deepEqual(await project.leftovers(), [], 'everything this file started is removed')
  },
)

tierTest(
  'every replica, Prometheus and Alertmanager become healthy; every webapp process is non-root',
  async (t) => {
    assert.equal(webapps.length, REPLICAS)
    for (const id of webapps) {
      const info = await waitHealthy(id, 180_000)
      assert.equal(info.Config.User, 'node')
      await waitAllWorkers(id, workers)
      const procs = await processes(id)
      assert.equal(procs.length, workers + 2, JSON.stringify(procs))
      for (const proc of procs) assert.equal(proc.uid, 1000, `${info.Name}: ${proc.args}`)
      // Started together on this machine's cores, the replicas' first probes may time out; the
      // start period of a container started alone is checked in image.test.ts.
      t.diagnostic(
        `${info.Name}: first passing probe ${firstPassAfterStart(info)?.toFixed(1)} s after start`,
      )
    }
    // Their images' own health checks (busybox wget on /-/ready), as compose declares them.
    for (const service of ['prometheus', 'alertmanager']) {
      const [id] = await project.containers(service)
      await waitHealthy(id, 180_000)
    }
  },
)

tierTest(
  'on the compose network, the service name resolves to every replica and each /metrics holds every worker',
  async () => {
    const infos = await Promise.all(webapps.map(inspect))
    const addresses = infos.map((info) => info.NetworkSettings.Networks[project.network].IPAddress)
    const names = infos.map((info) => info.Name.replace(/^\//, ''))
    const answer = await nodeOnNetwork<{
      resolved: string[]
      scrapes: Array<{ status: number; body: string }>
    }>(
      project.name,
      project.network,
      `(async () => {
      const resolved = await require('node:dns').promises.resolve4('webapp')
      const scrapes = []
      for (const name of ${JSON.stringify(names)}) {
        const res = await fetch('http://' + name + ':9464/metrics', { signal: AbortSignal.timeout(10000) })
        scrapes.push({ status: res.status, body: await res.text() })
      }
      process.stdout.write(JSON.stringify({ resolved, scrapes }))
    })()`,
    )
    // Docker's DNS answers the service name with one address per replica: what Prometheus uses.
    assert.deepEqual([...answer.resolved].sort(), [...addresses].sort())
    const expected = Array.from({ length: workers }, (_, i) => String(i))
    answer.scrapes.forEach((scrape, i) => {
      assert.equal(scrape.status, 200, names[i])
      assert.match(scrape.body, new RegExp(`^cluster_metrics_workers_expected ${workers}$`, 'm'))
      assert.match(scrape.body, new RegExp(`^cluster_metrics_workers_answered ${workers}$`, 'm'))
      assert.deepEqual(Object.keys(startTimes(scrape.body)).sort(), expected, names[i])
    })
  },
)

interface Vector {
  data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> }
}

const query = async (promql: string) =>
  (
    JSON.parse(
      (await httpGet(`http://127.0.0.1:9090/api/v1/query?query=${encodeURIComponent(promql)}`))
        .body,
    ) as Vector
  ).data.result

tierTest(
  'Prometheus discovers each replica by DNS and records up == 1 and every worker for each',
  async (t) => {
    const infos = await Promise.all(webapps.map(inspect))
    const instances = infos
      .map((info) => `${info.NetworkSettings.Networks[project.network].IPAddress}:9464`)
      .sort()
    const started = Date.now()
    // Discovery refreshes every 15 s and scrapes every 5 s: wait (bounded) for a sample of `up`
    // from each replica and for a scrape of each that holds all its workers.
    const [up, perInstance] = await waitFor(
      `up{job="webapp"} == 1 and ${workers} workers for ${REPLICAS} replicas`,
      async () => {
        const up = await query('up{job="webapp"}')
        const perInstance = await query(
          'count by (instance) (process_start_time_seconds{job="webapp"})',
        )
        return up.length === REPLICAS &&
          up.every((s) => s.value[1] === '1') &&
          perInstance.length === REPLICAS &&
          perInstance.every((s) => s.value[1] === String(workers))
          ? [up, perInstance]
          : undefined
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    )
    assert.deepEqual(up.map((s) => s.metric.instance).sort(), instances)
    assert.deepEqual(perInstance.map((s) => s.metric.instance).sort(), instances)
    // Prometheus reaches Alertmanager on the compose network, as prometheus.yml says.
    const alertmanagers = JSON.parse(
      (await httpGet('http://127.0.0.1:9090/api/v1/alertmanagers')).body,
    ) as { data: { activeAlertmanagers: Array<{ url: string }> } }
    assert.deepEqual(
      alertmanagers.data.activeAlertmanagers.map((a) => a.url),
      ['http://alertmanager:9093/api/v2/alerts'],
    )
    t.diagnostic(
      `${REPLICAS} targets up with ${workers} workers each (waited ${((Date.now() - started) / 1000).toFixed(1)} s in this check)`,
    )
  },
)

tierTest(
  'published ports bind 127.0.0.1 only, and nothing of the stack listens on another host address',
  async (t) => {
    const ids = [
      ...webapps,
      ...(await project.containers('prometheus')),
      ...(await project.containers('alertmanager')),
    ]
    const published: number[] = []
    for (const info of await Promise.all(ids.map(inspect))) {
      for (const [port, bindings] of Object.entries(info.NetworkSettings.Ports)) {
        for (const binding of bindings ?? []) {
          assert.equal(binding.HostIp, '127.0.0.1', `${info.Name} ${port}`)
          published.push(Number(binding.HostPort))
        }
      }
      // The service's /metrics port is published nowhere.
      assert.equal(info.NetworkSettings.Ports['9464/tcp'] ?? null, null, info.Name)
    }
    assert.equal(published.length, REPLICAS + 2)
    const listeners = hostListeners()
    // Sockets on the published ports: loopback only.
    for (const l of listeners.filter((l) => published.includes(l.port))) {
      assert.ok(isLoopback(l.address), `${l.address}:${l.port} ${l.owner}`)
    }
    // Every socket the engine's processes listen on, on any port: loopback only.
    const engine = listeners.filter((l) => /^(docker-proxy|dockerd|containerd)/.test(l.owner ?? ''))
    assert.ok(engine.length >= published.length, JSON.stringify(engine))
    for (const l of engine) assert.ok(isLoopback(l.address), `${l.address}:${l.port} ${l.owner}`)
    // Docker also forwards published ports with NAT rules: each is limited to 127.0.0.1.
    const nat = await run('iptables', ['-t', 'nat', '-S', 'DOCKER'])
    if (nat.code === 0) {
      const rules = nat.stdout.split('\n').filter((rule) => /-j DNAT/.test(rule))
      for (const port of published) {
        const rule = rules.find((r) => new RegExp(`--dport ${port}\\b`).test(r))
        assert.ok(rule, `no DNAT rule for ${port}`)
        assert.match(rule, /-d 127\.0\.0\.1\/32\b/, rule)
      }
      t.diagnostic(`${published.length} published ports, each on 127.0.0.1 (socket and NAT rule)`)
    } else {
      t.diagnostic(`iptables -t nat -S DOCKER: ${nat.stderr.trim()} (NAT rules not read)`)
    }
  },
)

tierTest(
  "a replica's memory stays within the compose limit under a bounded scrape storm",
  async (t) => {
    const [target] = webapps
    const info = await inspect(target)
    const name = info.Name.replace(/^\//, '')
    const limits = config.services.webapp.deploy?.resources?.limits
    const before = startTimes(await metricsInside(target))
    const cgroup = memoryCgroup(info.State.Pid)
    assert.equal(
      info.HostConfig.Memory,
      Number(limits?.memory),
      'the container has the compose limit',
    )
    assert.equal(cgroup.limit, info.HostConfig.Memory, 'the kernel enforces that limit')

    // 20 concurrent scrapers, 400 scrapes in all, over the compose network; none runs past 90 s.
    const storm = await nodeOnNetwork<{ ok: number; failed: string[]; ms: number }>(
      project.name,
      project.network,
      `(async () => {
      const started = Date.now(), deadline = started + 90000
      let next = 0, ok = 0
      const failed = []
      const scraper = async () => {
        while (next < 400 && Date.now() < deadline) {
          next++
          try {
            const res = await fetch('http://${name}:9464/metrics', { signal: AbortSignal.timeout(10000) })
            await res.arrayBuffer()
            if (res.status === 200) ok++
            else failed.push('status ' + res.status)
          } catch (err) { failed.push(String(err.cause ?? err)) }
        }
      }
      await Promise.all(Array.from({ length: 20 }, scraper))
      process.stdout.write(JSON.stringify({ ok, failed, ms: Date.now() - started }))
    })()`,
      { timeoutMs: 150_000 },
    )
    assert.equal(storm.ok, 400, JSON.stringify(storm.failed.slice(0, 5)))
    const after = memoryCgroup(info.State.Pid)
    assert.equal(after.oomKills, 0, 'no process was OOM-killed')
    assert.equal((await inspect(target)).State.OOMKilled, false)
    assert.equal(after.hitLimit, cgroup.hitLimit, 'the usage never reached the limit')
    assert.ok(after.peak < after.limit)
    // No worker was restarted by PM2 (max_memory_restart) or died: the same start time each.
    assert.deepEqual(startTimes(await metricsInside(target)), before)
    t.diagnostic(
      `400 scrapes by 20 scrapers in ${(storm.ms / 1000).toFixed(1)} s; peak memory ${(after.peak / 2 ** 20).toFixed(0)} MiB of the ${(after.limit / 2 ** 20).toFixed(0)} MiB limit`,
    )
  },
)

tierTest(
  'docker compose stop exits 0 within stop_grace_period: every replica ends on SIGTERM, none is killed',
  async (t) => {
    const grace = seconds(config.services.webapp.stop_grace_period ?? '10s')
    const since = Math.floor(Date.now() / 1000) - 1
    const stop = await ok(project.run(['stop'], { timeoutMs: 120_000 }), 'compose stop')
    const until = Math.ceil(Date.now() / 1000) + 1
    const infos: Inspect[] = await Promise.all(webapps.map(inspect))
    const others = [
      ...(await project.containers('prometheus')),
      ...(await project.containers('alertmanager')),
    ]
    for (const info of [...infos, ...(await Promise.all(others.map(inspect)))]) {
      assert.equal(info.State.Running, false, info.Name)
      assert.equal(info.State.ExitCode, 0, `${info.Name} exit code`)
      assert.equal(info.State.OOMKilled, false)
    }
    // The engine's record of the signals it sent: SIGTERM, and no SIGKILL (which it sends only
    // once stop_grace_period has run out).
    const events = await ok(
      docker([
        'events',
        '--since',
        String(since),
        '--until',
        String(until),
        '--filter',
        `label=com.docker.compose.project=${project.name}`,
        '--filter',
        'event=kill',
        '--format',
        '{{.Actor.Attributes.name}} {{.Actor.Attributes.signal}}',
      ]),
      'docker events',
    )
    const signals = events.stdout.trim().split('\n').filter(Boolean)
    for (const info of infos) {
      const name = info.Name.replace(/^\//, '')
      const sent = signals.filter((line) => line.startsWith(`${name} `)).map((l) => l.split(' ')[1])
      assert.deepEqual(sent, ['15'], `${name}: signals ${sent}`)
    }
    t.diagnostic(
      `compose stop: ${(stop.ms / 1000).toFixed(1)} s for ${REPLICAS} replicas, Prometheus and Alertmanager (stop_grace_period ${grace} s)`,
    )
  },
)
