#!/usr/bin/env node
// The one-command demo (cloud + clinic server + sync daemon + desktop UI) lands with issue 9.
console.log(
  "CentroVision Continuity: the demo is not built yet.\n" +
    "What works today: `npm test` runs the EHR schema checks, the in-memory source and the\n" +
    "embedded PostgreSQL stack. See README.md for the roadmap.",
);
