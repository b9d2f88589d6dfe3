// Browser tests of the storefront: Playwright (playwright-core) driving Debian's
// Chromium, headless. tests/storefront/ (pytest) starts the gateway and the app,
// runs this script and checks what it reports, the gateway's side included.
//
//   node e2e/storefront.mjs <app URL> <artifacts dir> <suite> [gateway URL]
//
// Suites: `dev` (the dev server on the gateway), `cross-origin` (the app calling
// the API on another origin), `edge` (the production build behind Varnish).
// Each scenario runs in a new browser context (a new visitor) and reports what
// it saw; a failing scenario reports its error and the others still run. The
// last stdout line is the JSON report.
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [appUrl, artifacts, suite, gatewayUrl] = process.argv.slice(2);
if (!appUrl || !artifacts || !suite) {
  console.error("usage: node e2e/storefront.mjs <app URL> <artifacts dir> <suite> [gateway URL]");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const app = appUrl.replace(/\/$/, "");
const TIMEOUT = 20_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // Playwright gives each launch a new empty profile (--user-data-dir); the rest
  // keeps Chromium off the network this machine does not have.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const consoleErrors = [];
let current = "";

async function visitor(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  watch(page);
  return { context, page };
}

function watch(page) {
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push({ scenario: current, url: page.url(), text: message.text() });
  });
  page.on("pageerror", (error) => consoleErrors.push({ scenario: current, url: page.url(), text: String(error) }));
}

async function shot(page, name) {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

async function heroHeading(page) {
  return (await page.locator("[data-testid=hero] h1").first().textContent())?.trim();
}

async function visitorId(page) {
  return (await page.locator("[data-testid=visitor-id]").textContent())?.trim();
}

async function cookie(context, name) {
  return (await context.cookies()).find((c) => c.name === name)?.value;
}

async function pageState(page) {
  const article = page.locator("article.page");
  await article.waitFor();
  return {
    slug: await article.getAttribute("data-slug"),
    locale: await article.getAttribute("data-locale"),
    personalized: (await article.getAttribute("data-personalized")) === "true",
    cacheScope: await article.getAttribute("data-cache-scope"),
    blocks: await page.locator("article.page > .block").evaluateAll((nodes) =>
      nodes.map((n) => ({
        blockId: n.getAttribute("data-block-id"),
        variantId: n.getAttribute("data-variant-id"),
        reason: n.getAttribute("data-reason"),
        text: n.textContent.trim().slice(0, 200),
      })),
    ),
  };
}

/** Wait until the gateway has the visitor's events of `type` (admin key), or time out. */
async function eventsOf(id, predicate, seconds = 15) {
  const deadline = Date.now() + seconds * 1000;
  let events = [];
  while (Date.now() < deadline) {
    const response = await fetch(`${gatewayUrl}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${process.env.ADMIN_KEY}` },
      body: JSON.stringify({ query: "query($id: ID!) { exportVisitor(id: $id) }", variables: { id } }),
    });
    const body = await response.json();
    events = body.data?.exportVisitor?.events ?? [];
    if (predicate(events)) return events;
    await new Promise((r) => setTimeout(r, 200));
  }
  return events;
}

async function newVisitor() {
  const { context, page } = await visitor();
  await page.goto(`${app}/`);
  await page.locator("[data-testid=hero]").waitFor();
  const result = {
    hero: await heroHeading(page),
    consentBanner: await page.locator("[data-testid=consent-banner]").isVisible(),
    state: await pageState(page),
    visitorId: await visitorId(page),
    cookie: await cookie(context, "tsr_vid"),
    screenshot: await shot(page, "new-visitor"),
  };
  await context.close();
  return result;
}

async function cartReturn() {
  const { context, page } = await visitor();
  // The visit happens 45 minutes ago (the browser's clock, and so the events'
  // timestamps): the cart has been idle long enough for `cart_abandoner`.
  const now = Date.now();
  await page.clock.install({ time: new Date(now - 45 * 60_000) });
  await page.goto(`${app}/p/tent-2p`);
  await page.locator("[data-testid=add-to-cart]").click();
  await page.locator("[data-testid=added]").waitFor();
  const countAfterAdd = (await page.locator("[data-testid=cart-count]").textContent())?.trim();
  // Leave the site, then come back "now".
  await page.goto("about:blank");
  await page.clock.setSystemTime(new Date(now));
  await page.goto(`${app}/`);
  await page.locator("[data-testid=hero]").waitFor();
  const result = {
    countAfterAdd,
    hero: await heroHeading(page),
    state: await pageState(page),
    cartCount: (await page.locator("[data-testid=cart-count]").textContent())?.trim(),
    visitorId: await visitorId(page),
    screenshot: await shot(page, "returning-cart"),
  };
  // And buys: the purchase empties the cart.
  await page.locator("[data-testid=cart-link]").click();
  await page.locator("[data-testid=place-order]").click();
  await page.locator("[data-testid=ordered]").waitFor();
  result.countAfterPurchase = (await page.locator("[data-testid=cart-count]").textContent())?.trim();
  await context.close();
  return result;
}

