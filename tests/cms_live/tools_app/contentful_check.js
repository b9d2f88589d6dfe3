// Parse and validate a contentful-migration script with contentful-migration's own
// parser, against an empty space answered locally (no network, no credentials).
// Prints one JSON line: the validation errors and the requests the migration would send.
'use strict';
const path = require('path');
const { createMigrationParser } = require('contentful-migration/built/lib/migration-parser');

const LOCALES = (process.env.CONTENTFUL_LOCALES || 'en-US,de-DE').split(',');

// An empty space: no content types, entries, tags or editor interfaces; two locales.
async function makeRequest(request) {
  if ((request.method || 'GET') !== 'GET') {
    throw new Error(`offline check: unexpected ${request.method} ${request.url}`);
  }
  if (request.url.startsWith('/locales')) {
    return { items: LOCALES.map((code) => ({ code })), total: LOCALES.length };
  }
  if (request.url.includes('/editor_interface')) {
    return { controls: [], sidebar: [] };
  }
  return { items: [], total: 0 };
}

const messages = (errors) => errors.map((e) => (e && e.message) || String(e));

(async () => {
  const migration = require(path.resolve(process.argv[2]));
  const parse = createMigrationParser(makeRequest, { requestBatchSize: 100 });
  const result = await parse(migration);
  const requests = result.batches.flatMap((batch) => batch.requests);
  console.log(JSON.stringify({
    steps: messages(result.stepsValidationErrors),
    payload: messages(result.payloadValidationErrors),
    validation: messages(result.getValidationErrors()),
    runtime: messages(result.getRuntimeErrors()),
    requests: requests.map((r) => ({ method: r.method, url: r.url, data: r.data })),
  }));
})().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
