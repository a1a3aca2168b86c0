// Writes the dashboard JSON: `npm run dashboard`.
//   grafana/dashboards/  what Grafana provisions (the stack's datasource, uid `prometheus`)
//   grafana/import/      the same dashboard for "Import dashboard" on any Grafana
// The import file stays out of the provisioned folder: the two share a uid.
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { dashboardJson } from './dashboard'
import { importableDashboardJson } from './importable'

export const DASHBOARD_FILE = join(__dirname, '..', 'dashboards', 'webapp-workers.json')
export const IMPORT_FILE = join(__dirname, '..', 'import', 'webapp-workers.json')

if (require.main === module) {
  for (const [file, json] of [
    [DASHBOARD_FILE, dashboardJson()],
    [IMPORT_FILE, importableDashboardJson()],
  ]) {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, json)
    console.log(`wrote ${file}`)
  }
}
