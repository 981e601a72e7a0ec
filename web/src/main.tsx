import "@mantine/core/styles.css";
import "./app.css";
import { type CSSVariablesResolver, MantineProvider, createTheme } from "@mantine/core";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";

const theme = createTheme({
  primaryColor: "blue",
  primaryShade: 8, // white on blue.8 passes WCAG AA contrast; the default shade 6 does not
  fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
});

// Darker secondary text and "light" variant text (alerts, badges, nav links) than Mantine's defaults, which are
// too pale on white and on their tinted fills for WCAG AA contrast.
const contrast: CSSVariablesResolver = () => ({
  variables: {},
  light: {
    "--mantine-color-dimmed": "#495057",
    "--mantine-color-placeholder": "#5c636a",
    "--mantine-color-error": "#c92a2a", // an input's error text and border: the default red is too pale on white
    "--mantine-color-gray-light-color": "#343a40",
    "--mantine-color-blue-light-color": "#1864ab",
    "--mantine-primary-color-light-color": "#1864ab",
    "--mantine-color-green-light-color": "#1d6b2e",
    "--mantine-color-red-light-color": "#b02525",
    "--mantine-color-yellow-light-color": "#7a5a00",
    "--mantine-color-orange-light-color": "#a34100",
    "--mantine-color-teal-light-color": "#0b6b57",
  },
  dark: {},
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <MantineProvider theme={theme} defaultColorScheme="light" cssVariablesResolver={contrast}>
      <App />
    </MantineProvider>
  </StrictMode>,
);
