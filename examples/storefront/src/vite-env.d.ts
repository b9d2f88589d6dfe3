/// <reference types="vite/client" />

interface ImportMetaEnv {
  readonly VITE_TESSERA_API_URL?: string;
  readonly VITE_TESSERA_PUBLISHABLE_KEY?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
