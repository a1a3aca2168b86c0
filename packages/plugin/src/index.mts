// The ES module entry point: the CommonJS build's exports under their names, and the plugin as
// the default export, so that `import metricsPlugin from` and `import { metricsPlugin } from` work
// from ES modules as they do from TypeScript. One copy of the code serves both (no dual state).
export * from './index.js'
export { metricsPlugin as default } from './index.js'
