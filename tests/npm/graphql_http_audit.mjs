// The GraphQL-over-HTTP server audit of the `graphql-http` package, against a
// live gateway.
//
// Usage: node graphql_http_audit.mjs http://127.0.0.1:PORT/graphql
// Prints one JSON object: {"results": [{id, name, level, status, reason}]}.
// tests/npm/test_graphql_http_audit.py asserts that every MUST passes.

import { auditServer } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node graphql_http_audit.mjs GRAPHQL_URL");
  process.exit(2);
}

const results = await auditServer({ url });
const summary = await Promise.all(
  results.map(async (result) => ({
    id: result.id,
    name: result.name,
    level: result.name.split(" ")[0],
    status: result.status,
    reason: result.status === "ok" ? null : result.reason,
    // What the gateway answered, to debug a failure without rerunning.
    response:
      result.status === "ok"
        ? null
        : {
            status: result.response.status,
            contentType: result.response.headers.get("content-type"),
            body: (await result.response.text()).slice(0, 500),
          },
  })),
);
process.stdout.write(JSON.stringify({ url, results: summary }) + "\n");