async function dach() {
  // The header a CDN adds; the dev proxy passes it on to the gateway.
  const { context, page } = await visitor({ extraHTTPHeaders: { "CF-IPCountry": "DE" } });
  await page.goto(`${app}/`);
  await page.locator("[data-testid=banner]").first().waitFor();
  const result = {
    banner: (await page.locator("[data-testid=banner]").first().textContent())?.trim(),
    state: await pageState(page),
    screenshot: await shot(page, "dach"),
  };
  await context.close();
  return result;
}

async function consent() {
  const { context, page } = await visitor();
  await page.goto(`${app}/`);
  await page.locator("[data-testid=hero]").waitFor();
  const before = { hero: await heroHeading(page), state: await pageState(page) };
  await page.getByRole("button", { name: "Accept all" }).click();
  await page.locator("[data-testid=consent-banner]").waitFor({ state: "detached" });
  await page.locator("[data-testid=privacy-settings]").click();
  await page.getByRole("button", { name: "Withdraw consent" }).click();
  await page.locator("[data-testid=not-personalized]").waitFor();
  const after = { hero: await heroHeading(page), state: await pageState(page) };
  // A later visit: still the defaults, and the banner stays closed.
  await page.reload();
  await page.locator("article.page").waitFor();
  const reloaded = {
    state: await pageState(page),
    banner: await page.locator("[data-testid=consent-banner]").count(),
  };
  const id = await visitorId(page);
  const result = { before, after, reloaded, visitorId: id, screenshot: await shot(page, "consent-withdrawn") };
  await context.close();
  return result;
}

async function clickAndViews() {
  const { context, page } = await visitor();
  await page.goto(`${app}/`);
  await page.locator("[data-testid=hero]").waitFor();
  await page.getByRole("button", { name: "Accept all" }).click();
  const id = await visitorId(page);
  // Scroll down and back up twice: each block still counts once for this page view.
  for (let round = 0; round < 2; round++) {
    await page.mouse.wheel(0, 4000);
    await page.waitForTimeout(300);
    await page.mouse.wheel(0, -4000);
    await page.waitForTimeout(300);
  }
  const home = await pageState(page);
  const block = page.locator('[data-block-id="home-products"]');
  const variantId = await block.getAttribute("data-variant-id");
  await block.getByRole("link", { name: "Ridgeline 2P Tent" }).click();
  await page.locator('[data-sku="TENT-2P"].product-detail').waitFor();
  const events = await eventsOf(id, (all) => all.some((e) => e.type === "click") && all.filter((e) => e.type === "page_view").length >= 2);
  const result = {
    visitorId: id,
    cookie: await cookie(context, "tsr_vid"),
    clickedVariant: variantId,
    homeBlocks: home.blocks.map((b) => [b.blockId, b.variantId]),
    events: events.map((e) => ({
      type: e.type,
      blockId: e.blockId ?? null,
      variantId: e.variantId ?? null,
      pageViewId: e.properties?.pageViewId ?? null,
      page: e.context?.page ?? null,
      properties: e.properties ?? {},
    })),
  };
  await context.close();
  return result;
}

async function retries() {
  const { context, page } = await visitor();
  const bodies = [];
  let answered = 0;
  // The first two deliveries meet an overloaded gateway; the tracker must retry the same events.
  await page.route("**/v1/events*", async (route) => {
    const request = route.request();
    if (request.method() !== "POST") return route.continue();
    bodies.push(JSON.parse(request.postData() ?? "[]").map((e) => e.eventId));
    answered += 1;
    if (answered === 1) return route.fulfill({ status: 503, headers: { "Retry-After": "1" }, body: '{"error":"unavailable"}' });
    if (answered === 2) return route.fulfill({ status: 429, headers: { "Retry-After": "0" }, body: '{"error":"limited"}' });
    return route.continue();
  });
  const started = Date.now();
  await page.goto(`${app}/about`);
  await page.locator("article.page").waitFor();
  const id = await visitorId(page);
  const deadline = Date.now() + 15_000;
  while (bodies.length < 3 && Date.now() < deadline) await page.waitForTimeout(100);
  const stored = await eventsOf(id, (all) => all.some((e) => e.type === "page_view"));
  const result = {
    attempts: bodies,
    seconds: (Date.now() - started) / 1000,
    stored: stored.map((e) => e._id),
  };
  await context.close();
  return result;
}

