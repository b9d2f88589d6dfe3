import { ApolloProvider } from "@apollo/client/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";

import { createClient } from "./apollo";
import { App } from "./App";
import { storedConsent } from "./ConsentBanner";
import { EVENTS_URL, PUBLISHABLE_KEY } from "./config";
import { Tracker } from "./tessera-events";
import "./styles.css";

const tracker = new Tracker({
  endpoint: EVENTS_URL,
  publishableKey: PUBLISHABLE_KEY,
  analytics: storedConsent()?.analytics ?? true,
  onDelivery: (report) => {
    if (report.error !== undefined || (report.status !== undefined && report.status >= 400)) {
      console.warn("Tessera events:", report);
    }
  },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ApolloProvider client={createClient()}>
      <BrowserRouter>
        <App tracker={tracker} />
      </BrowserRouter>
    </ApolloProvider>
  </StrictMode>,
);
