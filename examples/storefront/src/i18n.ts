// The two demo locales and the app's own strings (content comes localized from Tessera).

export type Locale = "en-US" | "de-DE";
export const LOCALES: Locale[] = ["en-US", "de-DE"];

/** The URL prefix of a locale: English at `/`, German under `/de`. */
export function prefixOf(locale: Locale): string {
  return locale === "de-DE" ? "/de" : "";
}

/** A site path (`/p/tent-2p`) in `locale`; CMS links already under `/de` stay as they are. */
export function localize(path: string, locale: Locale): string {
  const bare = path === "/de" || path.startsWith("/de/") ? path.slice(3) || "/" : path;
  const prefix = prefixOf(locale);
  return prefix ? (bare === "/" ? prefix : `${prefix}${bare}`) : bare;
}

const STRINGS = {
  "en-US": {
    home: "Home",
    outdoor: "Outdoor",
    sale: "Sale",
    about: "About",
    cart: "Cart",
    loading: "Loading…",
    notFound: "This page is not in the demo content.",
    addToCart: "Add to cart",
    added: "Added to your cart",
    emptyCart: "Your cart is empty.",
    placeOrder: "Place order",
    ordered: "Thank you for your order!",
    total: "Total",
    consentTitle: "Cookies and personalization",
    consentText:
      "We use a visitor cookie to count visits and to show offers that fit what you browse. You can change this at any time.",
    acceptAll: "Accept all",
    necessaryOnly: "Necessary only",
    privacy: "Privacy settings",
    withdraw: "Withdraw consent",
    notPersonalized: "Not personalized: everyone sees this version of the page.",
    serverHtml: "Server HTML",
    language: "Language",
  },
  "de-DE": {
    home: "Start",
    outdoor: "Outdoor",
    sale: "Sale",
    about: "Über uns",
    cart: "Warenkorb",
    loading: "Wird geladen…",
    notFound: "Diese Seite gibt es in den Demo-Inhalten nicht.",
    addToCart: "In den Warenkorb",
    added: "Im Warenkorb",
    emptyCart: "Ihr Warenkorb ist leer.",
    placeOrder: "Bestellen",
    ordered: "Danke für Ihre Bestellung!",
    total: "Summe",
    consentTitle: "Cookies und Personalisierung",
    consentText:
      "Wir verwenden ein Besucher-Cookie, um Besuche zu zählen und passende Angebote zu zeigen. Sie können das jederzeit ändern.",
    acceptAll: "Alle akzeptieren",
    necessaryOnly: "Nur notwendige",
    privacy: "Datenschutz-Einstellungen",
    withdraw: "Einwilligung widerrufen",
    notPersonalized: "Nicht personalisiert: Alle sehen diese Fassung der Seite.",
    serverHtml: "Server-HTML",
    language: "Sprache",
  },
} satisfies Record<Locale, Record<string, string>>;

export type Strings = Record<keyof (typeof STRINGS)["en-US"], string>;

export function strings(locale: Locale): Strings {
  return STRINGS[locale];
}

export function money(value: number, currency: string, locale: Locale): string {
  return new Intl.NumberFormat(locale, { style: "currency", currency }).format(value);
}