async function beacon(refuse) {
  const { context, page } = await visitor();
  // Playwright does not see requests sent while a page unloads, so the page
  // itself notes each beacon and keepalive fetch in localStorage, which
  // survives the navigation; the gateway's side says what arrived.
  await page.addInitScript((refuseBeacons) => {
    const note = (entry) => {
      const all = JSON.parse(localStorage.getItem("e2e.sent") ?? "[]");
      all.push(entry);
      localStorage.setItem("e2e.sent", JSON.stringify(all));
    };
    const beacon = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, data) => {
      // A browser whose beacon queue is full answers false.
      const sent = refuseBeacons ? false : beacon(url, data);
      note({ via: "beacon", url: String(url).replace(/key=[^&]+/, "key=…"), type: data?.type ?? "", sent });
      return sent;
    };
    const fetcher = window.fetch.bind(window);
    window.fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (url.includes("/v1/events")) {
        const headers = new Headers(init?.headers);
        note({
          via: "fetch",
          url: url.replace(/key=[^&]+/, "key=…"),
          keepalive: init?.keepalive === true,
          type: headers.get("content-type") ?? "",
          events: JSON.parse(String(init?.body ?? "[]")).map((e) => e.type),
        });
      }
      return fetcher(input, init);
    };
  }, refuse);
  await page.goto(`${app}/about`);
  await page.locator("article.page").waitFor();
  const id = await visitorId(page);
  // Leave before the batch's timer (1 s): what is queued goes on pagehide.
  await page.goto("about:blank");
  const stored = await eventsOf(id, (all) => all.some((e) => e.type === "page_view"));
  const origin = (await context.storageState()).origins.find((o) => o.origin === new URL(app).origin);
  const sent = JSON.parse(origin?.localStorage.find((item) => item.name === "e2e.sent")?.value ?? "[]");
  await context.close();
  return { sent, stored: stored.map((e) => e.type), visitorId: id };
}

async function locales() {
  const { context, page } = await visitor();
  await page.goto(`${app}/c/outdoor`);
  await page.locator("[data-testid=hero]").waitFor();
  const english = { hero: await heroHeading(page), state: await pageState(page) };
  await page.locator("[data-testid=locale-switch]").click();
  await page.waitForURL(`${app}/de/c/outdoor`);
  await page.locator('article.page[data-locale="de-DE"]').waitFor();
  const german = {
    hero: await heroHeading(page),
    state: await pageState(page),
    lang: await page.locator("html").getAttribute("lang"),
    title: await page.title(),
  };
  await page.locator("[data-testid=locale-switch]").click();
  await page.locator('article.page[data-locale="en-US"]').waitFor();
  const back = { hero: await heroHeading(page) };
  const screenshot = await shot(page, "category-en");
  await context.close();
  return { english, german, back, screenshot };
}

async function serverHtml() {
  const { context, page } = await visitor();
  await page.goto(`${app}/c/outdoor?html`);
  await page.locator(".server-html").first().waitFor();
  const result = {
    serverBlocks: await page.locator(".server-html").count(),
    components: await page.locator("[data-testid=hero]").count(),
    text: (await page.locator("article.page").textContent())?.trim().slice(0, 300),
  };
  await context.close();
  return result;
}

async function edge() {
  // Two visitors in turn: the second one's public page comes from Varnish.
  const caches = [];
  for (const name of ["first", "second"]) {
    const { context, page } = await visitor();
    const answers = [];
    page.on("response", (response) => {
      if (response.url().includes("/graphql") && response.url().includes("StorefrontPage")) {
        answers.push({ status: response.status(), xCache: response.headers()["x-cache"] ?? "", scope: response.headers()["x-tessera-cache-scope"] ?? "" });
      }
    });
    await page.goto(`${app}/about`);
    await page.locator("article.page").waitFor();
    caches.push({ name, answers, state: await pageState(page) });
    await context.close();
  }
  const { context, page } = await visitor();
  await page.goto(`${app}/`);
  await page.locator("[data-testid=hero]").waitFor();
  const home = { hero: await heroHeading(page), state: await pageState(page) };
  await page.goto(`${app}/p/tent-2p`);
  await page.locator("[data-testid=add-to-cart]").click();
  await page.locator("[data-testid=added]").waitFor();
  const cartCount = (await page.locator("[data-testid=cart-count]").textContent())?.trim();
  const screenshot = await shot(page, "edge-product");
  await context.close();
  return { caches, home, cartCount, screenshot };
}

const SUITES = {
  dev: { newVisitor, cartReturn, dach, consent, clickAndViews, retries, beacon: () => beacon(false), beaconRefused: () => beacon(true), locales, serverHtml },
  "cross-origin": { newVisitor, clickAndViews },
  edge: { edge },
};

const scenarios = SUITES[suite];
if (!scenarios) {
  console.error(`unknown suite ${suite}`);
  process.exit(2);
}
const report = { suite, scenarios: {}, consoleErrors };
const only = process.env.ONLY?.split(",");
for (const [name, run] of Object.entries(scenarios)) {
  if (only && !only.includes(name)) continue;
  current = name;
  const started = Date.now();
  try {
    report.scenarios[name] = { ok: true, ...(await run()) };
  } catch (error) {
    report.scenarios[name] = { ok: false, error: String(error?.stack ?? error) };
  }
  report.scenarios[name].seconds = (Date.now() - started) / 1000;
}
await browser.close();
console.log(JSON.stringify(report));
