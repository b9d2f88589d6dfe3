// A Tessera page: every block in the variant chosen for this visitor.
import { useQuery } from "@apollo/client/react";
import { useEffect } from "react";
import { useLocation } from "react-router";

import { Block } from "../blocks/Block";
import { strings } from "../i18n";
import { PageQuery } from "../operations";
import { useStorefront } from "../storefront";

export function CmsPage({ slug }: { slug: string }) {
  const { locale, tracker, serverHtml } = useStorefront();
  const location = useLocation();
  const t = strings(locale);
  const { data, loading, error } = useQuery(PageQuery, {
    variables: { slug, locale, withHtml: serverHtml },
    // `page: null` with PAGE_NOT_FOUND is an answer, not a failure.
    errorPolicy: "all",
  });
  const page = data?.page;
  const loaded = page !== undefined && page !== null;
  useEffect(() => {
    if (loaded) tracker.pageView({ slug }, location.key);
    // One page view per navigation (location.key), not per refetch.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [location.key, loaded]);
  useEffect(() => {
    if (page) document.title = page.title;
  }, [page]);
  if (loading && !data) return <p className="status">{t.loading}</p>;
  if (!page) {
    const notFound = error === undefined || /not found/i.test(error.message);
    return (
      <p className="status" data-testid="not-found">
        {notFound ? t.notFound : error.message}
      </p>
    );
  }
  return (
    <article
      className="page"
      data-slug={page.slug}
      data-locale={page.locale}
      data-personalized={String(page.personalized)}
      data-cache-scope={page.cacheScope}
    >
      {!page.personalized && (
        <p className="notice" data-testid="not-personalized">
          {t.notPersonalized}
        </p>
      )}
      {page.blocks.map((block) => (
        <Block key={block.id} block={block} />
      ))}
    </article>
  );
}
