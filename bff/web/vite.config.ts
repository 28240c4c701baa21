// Vite: the dev server on 127.0.0.1:5173 (an origin the BFF's CORS allow-list admits in `make dev`)
// and the production build into dist/, which the BFF serves with MERCATO_BFF__WEB_ROOT.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
  preview: { host: "127.0.0.1", port: 4173, strictPort: true },
  build: { outDir: "dist", sourcemap: true, emptyOutDir: true },
});
