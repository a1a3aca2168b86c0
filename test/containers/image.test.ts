// The container tier, image half: the project's Dockerfile built by Compose v2 on a real engine
// (from the base images scripts/build-base-images.sh makes), one container of the compose service
// started alone, its checked start refusing a bad setting, and the image on a read-only root
// filesystem. Run by `npm run test:containers` (scripts/container-tier.sh).
import assert from 'node:assert/strict'
import {
  assertPortsFree,
  type ComposeConfig,
  ComposeProject,
  docker,
  envOf,
  firstPassAfterStart,
  inspect,
  nodeImage,
  ok,
  processes,
  RUN_LABEL,
  removeLabelled,
  requireEngine,
  seconds,
  startTimes,
  tierHooks,
  tierTest,
  WEBAPP_IMAGE,
  waitAllWorkers,
  waitHealthy,
} from './docker'

const project = new ComposeProject()
let config: ComposeConfig
let workers = 0

tierHooks(
  async () => {
    await requireEngine()
    assertPortsFree()
    config = await project.config()
    workers = Number(config.services.webapp.environment?.INSTANCES)
  },
  async () => {
    await project.down()
    assert.deepEqual(await project.leftovers(), [], 'everything this file started is removed')
  },
)

tierTest(
  "the project's Dockerfile builds with compose, on the pinned Node image, into a non-root image",
  async (t) => {
    const base = await docker(['image', 'inspect', nodeImage()])
    assert.equal(
      base.code,
      0,
      `${nodeImage()} is not in the engine: run scripts/build-base-images.sh`,
    )
    const build = await ok(
      project.run(['build', 'webapp'], { timeoutMs: 900_000 }),
      'compose build',
    )
    t.diagnostic(`compose build webapp: ${(build.ms / 1000).toFixed(1)} s`)
    const image = await inspect(WEBAPP_IMAGE)
    assert.equal(image.Config.User, 'node')
    assert.equal(envOf(image, 'NODE_ENV'), 'production')
    assert.deepEqual(image.Config.Healthcheck?.Test.slice(0, 2), ['CMD', 'node'])
    const version = await ok(
      docker([
        'run',
        '--rm',
        '--label',
        `${RUN_LABEL}=${project.name}`,
        WEBAPP_IMAGE,
        'node',
        '--version',
      ]),
      'node --version in the image',
    )
    // node:24.21.0-trixie-slim runs v24.21.0
    assert.equal(version.stdout.trim(), `v${/^node:(\d+\.\d+\.\d+)-/.exec(nodeImage())?.[1]}`)
  },
)

tierTest(
  'the compose service runs as non-root and becomes healthy within its start period',
  async (t) => {
    const startPeriod = seconds(config.services.webapp.healthcheck?.start_period ?? '0s')
    assert.ok(startPeriod > 0, 'the health check has a start period')
    await ok(project.run(['up', '--detach', '--no-deps', 'webapp']), 'compose up webapp')
    const [id] = await project.containers('webapp')
    const info = await waitHealthy(id, 180_000)
    // Docker's own record of the probes: the first that passed ran within the start period, so
    // no failure was ever counted against the retries, and none failed since.
    const firstPass = firstPassAfterStart(info)
    assert.ok(firstPass !== undefined, JSON.stringify(info.State.Health))
    assert.ok(
      firstPass <= startPeriod,
      `first passing probe ${firstPass} s after start: ${JSON.stringify(info.State.Health?.Log)}`,
    )
    assert.equal(info.State.Health?.FailingStreak, 0)
    assert.equal(info.Config.User, 'node')
    assert.equal(info.HostConfig.Init, true, 'compose init: true')
    // /health passes once the first worker listens; PM2 starts the others one by one.
    const exposition = await waitAllWorkers(id, workers)
    assert.deepEqual(
      Object.keys(startTimes(exposition)).sort(),
      Array.from({ length: workers }, (_, i) => String(i)),
    )
    const procs = await processes(id)
    // docker-init, the start script become pm2-runtime, and one process per worker: all uid 1000.
    assert.equal(procs.length, workers + 2, JSON.stringify(procs))
    for (const proc of procs) assert.equal(proc.uid, 1000, proc.args)
    assert.match(procs[0].args, /^\/sbin\/docker-init -- /)
    t.diagnostic(
      `healthy: first passing probe ${firstPass.toFixed(1)} s after start (start period ${startPeriod} s)`,
    )
    await ok(project.run(['rm', '--stop', '--force', 'webapp']), 'compose rm webapp')
  },
)

tierTest(
  'a bad setting stops the container with exit 78 and a message naming the variable',
  async (t) => {
    for (const [name, value] of [
      ['PORT', 'notaport'],
      ['INSTANCES', 'lots'],
      ['METRICS_PORT', '-1'],
    ]) {
      const result = await project.run(
        ['run', '--rm', '--no-deps', '-e', `${name}=${value}`, 'webapp'],
        {
          timeoutMs: 120_000,
        },
      )
      assert.equal(result.code, 78, `${name}=${value}: ${result.stdout}${result.stderr}`)
      assert.match(
        result.stderr + result.stdout,
        new RegExp(`invalid configuration: .*env/${name}\\b`),
      )
      t.diagnostic(`${name}=${value}: exit 78 after ${(result.ms / 1000).toFixed(1)} s`)
    }
  },
)

tierTest(
  'the image runs on a read-only root filesystem with only /tmp and PM2_HOME writable',
  async (t) => {
    const image = await inspect(WEBAPP_IMAGE)
    const pm2Home = envOf(image, 'PM2_HOME')
    assert.ok(pm2Home, 'the image sets PM2_HOME')
    const started = await ok(
      docker([
        'run',
        '--detach',
        '--label',
        `${RUN_LABEL}=${project.name}`,
        '--read-only',
        '--tmpfs',
        '/tmp:rw,mode=1777',
        '--tmpfs',
        `${pm2Home}:rw,uid=1000,gid=1000,mode=0700`,
        '--env',
        'METRICS_PORT=9464',
        '--init',
        WEBAPP_IMAGE,
      ]),
      'docker run --read-only',
    )
    const id = started.stdout.trim()
    try {
      const healthy = await waitHealthy(id, 180_000)
      assert.equal(healthy.HostConfig.ReadonlyRootfs, true)
      // Every worker answers the gather.
      await waitAllWorkers(id, workers)
      for (const proc of await processes(id)) assert.equal(proc.uid, 1000, proc.args)

      // Only the two tmpfs mounts take writes: the app, the home directory and / refuse them.
      for (const path of ['/app/written', '/home/node/written', '/written']) {
        const write = await docker(['exec', id, 'sh', '-c', `echo x > ${path}`])
        assert.notEqual(write.code, 0, path)
        assert.match(write.stderr, /Read-only file system/, path)
      }
      for (const path of ['/tmp/written', `${pm2Home}/written`]) {
        await ok(docker(['exec', id, 'sh', '-c', `echo x > ${path}`]), `write to ${path}`)
      }

      const stop = await ok(
        docker(['stop', '--time', '10', id], { timeoutMs: 60_000 }),
        'docker stop',
      )
      const stopped = await inspect(id)
      assert.equal(stopped.State.ExitCode, 0, 'pm2-runtime exits 0 on SIGTERM')
      t.diagnostic(
        `read-only: first passing probe ${firstPassAfterStart(healthy)?.toFixed(1)} s after start; docker stop ${(stop.ms / 1000).toFixed(1)} s, exit 0`,
      )
    } finally {
      await removeLabelled(project.name)
    }
  },
)
