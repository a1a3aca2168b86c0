// The project's PM2 process file, unchanged, plus one bench aid: when BENCH_SERIES_ROUTES is
// set, every worker preloads ./prepopulate-series.cjs, which fills the worker's registry with
// that many routes' series before any traffic. Used only by `npm run bench`.
const { join } = require('node:path')
const base = require('../../ecosystem.config.js')

const root = join(__dirname, '..', '..')
const prepopulate = process.env.BENCH_SERIES_ROUTES !== undefined

module.exports = {
  apps: base.apps.map((app) => ({
    ...app,
    cwd: root,
    script: join(root, app.script),
    node_args: [
      ...(app.node_args ?? []),
      ...(prepopulate ? ['--require', join(__dirname, 'prepopulate-series.cjs')] : []),
      ...(process.env.NODE_ARGS_EXTRA ? process.env.NODE_ARGS_EXTRA.split(' ') : []),
    ],
  })),
}
