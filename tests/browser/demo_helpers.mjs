// Shared by the demo page tests: what a person sees in a page, and a port nothing listens on.

import http from 'node:http';

/** Size, clock and a small luma picture of the remote <video>. */
export function sampleRemote(page) {
  return page.evaluate(() => {
    const v = document.getElementById('remote');
    const out = { videoWidth: v.videoWidth, videoHeight: v.videoHeight, currentTime: v.currentTime, paused: v.paused };
    if (!v.videoWidth) return out;
    const w = 96;
    const h = Math.max(1, Math.round((v.videoHeight / v.videoWidth) * w));
    const c = document.createElement('canvas');
    c.width = w;
    c.height = h;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(v, 0, 0, w, h);
    const px = ctx.getImageData(0, 0, w, h).data;
    const luma = [];
    for (let i = 0; i < px.length; i += 4) luma.push(Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]));
    const mean = luma.reduce((a, b) => a + b, 0) / luma.length;
    out.mean = mean;
    out.stddev = Math.sqrt(luma.reduce((a, y) => a + (y - mean) * (y - mean), 0) / luma.length);
    out.luma = luma;
    return out;
  });
}

export function frameDiff(a, b) {
  if (!a.luma || !b.luma || a.luma.length !== b.luma.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.luma.length; i++) d += Math.abs(a.luma[i] - b.luma[i]);
  return d / a.luma.length;
}

export const demoState = (page) => page.evaluate(() => window.demoState);
export const errorBox = (page) => page.evaluate(() => {
  const el = document.getElementById('error');
  return el.classList.contains('shown') ? el.textContent : '';
});

export async function deadPort() {
  const s = http.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

