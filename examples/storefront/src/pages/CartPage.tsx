import { useState } from "react";

import { money, strings } from "../i18n";
import { useStorefront } from "../storefront";
import { readCart } from "../tessera-json";

export function CartPage() {
  const { locale, visitor, tracker, refreshVisitor } = useStorefront();
  const [ordered, setOrdered] = useState(false);
  const cart = readCart(visitor.cart);
  const t = strings(locale);
  async function placeOrder() {
    tracker.purchase(cart.value, { items: cart.items, currency: "USD" });
    await tracker.flush();
    await refreshVisitor();
    setOrdered(true);
  }
  if (ordered) return <p className="status" data-testid="ordered">{t.ordered}</p>;
  if (cart.items === 0) return <p className="status">{t.emptyCart}</p>;
  return (
    <section className="cart" data-testid="cart">
      <h1>{t.cart}</h1>
      <ul>
        {cart.lines.map((line) => (
          <li key={line.productId}>
            {line.quantity} × {line.productId} <span className="price">{money(line.price, "USD", locale)}</span>
          </li>
        ))}
      </ul>
      <p>
        {t.total}: <strong>{money(cart.value, "USD", locale)}</strong>
      </p>
      <button type="button" className="button" onClick={() => void placeOrder()} data-testid="place-order">
        {t.placeOrder}
      </button>
    </section>
  );
}
