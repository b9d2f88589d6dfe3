import type { ReactNode } from "react";
import { Link } from "react-router";

import { localize } from "../i18n";
import { useStorefront } from "../storefront";

/** A CMS link: site paths route inside the app, in the current locale; others are plain links. */
export function SmartLink({ href, className, children }: { href: string; className?: string; children: ReactNode }) {
  const { locale } = useStorefront();
  if (href.startsWith("/") && !href.startsWith("//")) {
    return (
      <Link to={localize(href, locale)} className={className}>
        {children}
      </Link>
    );
  }
  return (
    <a href={href} className={className} rel="noopener">
      {children}
    </a>
  );
}
