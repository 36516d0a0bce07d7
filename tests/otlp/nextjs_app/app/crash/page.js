"use client";
import { useEffect, useState } from "react";

// Renders once, then throws while rendering in the browser: the error boundary takes over.
export default function Crash() {
  const [broken, setBroken] = useState(false);
  useEffect(() => setBroken(true), []);
  if (broken) throw new Error("render failed");
  return <p>rendering</p>;
}
