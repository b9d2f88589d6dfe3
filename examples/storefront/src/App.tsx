import { useQuery } from "@apollo/client/react";
import { useCallback, useEffect, useMemo, useState } from "react";
import { Link, NavLink, Outlet, Route, Routes, useLocation, useParams } from "react-router";

import { ConsentBanner, storedConsent } from "./ConsentBanner";
import { localize, prefixOf, strings, type Locale } from "./i18n";
import { VisitorQuery } from "./operations";
import { CartPage } from "./pages/CartPage";
import { CmsPage } from "./pages/CmsPage";
import { StorefrontContext, useStorefront, type Storefront } from "./storefront";
import type { Tracker } from "./tessera-events";
import { readCart } from "./tessera-json";

function SlugPage({ prefix = "" }: { prefix?: string }) {
  const { slug = "home" } = useParams();
  // `key`: another slug is another page, with its own state.
  return <CmsPage key={prefix + slug} slug={prefix + slug} />;
}

function Shell({ locale }: { locale: Locale }) {
  const outer = useStorefront();
  const location = useLocation();
  const [consentOpen, setConsentOpen] = useState(() => storedConsent() === null);
  const value = useMemo<Storefront>(() => ({ ...outer, locale }), [outer, locale]);
  const t = strings(locale);
  const cart = readCart(outer.visitor.cart);
  const other: Locale = locale === "en-US" ? "de-DE" : "en-US";
  const here = location.pathname.startsWith("/de") ? location.pathname.slice(3) || "/" : location.pathname;
  useEffect(() => {
    document.documentElement.lang = locale;
  }, [locale]);
  return (
    <StorefrontContext.Provider value={value}>
      <header className="site-header">
        <Link to={localize("/", locale)} className="logo">
          Trailhead
        </Link>
        <nav>
          <NavLink to={localize("/", locale)} end>
            {t.home}
          </NavLink>
          <NavLink to={localize("/c/outdoor", locale)}>{t.outdoor}</NavLink>
          <NavLink to={localize("/sale", locale)}>{t.sale}</NavLink>
          <NavLink to={localize("/about", locale)}>{t.about}</NavLink>
          <NavLink to={localize("/cart", locale)} data-testid="cart-link">
            {t.cart} <span className="count" data-testid="cart-count">{cart.items}</span>
          </NavLink>
        </nav>
        <Link to={localize(here, other)} className="locale-switch" hrefLang={other} data-testid="locale-switch">
          {other === "de-DE" ? "Deutsch" : "English"}
        </Link>
      </header>
      <main>
        <Outlet />
      </main>
      <footer className="site-footer">
        <button type="button" className="link" onClick={() => setConsentOpen(true)} data-testid="privacy-settings">
          {t.privacy}
        </button>
        <label>
          <input
            type="checkbox"
            checked={outer.serverHtml}
            onChange={(e) => outer.setServerHtml(e.target.checked)}
            data-testid="server-html"
          />{" "}
          {t.serverHtml}
        </label>
        <span>
          Visitor <code data-testid="visitor-id">{outer.visitor.id}</code>
        </span>
      </footer>
      {consentOpen && <ConsentBanner onClose={() => setConsentOpen(false)} />}
    </StorefrontContext.Provider>
  );
}

function pages() {
  return (
    <>
      <Route index element={<CmsPage key="home" slug="home" />} />
      <Route path="c/:slug" element={<SlugPage prefix="category-" />} />
      <Route path="p/:slug" element={<SlugPage prefix="product-" />} />
      <Route path="cart" element={<CartPage />} />
      <Route path=":slug" element={<SlugPage />} />
    </>
  );
}

export function App({ tracker }: { tracker: Tracker }) {
  // The visitor first, before any page or event: a new visitor's id is minted
  // by this one request (its Set-Cookie), so the pages and events that follow
  // all carry the same cookie. Two first requests in parallel could mint two.
  const { data, error, refetch } = useQuery(VisitorQuery, { fetchPolicy: "network-only" });
  const [serverHtml, setServerHtml] = useState(() => new URLSearchParams(location.search).has("html"));
  const refreshVisitor = useCallback(async () => {
    await refetch();
  }, [refetch]);
  const visitor = data?.visitor;
  useEffect(() => {
    if (visitor === undefined) return;
    tracker.start(() => ({
      page: window.location.pathname,
      locale: window.location.pathname.startsWith("/de") ? "de-DE" : "en-US",
      referrer: document.referrer || undefined,
    }));
  }, [tracker, visitor]);
  const value = useMemo(
    () =>
      visitor && {
        locale: "en-US" as Locale,
        tracker,
        visitor,
        refreshVisitor,
        serverHtml,
        setServerHtml,
      },
    [visitor, tracker, refreshVisitor, serverHtml],
  );
  if (error && !data) return <p className="status">Tessera is not reachable: {error.message}</p>;
  if (!value) return <p className="status">…</p>;
  return (
    <StorefrontContext.Provider value={value}>
      <Routes>
        <Route path="/" element={<Shell locale="en-US" />}>
          {pages()}
        </Route>
        <Route path={prefixOf("de-DE")} element={<Shell locale="de-DE" />}>
          {pages()}
        </Route>
      </Routes>
    </StorefrontContext.Provider>
  );
}
