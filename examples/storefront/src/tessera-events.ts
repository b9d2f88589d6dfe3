// A small typed client for Tessera's event API (`POST /v1/events`).
//
// It depends on nothing but the browser (no React, no Apollo), so it can be
// lifted into its own package. What it does:
//
// - typed events: page_view, block_view, click, add_to_cart, purchase, consent;
// - one `eventId` per event, so a retried batch is never counted twice;
// - batches: events wait up to `flushIntervalMs` (or `maxBatch` events) and go
//   in one request;
// - delivery: `fetch` with `keepalive`, retried on 503 and 429 (after the
//   server's `Retry-After`, else with exponential backoff); when the page is
//   hidden or unloaded, whatever is left goes with `navigator.sendBeacon`, and
//   with `fetch(keepalive)` where the beacon is refused or missing;
// - `block_view` once per block and page view, when at least half of the
//   block is visible (IntersectionObserver);
// - consent: without analytics consent only `consent` events are sent.
//
// The visitor is identified by Tessera's `tsr_vid` cookie (HttpOnly), never by
// an id in the events: requests carry the cookie (`credentials: "include"`, and
// beacons always do), so events and pages always name the same visitor. See
// docs/frontend.md, "The visitor id".

export type EventType =
  | "page_view"
  | "block_view"
  | "click"
  | "add_to_cart"
  | "remove_from_cart"
  | "purchase"
  | "consent";

/** Scalar properties (docs/profile.md, "Event format"). */
export type EventProperties = Record<string, string | number | boolean | null | string[]>;

export interface EventContext {
  page?: string;
  referrer?: string;
  locale?: string;
  utm?: Partial<Record<"source" | "medium" | "campaign" | "term" | "content", string>>;
}

/** An event as `/v1/events` receives it. */
export interface TesseraEvent {
  type: EventType;
  eventId: string;
  timestamp: string;
  blockId?: string;
  variantId?: string;
  properties?: EventProperties;
  context?: EventContext;
}

/** What a block_view or click is about: a block as the page query returned it. */
export interface BlockRef {
  blockId: string;
  variantId: string;
  /** `decision { reason experiment variation }`: an experiment's block_view is an exposure. */
  decision?: { reason: string; experiment?: string | null; variation?: number | null };
}

export interface Product {
  productId: string;
  price: number;
  quantity?: number;
  category?: string;
  currency?: string;
}

export interface Consent {
  analytics: boolean;
  personalization: boolean;
}

/** What happened to one request (for logs, tests and dashboards). */
export interface DeliveryReport {
  transport: "fetch" | "beacon";
  events: number;
  status?: number;
  attempt: number;
  accepted?: number;
  dropped?: number;
  error?: string;
}

export interface TrackerOptions {
  /** `/v1/events` on the app's origin (a proxy), or the API's absolute URL. */
  endpoint: string;
  /** A publishable key (`PUBLISHABLE_KEYS`): it only allows ingestion. */
  publishableKey: string;
  /** Wait this long for more events before sending (default 1000 ms). */
  flushIntervalMs?: number;
  /** Send at once when this many events wait (default 50; the API takes 500). */
  maxBatch?: number;
  /** Attempts per batch on 503, 429 and network errors (default 6). */
  maxAttempts?: number;
  /** First backoff, doubled per attempt, when the answer has no Retry-After (default 500 ms). */
  backoffMs?: number;
  /** Longest wait between attempts (default 30 s). */
  maxBackoffMs?: number;
  /** Initial analytics consent (default true: the gateway's DEFAULT_ANALYTICS_CONSENT). */
  analytics?: boolean;
  /** Called after each request. */
  onDelivery?: (report: DeliveryReport) => void;
  /** Injectable for tests and non-browser hosts. */
  fetch?: typeof fetch;
  sendBeacon?: (url: string, data: BodyInit) => boolean;
  now?: () => number;
}

// A keepalive request's body must stay under the browser's 64 KiB quota.
const KEEPALIVE_LIMIT = 60_000;

