// Vite build of the console: dist/ holds index.html and one hashed .js and .css under assets/,
// nothing inlined, no source maps, and the same bytes for the same sources.
import { defineConfig } from "vite";

export default defineConfig({
  // The server answers /assets/<name> from dist/assets/, whatever page path served index.html.
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
