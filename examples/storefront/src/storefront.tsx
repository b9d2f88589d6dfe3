// What every component may need: the locale, the event tracker, the visitor.
import { createContext, useContext } from "react";

import type { StorefrontVisitorQuery } from "./gql/graphql";
import type { Locale } from "./i18n";
import type { Tracker } from "./tessera-events";

export type Visitor = StorefrontVisitorQuery["visitor"];

export interface Storefront {
  locale: Locale;
  tracker: Tracker;
  visitor: Visitor;
  /** Ask Tessera again for the visitor (after events that change the profile). */
  refreshVisitor: () => Promise<void>;
  /** Render each block's server-side `renderedHtml` instead of its component. */
  serverHtml: boolean;
  setServerHtml: (on: boolean) => void;
}

export const StorefrontContext = createContext<Storefront | null>(null);

export function useStorefront(): Storefront {
  const value = useContext(StorefrontContext);
  if (value === null) throw new Error("useStorefront outside <StorefrontContext>");
  return value;
}
