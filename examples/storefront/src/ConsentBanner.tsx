// The consent banner: the choice is sent to Tessera as a `consent` event (kept
// in the visitor's profile and its consent log) and remembered here so the
// banner stays closed. Without personalization consent Tessera serves every
// block's default (`personalized: false`); without analytics consent it
// stores no events, and the tracker sends none.
import { useApolloClient } from "@apollo/client/react";

import { strings } from "./i18n";
import { useStorefront } from "./storefront";
import type { Consent } from "./tessera-events";

const KEY = "tessera.consent";

export function storedConsent(): Consent | null {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) ?? "null") as Partial<Consent> | null;
    if (value && typeof value.analytics === "boolean" && typeof value.personalization === "boolean") {
      return { analytics: value.analytics, personalization: value.personalization };
    }
  } catch {
    // A value this app did not write: ask again.
  }
  return null;
}

export function ConsentBanner({ onClose }: { onClose: () => void }) {
  const { locale, tracker, refreshVisitor } = useStorefront();
  const client = useApolloClient();
  const t = strings(locale);
  async function choose(consent: Consent) {
    localStorage.setItem(KEY, JSON.stringify(consent));
    onClose();
    await tracker.consent(consent);
    // The profile now holds the choice: pages and the visitor are decided again.
    await Promise.all([refreshVisitor(), client.refetchQueries({ include: "active" })]);
  }
  return (
    <div className="consent" role="dialog" aria-labelledby="consent-title" data-testid="consent-banner">
      <div>
        <h2 id="consent-title">{t.consentTitle}</h2>
        <p>{t.consentText}</p>
      </div>
      <div className="consent-actions">
        <button type="button" className="button" onClick={() => void choose({ analytics: true, personalization: true })}>
          {t.acceptAll}
        </button>
        <button
          type="button"
          className="button secondary"
          onClick={() => void choose({ analytics: false, personalization: false })}
        >
          {storedConsent() ? t.withdraw : t.necessaryOnly}
        </button>
      </div>
    </div>
  );
}
