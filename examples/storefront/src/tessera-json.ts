// Types for Tessera's `JSON` scalar (codegen.ts maps it to `JsonObject`), and
// typed readers for the shapes docs/profile.md documents. The readers check
// each value instead of casting, so a gateway that sends something else gives
// a default, never a runtime surprise behind a type that lied.

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue | undefined;
}

export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function num(value: JsonValue | undefined, fallback = 0): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

export function str(value: JsonValue | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

export function bool(value: JsonValue | undefined): boolean | undefined {
  return typeof value === "boolean" ? value : undefined;
}

/** `Visitor.traits`: the counters targeting reads (docs/profile.md, "What targeting sees"). */
export interface VisitorTraits {
  pageViews: number;
  clicks: number;
  blockViews: number;
  orders: number;
  ltv: number;
  sessions: number;
  lastPage?: string;
  country?: string;
  device?: string;
}

export function readTraits(traits: JsonObject): VisitorTraits {
  return {
    pageViews: num(traits.pageViews),
    clicks: num(traits.clicks),
    blockViews: num(traits.blockViews),
    orders: num(traits.orders),
    ltv: num(traits.ltv),
    sessions: num(traits.sessions),
    lastPage: str(traits.lastPage),
    country: str(traits.country),
    device: str(traits.device),
  };
}

export interface CartLine {
  productId: string;
  quantity: number;
  price: number;
  category?: string;
}

/** `Visitor.cart`: items, value, idle time and its 50 most recent lines. */
export interface Cart {
  items: number;
  value: number;
  idleMinutes?: number;
  lines: CartLine[];
}

export function readCart(cart: JsonObject): Cart {
  const lines: CartLine[] = [];
  for (const line of Array.isArray(cart.lines) ? cart.lines : []) {
    if (!isJsonObject(line)) continue;
    const productId = str(line.productId);
    if (productId === undefined) continue;
    lines.push({
      productId,
      quantity: num(line.quantity, 1),
      price: num(line.price),
      category: str(line.category),
    });
  }
  const idle = cart.idleMinutes;
  return {
    items: num(cart.items),
    value: num(cart.value),
    idleMinutes: typeof idle === "number" ? idle : undefined,
    lines,
  };
}
