// GraphQL Code Generator: typed documents from Tessera's schema, and the
// persisted-documents manifest that `PERSISTED_QUERIES=trusted` runs.
//
//   npm run codegen         regenerate src/gql/ after changing an operation
//   npm run codegen:check   fail when src/gql/ is out of date (the tests run it)
import type { CodegenConfig } from "@graphql-codegen/cli";
import { addTypenameSelectionDocumentTransform } from "@graphql-codegen/client-preset";

// Every `JSON` field of Tessera's schema holds an object (`Visitor.traits`,
// `Visitor.cart`, `GenericBlock.fields`, event `properties` and `context`, ...).
// Mapped to `JsonObject` instead of codegen's default `unknown`, a field reads
// as `JsonValue | undefined` and narrows with `typeof`; src/tessera-json.ts
// turns the documented shapes (traits, cart) into typed records.
const json = "import('../tessera-json').JsonObject";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.{ts,tsx}", "!src/gql/**/*"],
  ignoreNoDocuments: false,
  generates: {
    "src/gql/": {
      preset: "client",
      presetConfig: {
        fragmentMasking: false,
        persistedDocuments: {
          // Keep the documents (APQ needs their text on a miss) and hash with
          // SHA-256, the hash Apollo's persisted-query link sends.
          mode: "embedHashInDocument",
          hashAlgorithm: "sha256",
        },
      },
      // Apollo's cache adds __typename before a query is sent; the manifest
      // must hold the document as it goes over the wire.
      documentTransforms: [addTypenameSelectionDocumentTransform],
      config: {
        scalars: {
          JSON: { input: json, output: json },
          DateTime: { input: "string", output: "string" },
        },
        enumsAsTypes: true,
        useTypeImports: true,
        avoidOptionals: { field: true, inputValue: false, object: true, defaultValue: false },
      },
    },
    // Apollo's InMemoryCache needs the Block interface's implementations.
    "src/gql/possible-types.ts": {
      plugins: ["fragment-matcher"],
      config: { apolloClientVersion: 3, useExplicitTyping: true },
    },
  },
};

export default config;
