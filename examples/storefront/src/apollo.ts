// Apollo Client for Tessera: persisted queries over GET (cacheable at the
// edge), the documents exactly as GraphQL Code Generator's manifest holds
// them (so `PERSISTED_QUERIES=trusted` runs them), and a normalized cache
// that keeps locales and variants apart (docs/edge.md, "Client caches").
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { printExecutableGraphQLDocument } from "@graphql-tools/documents";
import { Kind, visit, type ASTNode, type DocumentNode } from "graphql";

import { GRAPHQL_URL } from "./config";
import manifest from "./gql/persisted-documents.json";
import possibleTypes from "./gql/possible-types";

/**
 * A document as it goes over the wire: `__typename` in every selection set
 * and printed in the normalized form of codegen's persisted documents. The
 * printed text is what the hash covers, so a hashed GET and the full query
 * sent after a miss always agree, in APQ and in trusted mode.
 */
export function wireText(node: ASTNode): string {
  const withTypename = visit(node, {
    SelectionSet(selectionSet, _key, parent) {
      const subscriptionRoot =
        parent !== undefined &&
        !Array.isArray(parent) &&
        (parent as ASTNode).kind === Kind.OPERATION_DEFINITION &&
        (parent as { operation?: string }).operation === "subscription";
      const has = selectionSet.selections.some(
        (s) => s.kind === Kind.FIELD && s.name.value === "__typename",
      );
      if (subscriptionRoot || has) return undefined;
      return {
        ...selectionSet,
        selections: [{ kind: Kind.FIELD, name: { kind: Kind.NAME, value: "__typename" } }, ...selectionSet.selections],
      };
    },
  });
  return printExecutableGraphQLDocument(withTypename as DocumentNode);
}

// The manifest's keys are `sha256:<hex>`; Apollo sends the bare hex.
const hashOfText = new Map<string, string>(
  Object.entries(manifest as Record<string, string>).map(([key, text]) => [text, key.replace(/^sha256:/, "")]),
);

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function documentHash(document: DocumentNode): string | Promise<string> {
  const text = wireText(document);
  // Documents of the manifest need no hashing (and no WebCrypto, which plain-HTTP
  // origins other than localhost lack); anything else is hashed here.
  return hashOfText.get(text) ?? sha256(text);
}

export function createClient(): ApolloClient {
  const persisted = new PersistedQueryLink({ generateHash: documentHash, useGETForHashedQueries: true });
  const http = new HttpLink({
    uri: GRAPHQL_URL,
    // The visitor cookie travels with every request, also to an API on another origin.
    credentials: "include",
    // Plain JSON, not `application/graphql-response+json`: for that media type
    // the GraphQL-over-HTTP spec makes an answer without `data` a 4xx, so every
    // APQ miss (PersistedQueryNotFound, then Apollo resends the query) would be a
    // 400 that browsers log as a console error. As JSON it is a 200.
    headers: { accept: "application/json" },
    // Revalidate every hashed GET (a 304 when nothing changed). The browser's
    // HTTP cache keys on the URL alone, not on the visitor's cookies, and
    // honours the response's stale-while-revalidate: without this, a visitor
    // who just withdrew consent or filled a cart would be shown the page they
    // had before for up to 30 s.
    fetchOptions: { cache: "no-cache" },
    print: (ast) => wireText(ast),
  });
  return new ApolloClient({
    link: ApolloLink.from([persisted, http]),
    cache: new InMemoryCache({
      possibleTypes: possibleTypes.possibleTypes,
      typePolicies: {
        // A block's id is `<blockId>:<locale>:<variantId>`: unique per language and variant.
        Page: { keyFields: ["slug", "locale"] },
        Visitor: { keyFields: ["id"] },
        Decision: { keyFields: false },
      },
    }),
  });
}
