// Which Prometheus, promtool, Alertmanager and amtool binaries the tests and scripts run: the
// one an environment variable names, else Prometheus 3.5 LTS and Alertmanager 0.28 unpacked by
// scripts/fetch-prometheus3.sh into .tools/prometheus-3/, else the command on PATH (Debian
// bookworm's 2.42 and 0.25).
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const TOOLS_DIR = join(resolve(__dirname, '..'), '.tools', 'prometheus-3', 'usr', 'bin')

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
