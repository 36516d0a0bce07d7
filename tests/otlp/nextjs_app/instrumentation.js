// As docs/rum.md tells Soulcaster's dashboard to do: server spans go to soulwatch over OTLP.
import { registerOTel } from "@vercel/otel";

export function register() {
  registerOTel({ serviceName: "dashboard" });
}