function uuid(): string {
  const c = globalThis.crypto;
  // randomUUID exists only in secure contexts; getRandomValues everywhere.
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const bytes = c.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Seconds of a Retry-After header (delta-seconds or an HTTP date), in ms. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export class Tracker {
  readonly options: Required<Omit<TrackerOptions, "onDelivery" | "sendBeacon">> &
    Pick<TrackerOptions, "onDelivery" | "sendBeacon">;
  private queue: TesseraEvent[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sending: Promise<void> = Promise.resolve();
  private started = false;
  private analytics: boolean;
  private pageViewId = "";
  private lastViewKey: string | undefined;
  private viewed = new Set<string>();
  private observer: IntersectionObserver | undefined;
  private observed = new Map<Element, BlockRef>();
  private context: () => EventContext = () => ({});

  constructor(options: TrackerOptions) {
    this.options = {
      flushIntervalMs: 1000,
      maxBatch: 50,
      maxAttempts: 6,
      backoffMs: 500,
      maxBackoffMs: 30_000,
      analytics: true,
      fetch: (...args) => globalThis.fetch(...args),
      sendBeacon:
        typeof navigator !== "undefined" && typeof navigator.sendBeacon === "function"
          ? (url, data) => navigator.sendBeacon(url, data)
          : undefined,
      now: () => Date.now(),
      ...options,
    };
    this.analytics = this.options.analytics;
  }

  /**
   * Begin sending. Events tracked before are kept until then: an app that must
   * first learn (or mint) the visitor's id starts the tracker once it has.
   */
  start(context: () => EventContext = () => ({})): void {
    this.context = context;
    if (this.started) return;
    this.started = true;
    if (typeof document !== "undefined") {
      // `pagehide` fires on unload and bfcache; `visibilitychange` on tab switches
      // and, on mobile, before the page may be killed without another event.
      addEventListener("pagehide", () => this.flushOnExit());
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "hidden") this.flushOnExit();
      });
    }
    this.schedule();
  }

  /** Whether events other than consent are sent. */
  get analyticsConsent(): boolean {
    return this.analytics;
  }

  /**
   * A new page view: block views count again from here. `viewKey` names the
   * navigation (a router's location key): the same key again is not another
   * view (React's StrictMode runs effects twice in development).
   */
  pageView(properties?: EventProperties, viewKey?: string): void {
    if (viewKey !== undefined && viewKey === this.lastViewKey) return;
    this.lastViewKey = viewKey;
    this.pageViewId = uuid();
    this.viewed.clear();
    this.track("page_view", { properties });
    // Blocks already on screen when the page view starts count for it.
    if (this.observer !== undefined) {
      for (const element of this.observed.keys()) {
        this.observer.unobserve(element);
        this.observer.observe(element);
      }
    }
  }

  /** A block at least half visible: sent once per block and page view. */
  blockView(block: BlockRef): void {
    const key = `${block.blockId}\u0000${block.variantId}`;
    if (this.viewed.has(key)) return;
    this.viewed.add(key);
    const properties: EventProperties = {};
    const decision = block.decision;
    if (decision?.reason === "experiment" && decision.experiment != null && decision.variation != null) {
      // An edge-cached page: the gateway never saw the request, so the exposure is this beacon.
      properties.experiment = decision.experiment;
      properties.variation = decision.variation;
    }
    this.track("block_view", {
      blockId: block.blockId,
      variantId: block.variantId,
      properties: Object.keys(properties).length ? properties : undefined,
    });
  }

  click(block: BlockRef, properties?: EventProperties): void {
    this.track("click", { blockId: block.blockId, variantId: block.variantId, properties });
  }

  addToCart(product: Product, block?: BlockRef): void {
    this.track("add_to_cart", {
      blockId: block?.blockId,
      variantId: block?.variantId,
      properties: productProperties(product),
    });
  }

  removeFromCart(productId: string, quantity?: number): void {
    this.track("remove_from_cart", {
      properties: quantity === undefined ? { productId } : { productId, quantity },
    });
  }

  purchase(revenue: number, properties?: EventProperties): void {
    this.track("purchase", { properties: { ...properties, revenue } });
  }

  /**
   * Record the visitor's choice and send it at once. Withdrawn analytics
   * consent also drops what is queued and stops every other event.
   */
  consent(consent: Consent, source = "consent-banner"): Promise<void> {
    this.analytics = consent.analytics;
    if (!consent.analytics) this.queue = this.queue.filter((e) => e.type === "consent");
    this.push({
      type: "consent",
      eventId: uuid(),
      timestamp: new Date(this.options.now()).toISOString(),
      properties: { analytics: consent.analytics, personalization: consent.personalization, source },
      context: this.context(),
    });
    return this.flush();
  }

  /** Watch an element showing `block`; returns the function that stops watching. */
  observe(element: Element, block: BlockRef): () => void {
    if (typeof IntersectionObserver === "undefined") return () => undefined;
    if (this.observer === undefined) {
      // Several thresholds: a block taller than the viewport never reaches 50%
      // of itself, so half of the viewport filled by it counts too.
      this.observer = new IntersectionObserver((entries) => this.onIntersect(entries), {
        threshold: [0, 0.25, 0.5, 0.75, 1],
      });
    }
    this.observed.set(element, block);
    this.observer.observe(element);
    return () => {
      this.observed.delete(element);
      this.observer?.unobserve(element);
    };
  }

  private onIntersect(entries: IntersectionObserverEntry[]): void {
    for (const entry of entries) {
      const block = this.observed.get(entry.target);
      if (block === undefined || !entry.isIntersecting) continue;
      const viewport = entry.rootBounds?.height ?? window.innerHeight;
      const half =
        entry.intersectionRatio >= 0.5 || (viewport > 0 && entry.intersectionRect.height >= viewport / 2);
      if (half) this.blockView(block);
    }
  }

  private track(
    type: Exclude<EventType, "consent">,
    event: Pick<TesseraEvent, "blockId" | "variantId" | "properties">,
  ): void {
    if (!this.analytics) return;
    const clean: TesseraEvent = {
      type,
      eventId: uuid(),
      timestamp: new Date(this.options.now()).toISOString(),
      context: this.context(),
    };
    if (event.blockId !== undefined) clean.blockId = event.blockId;
    if (event.variantId !== undefined) clean.variantId = event.variantId;
    if (event.properties !== undefined) clean.properties = event.properties;
    if (this.pageViewId) clean.properties = { pageViewId: this.pageViewId, ...clean.properties };
    this.push(clean);
  }

  private push(event: TesseraEvent): void {
    this.queue.push(event);
    if (this.queue.length >= this.options.maxBatch) void this.flush();
    else this.schedule();
  }

  private schedule(): void {
    if (!this.started || this.timer !== undefined || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.options.flushIntervalMs);
  }

  /**
   * Send everything queued now; resolves once those events are delivered or
   * given up. Requests go one at a time, in order.
   */
  flush(): Promise<void> {
    if (!this.started) return this.sending;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue.splice(0, this.queue.length);
    if (batch.length === 0) return this.sending;
    const chunks: TesseraEvent[][] = [];
    for (let i = 0; i < batch.length; i += this.options.maxBatch) {
      chunks.push(batch.slice(i, i + this.options.maxBatch));
    }
    this.sending = this.sending.then(async () => {
      for (const chunk of chunks) await this.deliver(chunk);
    });
    return this.sending;
  }

  private async deliver(events: TesseraEvent[]): Promise<void> {
    const body = JSON.stringify(events);
    const { maxAttempts, backoffMs, maxBackoffMs } = this.options;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      let wait: number | undefined;
      try {
        const response = await this.options.fetch(this.options.endpoint, {
          method: "POST",
          headers: {
            Authorization: `Bearer ${this.options.publishableKey}`,
            "Content-Type": "application/json",
          },
          body,
          credentials: "include",
          keepalive: body.length <= KEEPALIVE_LIMIT,
        });
        const report: DeliveryReport = { transport: "fetch", events: events.length, status: response.status, attempt };
        if (response.ok) {
          const answer = (await response.json().catch(() => ({}))) as { accepted?: number; dropped?: number };
          this.options.onDelivery?.({ ...report, accepted: answer.accepted, dropped: answer.dropped });
          return;
        }
        if (response.status !== 503 && response.status !== 429) {
          // 400 (all invalid), 401/403 (key), 413: sending again cannot help.
          const text = await response.text().catch(() => "");
          this.options.onDelivery?.({ ...report, error: text.slice(0, 500) });
          return;
        }
        this.options.onDelivery?.(report);
        wait = retryAfterMs(response.headers.get("Retry-After"), this.options.now());
      } catch (error) {
        // A network error: the request may or may not have arrived; eventIds make resending safe.
        this.options.onDelivery?.({ transport: "fetch", events: events.length, attempt, error: String(error) });
      }
      if (attempt === maxAttempts) return;
      const backoff = Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 1));
      await sleep(Math.min(maxBackoffMs, wait ?? backoff * (0.5 + Math.random() / 2)));
    }
  }

  /** The page is going away: beacon what is left (the browser sends it after unload). */
  private flushOnExit(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue.splice(0, this.queue.length);
    if (batch.length === 0) return;
    const url = `${this.options.endpoint}${this.options.endpoint.includes("?") ? "&" : "?"}key=${encodeURIComponent(this.options.publishableKey)}`;
    for (let i = 0; i < batch.length; i += this.options.maxBatch) {
      const chunk = batch.slice(i, i + this.options.maxBatch);
      // text/plain needs no CORS preflight, which a page being unloaded could not wait for.
      const body = JSON.stringify(chunk);
      const sent = this.options.sendBeacon?.(url, new Blob([body], { type: "text/plain;charset=UTF-8" })) ?? false;
      if (sent) {
        this.options.onDelivery?.({ transport: "beacon", events: chunk.length, attempt: 1 });
        continue;
      }
      void this.options
        .fetch(url, {
          method: "POST",
          headers: { "Content-Type": "text/plain;charset=UTF-8" },
          body,
          credentials: "include",
          keepalive: true,
        })
        .catch(() => undefined);
    }
  }
}

function productProperties(product: Product): EventProperties {
  const properties: EventProperties = {
    productId: product.productId,
    price: product.price,
    quantity: product.quantity ?? 1,
  };
  if (product.category !== undefined) properties.category = product.category;
  if (product.currency !== undefined) properties.currency = product.currency;
  return properties;
}
