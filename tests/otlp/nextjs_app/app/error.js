"use client";
import { useEffect } from "react";

// What Soulcaster's app/global-error.tsx gains: the crash reported to soulwatch.
export default function ErrorBoundary({ error }) {
  useEffect(() => {
    window.soulwatch?.reportError(error);
    document.title = "reported";
  }, [error]);
  return <p id="error">Something went wrong</p>;
}
