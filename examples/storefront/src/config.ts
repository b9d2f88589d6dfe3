// Build-time settings (Vite reads VITE_* from the environment or .env files).

/**
 * Where Tessera is. Empty (the default): the app's own origin, where the dev
 * server (vite.config.ts) or your reverse proxy forwards `/graphql` and
 * `/v1/events` to the gateway. An absolute URL calls the API cross-origin
 * (the gateway then needs the app in `CORS_ORIGINS`).
 */
export const API_URL = (import.meta.env.VITE_TESSERA_API_URL ?? "").replace(/\/$/, "");

/** A publishable key of the gateway (`PUBLISHABLE_KEYS`): it can only send events. */
export const PUBLISHABLE_KEY = import.meta.env.VITE_TESSERA_PUBLISHABLE_KEY ?? "pk_storefront";

export const GRAPHQL_URL = `${API_URL}/graphql`;
export const EVENTS_URL = `${API_URL}/v1/events`;
