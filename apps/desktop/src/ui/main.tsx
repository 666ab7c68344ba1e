import { createInvokeStatusSource, NetworkStatusProvider } from "@centrovision/ui-react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app.js";
import { invoke } from "./invoke.js";
import "./styles.css";
import "./scheduler.css";

const statusSource = createInvokeStatusSource({ invoke, intervalMs: 500 });
const root = document.getElementById("root");
if (root === null) throw new Error("index.html has no #root element");

createRoot(root).render(
  <StrictMode>
    <NetworkStatusProvider source={statusSource}>
      <App />
    </NetworkStatusProvider>
  </StrictMode>,
);
