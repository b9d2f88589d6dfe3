// Apollo Client, unchanged, against a live gateway: the persisted-query link
// (hashed GET, and POST) and the normalized cache across locales.
//
// Usage: node apollo_apq.mjs http://127.0.0.1:PORT/graphql
// Prints one JSON object: every HTTP exchange each client made and what each
// query returned. tests/npm/test_apollo_client.py asserts on it; this script
// reports a scenario's failure in the JSON and exits non-zero only on a bug
// of its own.

import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries";

const uri = process.argv[2];
if (!uri) {
  console.error("usage: node apollo_apq.mjs GRAPHQL_URL");
  process.exit(2);
}

// Node's crypto instead of the browser's (crypto-hash does the same in a page).
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

// A fragment on the Block interface, as an app would write it. Two operation
// names give two documents, so the POST run starts from a hash the gateway
// has not seen either.
const pageDocument = (operationName) => gql`
  fragment BlockParts on Block {
    id
    blockId
    type
    variantId
    ... on HeroBlock {
      heading
      subheading
    }
    ... on BannerBlock {
      text
    }
    ... on RichTextBlock {
      html
    }
    ... on ProductGridBlock {
      title
      products {
        sku
        name
      }
    }
    ... on TestimonialBlock {
      quote
      author
    }
  }

  query ${operationName}($slug: String!, $locale: String) {
    page(slug: $slug, locale: $locale) {
      slug
      locale
      title
      cacheScope
      blocks {
        ...BlockParts
      }
    }
  }
`;
// A fresh suffix per run: the hashes are new to the gateway even if its
// query store (a shared Redis, say) outlived an earlier run.
const run = randomBytes(4).toString("hex");
const PAGE = pageDocument(`Page_${run}`);
const PAGE_POST = pageDocument(`PagePost_${run}`);

// The cache set-up documented in docs/edge.md ("Client caches").
// Every implementation of Block, from the committed schema (what the documented
// fragment-matcher codegen generates): a type missing here loses its fields.
const BLOCK_TYPES = [
  ...readFileSync(new URL("../../schema.graphql", import.meta.url), "utf8").matchAll(
    /^type (\w+) implements Block\b/gm,
  ),
].map((match) => match[1]);
if (BLOCK_TYPES.length < 8) throw new Error(`Block implementations not found: ${BLOCK_TYPES}`);
function documentedCache(extraPolicies = {}) {
  return new InMemoryCache({
    possibleTypes: { Block: BLOCK_TYPES },
    typePolicies: {
      Page: { keyFields: ["slug", "locale"] },
      Visitor: { keyFields: ["id"] },
      Decision: { keyFields: false },
      ...extraPolicies,
    },
  });
}

/** A fetch that records every exchange on the wire (a client-side request counter). */
function recordingFetch(log) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url);
    const method = (init.method || "GET").toUpperCase();
    let body = null;
    if (typeof init.body === "string") body = JSON.parse(init.body);
    const params = method === "GET" ? Object.fromEntries(url.searchParams) : body || {};
    const extensions =
      typeof params.extensions === "string" ? JSON.parse(params.extensions) : params.extensions;
    const response = await fetch(input, init);
    const text = await response.clone().text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: recorded as such
    }
    log.push({
      method,
      hasQuery: typeof params.query === "string" && params.query.length > 0,
      sha256Hash: extensions?.persistedQuery?.sha256Hash ?? null,
      // The SHA-256 of the query text actually sent, to compare with the hash.
      queryDigest: typeof params.query === "string" ? sha256(params.query) : null,
      status: response.status,
      contentType: response.headers.get("content-type"),
      cacheControl: response.headers.get("cache-control"),
      etag: response.headers.get("etag"),
      scope: response.headers.get("x-tessera-cache-scope"),
      errors: (json?.errors || []).map((e) => ({ message: e.message, code: e.extensions?.code })),
      hasData: json !== null && json.data != null,
    });
    return response;
  };
}

function apqClient({ useGET, log }) {
  const http = new HttpLink({ uri, fetch: recordingFetch(log) });
  const link = createPersistedQueryLink({ sha256, useGETForHashedQueries: useGET }).concat(http);
  return new ApolloClient({ link, cache: documentedCache() });
}

async function page(apollo, query, variables, fetchPolicy = "network-only") {
  const { data, error } = await apollo.query({ query, variables, fetchPolicy });
  if (error) throw error;
  return data;
}

/** Run one scenario; a failure is reported in the JSON (with the exchanges so far). */
async function scenario(log, body) {
  try {
    return { log, ...(await body()) };
  } catch (error) {
    return { log, error: String(error?.stack || error) };
  }
}

const out = { uri, get: {}, post: {}, cache: {}, control: {} };

// 1. Hashed GET: the first client meets an unknown hash and retries with the
// query; a second client (fresh link, fresh cache) then needs only the hash.
for (const name of ["first", "second"]) {
  const log = [];
  out.get[name] = await scenario(log, async () => ({
    data: await page(apqClient({ useGET: true, log }), PAGE, { slug: "about" }),
  }));
}

// 2. POST (the link's default), with the second document.
for (const name of ["first", "second"]) {
  const log = [];
  out.post[name] = await scenario(log, async () => ({
    data: await page(apqClient({ useGET: false, log }), PAGE_POST, { slug: "outdoor" }),
  }));
}

// 3. One normalized cache, two locales: English, German, then English again
// from the cache alone. (A plain HttpLink: this checks the ids, not APQ.)
async function locales(cache) {
  const log = [];
  return scenario(log, async () => {
    const apollo = new ApolloClient({
      link: new HttpLink({ uri, fetch: recordingFetch(log) }),
      cache,
    });
    const result = {};
    for (const slug of ["outdoor", "home"]) {
      result[slug] = {
        en: await page(apollo, PAGE, { slug, locale: "en-US" }),
        de: await page(apollo, PAGE, { slug, locale: "de-DE" }),
      };
    }
    const before = log.length;
    for (const slug of ["outdoor", "home"]) {
      result[slug].enFromCache = await page(
        apollo,
        PAGE,
        { slug, locale: "en-US" },
        "cache-only",
      );
    }
    result.requestsForCacheReads = log.length - before;
    return result;
  });
}
out.cache = await locales(documentedCache());
// Control: keyed by the CMS id alone (what `id` used to be), the same cache
// does mix languages, so the check above can fail.
out.control = await locales(documentedCache({ Block: { keyFields: ["blockId"] } }));

process.stdout.write(JSON.stringify(out) + "\n");
