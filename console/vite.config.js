import { defineConfig } from 'vite';

// Served by OCIS itself under /console; every asset gets a content hash (long-cached).
export default defineConfig({
  base: '/console/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    // Inlined fonts or workers would need data: or blob: in the page's Content-Security-Policy.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 8000,
    modulePreload: { polyfill: false },
    rolldownOptions: {
      // framer-motion's "use client" lines mean nothing outside a React server build.
      onwarn(warning, warn) {
        if (warning.code !== 'MODULE_LEVEL_DIRECTIVE') warn(warning);
      },
    },
  },
  worker: { format: 'es' },
});
