import { money } from "../i18n";
import { useStorefront } from "../storefront";
import { SmartLink } from "./SmartLink";
import type { BlockOf } from "./types";

export function ProductGridBlock({ block }: { block: BlockOf<"ProductGridBlock"> }) {
  const { locale } = useStorefront();
  return (
    <section className="product-grid">
      <h2>{block.title}</h2>
      <ul>
        {block.products.map((product) => (
          <li key={product.sku} data-sku={product.sku}>
            {product.badge && <span className="badge">{product.badge}</span>}
            {product.url ? <SmartLink href={product.url}>{product.name}</SmartLink> : <span>{product.name}</span>}
            <span className="price">{money(product.price, product.currency, locale)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
