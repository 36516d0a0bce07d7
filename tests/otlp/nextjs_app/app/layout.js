import Script from "next/script";

// The browser agent, loaded before hydration so an error boundary can report at once.
export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>
        <Script
          src={`${process.env.SOULWATCH_URL}/rum/v1/agent.js`}
          data-site={process.env.SOULWATCH_RUM_KEY}
          strategy="beforeInteractive"
        />
        {children}
      </body>
    </html>
  );
}
