// Which Prometheus, promtool, Alertmanager and amtool binaries the tests and scripts run: the
// one an environment variable names, else Prometheus 3.5 LTS and Alertmanager 0.33 unpacked by
// scripts/fetch-prometheus3.sh into .tools/prometheus-3/, else the command on PATH (Debian
// bookworm's 2.42 and 0.25); and where that script put the official metrics.proto.
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const TOOLS_DIR = join(resolve(__dirname, '..'), '.tools', 'prometheus-3', 'usr', 'bin')

/**
 * The include root of prometheus/client_model as Debian's golang-github-prometheus-client-model-dev
 * ships it (scripts/fetch-prometheus3.sh unpacks it): `io/prometheus/client/metrics.proto` under it
 * is the official schema of the protobuf exposition.
 */
export const CLIENT_MODEL_DIR = join(
  resolve(__dirname, '..'),
  '.tools',
  'prometheus-3',
  'usr',
  'share',
  'gocode',
  'src',
  'github.com',
  'prometheus',
  'client_model',
)
export const METRICS_PROTO = join(CLIENT_MODEL_DIR, 'io', 'prometheus', 'client', 'metrics.proto')

/** Each tool's command name, which is also its file name in .tools/prometheus-3/usr/bin. */
const ENV_OVERRIDES = {
  prometheus: 'PROMETHEUS_BIN',
  promtool: 'PROMTOOL_BIN',
  'prometheus-alertmanager': 'ALERTMANAGER_BIN',
  amtool: 'AMTOOL_BIN',
} as const

export type Tool = keyof typeof ENV_OVERRIDES

/** The binary to run for `tool`: `$<TOOL>_BIN`, else the unpacked one, else the bare name. */
export function toolPath(
  tool: Tool,
  env: NodeJS.ProcessEnv = process.env,
  toolsDir: string = TOOLS_DIR,
): string {
  const override = env[ENV_OVERRIDES[tool]]
  if (override !== undefined && override !== '') return override
  const unpacked = join(toolsDir, tool)
  return existsSync(unpacked) ? unpacked : tool
}
