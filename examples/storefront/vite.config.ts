// The dev server (and `vite preview`) forwards Tessera's routes to the gateway,
// so the app and the API share one origin: the visitor cookie is first-party
// and no CORS is needed. TESSERA_URL says where the gateway (or a Varnish in
// front of it) listens.
import react from "@vitejs/plugin-react";
import { defineConfig, type ProxyOptions } from "vite";

const target = process.env.TESSERA_URL ?? "http://127.0.0.1:8000";

const tessera: ProxyOptions = {
  target,
  // Headers pass as the browser sent them (cookies, CF-IPCountry, User-Agent);
  // the gateway sees the proxy as a trusted loopback proxy and reads the
  // client's address from X-Forwarded-For.
  xfwd: true,
};

export default defineConfig({
  plugins: [react()],
  // Two dev servers of one checkout (the tests run two) each need their own.
  cacheDir: process.env.VITE_CACHE_DIR ?? "node_modules/.vite",
  // Pre-bundled at start: a dependency found only while a page loads would
  // make the dev server reload that page.
  optimizeDeps: {
    include: [
      "react",
      "react-dom/client",
      "react/jsx-dev-runtime",
      "react-router",
      "@apollo/client",
      "@apollo/client/react",
      "@apollo/client/link/persisted-queries",
      "@graphql-tools/documents",
      "graphql",
    ],
  },
  server: {
    host: process.env.HOST ?? "127.0.0.1",
    port: Number(process.env.STOREFRONT_PORT ?? 5173),
    strictPort: true,
    proxy: { "/graphql": tessera, "/v1/events": tessera },
  },
  preview: {
    host: process.env.HOST ?? "127.0.0.1",
    port: Number(process.env.STOREFRONT_PORT ?? 4173),
    strictPort: true,
    proxy: { "/graphql": tessera, "/v1/events": tessera },
  },
});
