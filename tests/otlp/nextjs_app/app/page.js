"use client";
import { useEffect, useState } from "react";

export default function Clusters() {
  const [state, setState] = useState("loading");
  useEffect(() => {
    (async () => {
      await fetch("/api/clusters/7");
      await fetch("/api/clusters/broken");
      setState("loaded");
    })();
  }, []);
  return <h1 id="state">{state}</h1>;
}
