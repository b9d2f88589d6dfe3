// `GenericBlock { fields: JSON }` carries block types the schema does not
// model. Types this app knows get a component that reads their fields with
// checks (tessera-json); anything else is shown as its fields.
import { useState } from "react";

import { money, strings } from "../i18n";
import { useStorefront } from "../storefront";
import { num, str, type JsonObject, type JsonValue } from "../tessera-json";
import type { BlockOf } from "./types";

type Generic = BlockOf<"GenericBlock">;

function ProductDetail({ block, fields }: { block: Generic; fields: JsonObject }) {
  const { locale, tracker, refreshVisitor } = useStorefront();
  const [added, setAdded] = useState(false);
  const sku = str(fields.sku) ?? block.blockId;
  const price = num(fields.price);
  const currency = str(fields.currency) ?? "USD";
  const t = strings(locale);
  async function addToCart() {
    tracker.addToCart({ productId: sku, price, currency, category: str(fields.category) }, block);
    // The profile changes before the answer: the visitor (and the next page) see the cart.
    await tracker.flush();
    await refreshVisitor();
    setAdded(true);
  }
  return (
    <section className="product-detail" data-sku={sku}>
      <h1>{str(fields.name) ?? sku}</h1>
      {str(fields.description) && <p>{str(fields.description)}</p>}
      <p className="price">{money(price, currency, locale)}</p>
      <button type="button" className="button" onClick={() => void addToCart()} data-testid="add-to-cart">
        {t.addToCart}
      </button>
      {added && (
        <p role="status" data-testid="added">
          {t.added}
        </p>
      )}
    </section>
  );
}

function StoreLocator({ fields }: { fields: JsonObject }) {
  return (
    <section className="store-locator" data-region={str(fields.region) ?? ""}>
      <h2>{str(fields.headline) ?? "Stores"}</h2>
      <p>{num(fields.radiusKm, 25)} km</p>
    </section>
  );
}

function show(value: JsonValue | undefined): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function GenericBlock({ block }: { block: Generic }) {
  const fields = block.fields;
  switch (block.type) {
    case "product_detail":
      return <ProductDetail block={block} fields={fields} />;
    case "store_locator":
      return <StoreLocator fields={fields} />;
    default:
      return (
        <section className="generic" data-type={block.type}>
          <dl>
            {Object.entries(fields).map(([name, value]) => (
              <div key={name}>
                <dt>{name}</dt>
                <dd>{show(value)}</dd>
              </div>
            ))}
          </dl>
        </section>
      );
  }
}
